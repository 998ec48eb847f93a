"""`unlearnkit bench`, `tune` and `report`: benchmark files, Optuna tuning on the holdout split, leaderboards."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError


def add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark file (datasets x models x scenarios x methods x seeds)")
    p.add_argument("config", help="benchmark file (.toml, .yaml); see benchmarks/ and docs/benchmarks.md")
    p.add_argument("--out", required=True, help="new folder for the run (records.jsonl, run.json, cache/)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (skips finished rows)")
    p.add_argument("--cache", default=None, help="model cache shared across runs (default: OUT/cache)")
    p.add_argument("--seeds", default=None, help="override the file's seeds, e.g. 0,1")
    p.add_argument("--executor", default=None, help="override the file's executor: local or ray")
    p.add_argument("--report", action="store_true", help="also write report.md and report.html into --out")
    p.add_argument("--no-audit", action="store_true", help="skip the file's [audit] table (populations, F, U-LiRA)")
    p.add_argument(
        "--settings",
        action="append",
        default=[],
        help="TOML fragment with [methods.NAME] settings (e.g. a tune run's best.toml) overriding the file's",
    )
    common.add_runtime(p)


def add_tune(sub: Any) -> None:
    p = sub.add_parser("tune", help="Optuna search of a method's settings: Avg. Gap to Retrain on the holdout split")
    p.add_argument("config", help="benchmark file giving the data, model, training recipe and scenarios")
    p.add_argument("--method", required=True, help="method to tune (its settings in the file are the fixed ones)")
    p.add_argument("--scenario", default=None, help="scenario of the file to tune on (default: the first)")
    p.add_argument("--dataset", default=None, help="dataset of the file (default: the first)")
    p.add_argument("--model", dest="arch", default=None, help="model of the file (default: the first)")
    p.add_argument("--trials", type=int, default=20, help="trial budget")
    p.add_argument("--space", default=None, help="TOML search space (default: derived from the method's defaults)")
    p.add_argument("--tuning-seeds", default="1000,1001", help="seeds tuned on (keep them apart from reported seeds)")
    common.add_seed(p, "seed of the sampler")
    p.add_argument("--cache", default=None, help="model cache shared with bench (default: OUT/cache)")
    p.add_argument("--out", required=True, help="new folder for best.toml (a [methods] fragment) and history.json")
    common.add_runtime(p)


def add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="leaderboard of a benchmark run: Markdown and a self-contained HTML page")
    p.add_argument("run_dir", help="folder written by unlearnkit bench")
    p.add_argument("--out", default=None, help="folder for report.md and report.html (default: RUN_DIR)")


def cmd_bench(args: argparse.Namespace) -> int:
    from unlearnkit.running.benchconfig import load_config
    from unlearnkit.running.benchmark import run_benchmark

    common.check_out_folder(args.out)
    common.check_out_folder(args.cache, "--cache")
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = list(common.ints(args.seeds, "--seeds"))
    config = load_config(args.config, overrides=overrides, settings=args.settings)
    if args.executor is not None:
        from dataclasses import replace

        from unlearnkit.running.executor import EXECUTORS

        EXECUTORS.get(args.executor)
        config = replace(config, executor={**config.executor, "name": args.executor})
    start = time.perf_counter()
    try:
        run = run_benchmark(
            config,
            args.out,
            resume=args.resume,
            cache_dir=args.cache,
            progress=common.show_progress(args),
            log=common.say,
        )
    except KeyboardInterrupt:
        common.say(f"bench interrupted; the rows written so far are kept: continue with "
                   f"`unlearnkit bench {args.config} --out {args.out} --resume`")  # fmt: skip
        raise
    errors = [r for r in run.records if r.get("status") != "ok"]
    print(
        f"{config.name}: {len(run.records)} rows in {args.out}: {len(run.records) - len(errors)} done, "
        f"{len(errors)} failed, in {time.perf_counter() - start:.1f}s"
    )
    if config.audit is not None and not args.no_audit:  # after the method cells; its populations resume from the cache
        from unlearnkit.cli.audit import print_unit
        from unlearnkit.running.audit import AUDIT_FILE, AuditConfig, run_audit

        common.say(f"{config.name}: audit with N = {config.audit['models']} models per population "
                   "(skip it with --no-audit)")  # fmt: skip
        run_audit(config, args.out, AuditConfig(**config.audit), cache_dir=args.cache, executor=args.executor,
                  on_unit=print_unit)  # fmt: skip
        print(f"wrote {Path(args.out) / AUDIT_FILE}")
    if args.report:
        from unlearnkit.reporting.report import write_report

        for path in write_report(args.out):
            print(f"wrote {path}")
    if errors:
        common.say(f"error: {len(errors)} of {len(run.records)} rows failed, e.g. {errors[0].get('error')}")
        return common.EXIT_FAILED_ROWS
    return common.EXIT_OK


def cmd_tune(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir
    from unlearnkit.env import set_threads
    from unlearnkit.files import write_json_atomic, write_text_atomic
    from unlearnkit.running.benchconfig import load_config, read_toml
    from unlearnkit.running.benchmark import unit_spec
    from unlearnkit.running.tuning import defaults_in, holdout_gap_objective, method_space, parse_space, search
    from unlearnkit.validation import Interval, validate_parameters

    start = time.perf_counter()  # wall time of the whole command: data, references, every trial
    set_threads(args.threads)
    validate_parameters("tune", {"--trials": args.trials}, {"--trials": Interval(int, 1, None)})
    config = load_config(args.config)
    out = check_output_dir(args.out)
    seeds = common.ints(args.tuning_seeds, "--tuning-seeds")
    clash = sorted(set(seeds) & set(config.seeds))
    if clash:
        raise ParameterError(
            f"The '--tuning-seeds' parameter must not share seeds with the file's reported seeds; both have {clash}."
        )

    def pick(items: Sequence[Any], name: str | None, param: str, label: Any) -> Any:
        if name is None:
            return items[0]
        for item in items:
            if label(item) == name:
                return item
        raise ParameterError(
            f"The '{param}' parameter must be one of the file's {[label(i) for i in items]}; got {name!r}."
        )

    scenario = pick(config.scenarios, args.scenario, "--scenario", lambda e: e.name)
    dataset = pick(config.datasets, args.dataset, "--dataset", lambda d: d)
    model = pick(config.models, args.arch, "--model", lambda e: e.name)
    method = next((m for m in config.methods if m.name == args.method), None)
    if method is None:
        raise ParameterError(
            f"The '--method' parameter must be a method of the file ({[m.name for m in config.methods]}); "
            f"got {args.method!r}."
        )
    if any(sk.scenario == scenario.name and sk.method == method.name for sk in config.skipped):
        raise ParameterError(f"The '--method' {method.name!r} cannot run on scenario {scenario.name!r}.")
    space = parse_space(read_toml(args.space), owner=args.space) if args.space else method_space(method.name)
    space = {k: v for k, v in space.items() if k not in method.options}  # the file's settings stay fixed
    if not space:
        raise ParameterError(f"method {method.name!r} has no setting left to search; give a --space file.")
    spec = unit_spec(config, dataset, model, scenario)
    cache = args.cache or str(Path(args.out) / "cache")
    objective = holdout_gap_objective(spec, method.name, seeds, cache)
    result = search(
        objective,
        space,
        trials=args.trials,
        seed=args.seed,
        fixed=method.options,
        progress=common.show_progress(args),
        start=[defaults_in(method.name, space)],  # the defaults first: the search never reports worse than them
    )
    seconds = time.perf_counter() - start
    lines = [
        f"# unlearnkit tune {args.config} --method {method.name}: best Avg. Gap to Retrain on the holdout split "
        f"{result.best_value:.3f} points",
        f"# {args.trials} trials, tuning seeds {list(seeds)}, scenario {scenario.name}, {dataset}/{model.name}, "
        f"{seconds:.0f} s wall time. Use with: unlearnkit bench CONFIG --settings best.toml",
        f"[methods.{method.name}]",
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in sorted(result.best_params.items())]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "best.toml", "\n".join(lines) + "\n")
    write_json_atomic(
        out / "history.json",
        {
            "space": {k: p.to_dict() for k, p in space.items()},
            **result.to_dict(),
            "tuning_seeds": list(seeds),
            "seconds": seconds,
        },
    )
    print("\n".join(lines))
    states = [h["state"] for h in result.history]
    fell = sum(1 for h in result.history if h["state"] == "COMPLETE" and h.get("facts", {}).get("collapsed"))
    print(
        f"trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed; "
        f"{fell} of the complete ones collapsed the model (retain accuracy at most twice chance)"
    )
    return common.EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from unlearnkit.reporting.report import write_report

    common.check_out_folder(args.out)
    folder = Path(args.run_dir)
    if not (folder / "run.json").is_file() and not (folder / "audit.json").is_file():
        raise ParameterError(
            "The 'RUN_DIR' parameter must be a folder written by unlearnkit bench (with run.json) or by "
            f"unlearnkit audit (with audit.json); got {args.run_dir!r}."
        )
    for path in write_report(args.run_dir, out=args.out):
        print(f"wrote {path}")
    return common.EXIT_OK
