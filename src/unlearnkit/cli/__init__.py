"""The ``unlearnkit`` command line: one module per command, one table of commands.

Exit status: 0 success; 2 bad input (one line on stderr, no file written);
1 internal error. See ``docs/cli.md`` for every command and option.

A command is a pair (a function adding its parser, a function running it) in
:data:`COMMANDS`; the option builders they share are in :mod:`unlearnkit.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from unlearnkit.cli import audit, bench, feature, listing, lm, registry, run, train, unlearn, weak
from unlearnkit.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, Parser
from unlearnkit.errors import UnlearnkitError

# name -> (adds its sub-parser, runs it); the order is the order of `unlearnkit --help`
COMMANDS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "list": (listing.add_list, listing.cmd_list),
    "train": (train.add_train, train.cmd_train),
    "unlearn": (unlearn.add_unlearn, unlearn.cmd_unlearn),
    "evaluate": (unlearn.add_evaluate, unlearn.cmd_evaluate),
    "run": (run.add_run, run.cmd_run),
    "bench": (bench.add_bench, bench.cmd_bench),
    "tune": (bench.add_tune, bench.cmd_tune),
    "forget-feature": (feature.add_forget_feature, feature.cmd_forget_feature),
    "report": (bench.add_report, bench.cmd_report),
    "audit": (audit.add_audit, audit.cmd_audit),
    "weak": (weak.add_weak, weak.cmd_weak),
    "train-lm": (lm.add_train_lm, lm.cmd_train_lm),
    "exposure": (lm.add_exposure, lm.cmd_exposure),
    "registry": (registry.add_registry, registry.cmd_registry),
    "request": (registry.add_request, registry.cmd_request),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="unlearnkit", description="Make a trained classifier forget, and measure that it forgot.")
    from unlearnkit._version import __version__

    parser.add_argument("--version", action="version", version=f"unlearnkit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> Any:
    """SIGTERM unwinds like Ctrl-C, so every writer removes its temporary files (SIGKILL's are swept later).

    Returns the previous handler (restored when :func:`main` returns), or None off the main thread.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (also used by the tests)."""
    import signal

    parser = build_parser()
    previous = install_sigterm_handler()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_BAD_INPUT
        status = COMMANDS[args.command][1](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return status
    except UnlearnkitError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `unlearnkit list methods | head`: the reader has gone; stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush does not fail again
        return EXIT_OK
    except OSError as exc:  # the environment, not a bug: a full disk, a permission, a vanished folder
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # internal error: show where, exit 1
        import traceback

        traceback.print_exc()
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
