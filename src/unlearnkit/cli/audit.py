"""`unlearnkit audit`: per-example evidence over model populations for every method of a benchmark file."""

from __future__ import annotations

import argparse
from typing import Any

from unlearnkit.cli import common


def add_audit(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="populations of unlearned and retrained models: the competition's F, U-LiRA, RMIA, KLoM",
    )
    p.add_argument("config", help="benchmark file (its [audit] table gives the defaults)")
    p.add_argument("--out", required=True, help="folder for audit.json (and cache/ unless --cache)")
    p.add_argument("--models", type=int, default=None, help="N models per population (default: [audit] or 32)")
    p.add_argument("--methods", default=None, help="comma-separated methods of the file (default: all of them)")
    p.add_argument("--protocol", default=None, choices=("per_original", "challenge"),
                   help="per_original (default): N originals, each unlearned once; challenge: 1 original")  # fmt: skip
    p.add_argument("--executor", default=None, help="local or ray (default: the file's)")
    p.add_argument("--cache", default=None, help="population cache, shared across audits (default: OUT/cache)")
    common.add_runtime(p)


def cmd_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unlearnkit.files import check_writable_dir
    from unlearnkit.running.audit import AUDIT_FILE, AuditConfig, run_audit
    from unlearnkit.running.benchconfig import load_config

    config = load_config(args.config)
    table = dict(config.audit or {})
    if args.models is not None:
        table["models"] = args.models
    if args.protocol is not None:
        table["protocol"] = args.protocol
    audit = AuditConfig(**table)
    chosen = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    common.check_out_folder(args.out)
    common.check_out_folder(args.cache, "--cache")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # an existing folder is reused: the cache makes a rerun resume
    check_writable_dir(out, param="--out", what="the audit")
    record = run_audit(config, out, audit, methods=chosen, cache_dir=args.cache, executor=args.executor,
                       on_unit=print_unit)  # fmt: skip
    print(f"wrote {out / AUDIT_FILE} ({record['seconds']:.0f} s)")
    return 0


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def print_unit(unit: dict[str, Any]) -> None:
    """One unit's evidence as a table on stdout (ceiling first, floor last)."""
    print(f"{unit['unit']}: N = {unit['models']} per population ({unit['protocol']}), {unit['forget_size']} forget "
          f"samples; no ε above {unit['resolution']:.0f} can be told apart at this N")  # fmt: skip
    head = f"  {'':<22} {'F':>6} {'final':>6} {'U-LiRA acc':>10} {'RMIA AUC':>9} {'KLoM forget':>11} {'seconds':>8}"
    print(head)
    rows = [("ceiling (retrained)", unit["ceiling"]), *unit["rows"].items(), ("floor (original)", unit["floor"])]
    for label, r in rows:
        ul = r["ulira"]["balanced_accuracy"] if r.get("ulira") else None
        print(f"  {label:<22} {_fmt(r['forget_score']):>6} {_fmt(r['final_score']):>6} {_fmt(ul):>10} "
              f"{_fmt(r['rmia'].get('auc')):>9} {_fmt(r['klom']['forget']['mean'], 2):>11} "
              f"{_fmt(r.get('seconds'), 2):>8}")  # fmt: skip
    for note in unit["notes"]:
        print(f"  note: {note}")
    for name, secs in unit.get("left_out", {}).items():
        print(f"  left out: {name} (its first run took {secs:.1f} s, over the audit's max_seconds)")
