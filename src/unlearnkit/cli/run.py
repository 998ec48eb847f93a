"""`unlearnkit run`: end to end (original, retrained reference, each method, one table); the demo."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from unlearnkit.cli import common


def add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run", help="end to end: original, retrained reference, each method, table (no options: the demo)"
    )
    common.add_data(p, defaults=False)
    common.add_training(p, epochs=3)
    common.add_scenario(p)
    p.add_argument("--methods", default=None, help="comma-separated methods (default: finetune,neggrad,neggrad_plus)")
    common.add_settings(p, "--set", "METHOD.KEY=VALUE", "method setting, e.g. --set neggrad_plus.beta=0.9")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--out", default=None, help="new folder for record.json and table.md")
    common.add_json(p, "write the run record to this file")
    p.add_argument("--track-validation", action="store_true", help="holdout accuracy per epoch -> epochs_to_best")
    common.add_runtime(p)


def cmd_run(args: argparse.Namespace) -> int:
    from unlearnkit.core.artifacts import check_output_dir
    from unlearnkit.data import load_dataset
    from unlearnkit.env import resolve_device, set_threads
    from unlearnkit.files import write_json_atomic, write_text_atomic
    from unlearnkit.running.experiment import (
        FEATURE_METHODS,
        RUN_METHODS,
        ExperimentConfig,
        build_record,
        demo_configs,
        run_experiment,
    )

    set_threads(args.threads)
    device = resolve_device(args.device)
    if args.out:
        check_output_dir(args.out)
    common.check_json_target(args)
    seeds = common.ints(args.seeds, "--seeds")
    demo = (
        args.dataset is None
        and args.scenario is None
        and all(
            getattr(args, f) is None
            for f in ("forget_classes", "forget_fraction", "forget_count", "forget_indices", "methods")
        )
        and args.train_size is None
        and not args.set
    )
    if demo:
        configs = demo_configs(seeds=seeds, device=args.device, data_dir=args.data_dir)
    else:
        scenario = common.scenario_from_args(args)
        args.arch = common.model_name(args, args.dataset or "mnist")
        default = FEATURE_METHODS if scenario.kind == "features" else RUN_METHODS
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else default
        configs = [
            ExperimentConfig(
                dataset=args.dataset or "mnist",
                model=args.arch,
                model_kwargs=common.model_kwargs(args.model_kwargs),
                scenario=scenario.name,
                scenario_options={k: v for k, v in scenario.describe().items() if k != "name"},
                methods=methods,
                method_params=common.parse_settings(args.set, qualified=True),
                seeds=seeds,
                train=common.train_config(args),
                holdout_fraction=args.holdout_fraction,
                train_size=args.train_size,
                data_dir=args.data_dir,
                device=args.device,
                track_validation=args.track_validation,
            )
        ]
    for c in configs:
        c.validate()
    start = time.perf_counter()
    experiments = []
    tables = []
    loaded: dict[tuple[str, str | None], Any] = {}
    for c in configs:
        key = (c.dataset, c.data_dir)
        if key not in loaded:  # scenarios on the same data share one load
            loaded[key] = load_dataset(c.dataset, data_dir=c.data_dir)
        result = run_experiment(c, progress=common.show_progress(args), log=common.say, dataset=loaded[key])
        experiments.append(result)
        tables.append(result.table())
        print(tables[-1] + "\n", flush=True)
        for d in result.data:  # a table over a model that learned nothing reads like a result: say so
            common.warn_near_chance(d["original"]["test_accuracy_all"], loaded[key].num_classes,
                                    f"the original's test accuracy (seed {d['seed']})",
                                    f"--model (now {c.model}), --epochs, --lr")  # fmt: skip
    record = build_record(experiments, device=device, extra_config={"preset": "demo"} if demo else None)
    print(f"total {time.perf_counter() - start:.1f}s")
    if args.json:
        write_json_atomic(args.json, record)
    if args.out:
        from unlearnkit.files import dumps

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "record.json", dumps(record))
        write_text_atomic(out / "table.md", "\n\n".join(f"```\n{t}\n```" for t in tables) + "\n")
    return common.EXIT_OK
