"""`unlearnkit weak`: the weak-unlearning test (linear-filtration paper): classifiers telling unlearned models
from never-trained ones."""

from __future__ import annotations

import argparse
import time
from typing import Any

from unlearnkit.cli import common
from unlearnkit.errors import ParameterError

# unlearnkit.evaluation.weak.ADVANTAGE_CLASSIFIERS, spelt here so that --help needs no torch (a test keeps them equal)
CLASSIFIERS = ("knn", "random_forest", "adaboost", "xgboost")


def add_weak(sub: Any) -> None:
    p = sub.add_parser(
        "weak",
        help="weak-unlearning test: Bayes advantage of classifiers telling unlearned models from never-trained ones",
    )
    common.add_data(p)
    p.set_defaults(holdout_fraction=0.2)
    common.add_training(p, epochs=3)
    p.set_defaults(arch="mlp", model_kwargs='{"widths": [50]}', lr=0.1)
    p.add_argument("--forget-classes", default="0", help="comma-separated classes to unlearn (default 0)")
    p.add_argument("--methods", default="filtration", help="comma-separated methods applied to the seen models")
    common.add_settings(p, "--set", "METHOD.KEY=VALUE", "method setting, e.g. filtration.z=naive")
    p.add_argument("--models", type=int, default=100, help="models per population (default 100, as the paper)")
    p.add_argument(
        "--classifiers",
        default="knn,random_forest,adaboost",
        help=f"comma-separated advantage classifiers, from {', '.join(CLASSIFIERS)} (default: %(default)s)",
    )
    p.add_argument("--features", default="logits", help="logits, probabilities, or both comma-separated")
    p.add_argument("--eval-per-class", type=int, default=None, help="test samples per class (default: all)")
    p.add_argument("--executor", default="local", help="local or ray")
    p.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start one)")
    p.add_argument("--cache", default=None, help="population cache folder (default: ~/.cache/unlearnkit/populations)")
    common.add_seed(p, "seeds the model split, classifiers and bootstrap")
    common.add_json(p, "write the result record to this file")
    common.add_runtime(p)


def cmd_weak(args: argparse.Namespace) -> int:
    import os

    from unlearnkit.evaluation.weak import ADVANTAGE_CLASSIFIERS
    from unlearnkit.files import write_json_atomic
    from unlearnkit.methods import make_method
    from unlearnkit.running.executor import make_executor
    from unlearnkit.running.populations import Population, PopulationConfig, weak_unlearning
    from unlearnkit.validation import Interval, validate_parameters

    common.check_json_target(args)
    validate_parameters("weak", {"--models": args.models}, {"--models": Interval(int, 2, None)})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ParameterError(f"The '--methods' parameter must name at least one method; got {args.methods!r}.")
    settings = common.parse_settings(args.set, qualified=True)
    for name in settings:
        if name not in methods:
            raise ParameterError(f"The '--set' parameter names method {name!r}, which is not in --methods {methods}.")
    for name in methods:
        method = make_method(name, **settings.get(name, {}))
        if "classes" not in method.supports:
            raise ParameterError(f"The '--methods' parameter must name methods that forget classes; {name!r} does not.")
    classifiers = [c.strip() for c in args.classifiers.split(",") if c.strip()]
    for c in classifiers:
        ADVANTAGE_CLASSIFIERS.get(c)
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    for f in features:
        if f not in ("logits", "probabilities"):
            raise ParameterError(f"The '--features' parameter must be logits and/or probabilities; got {f!r}.")
    config = PopulationConfig(
        dataset=args.dataset,
        model=args.arch,
        model_kwargs=common.model_kwargs(args.model_kwargs),
        train=common.train_config(args),
        forget_classes=common.ints(args.forget_classes, "--forget-classes"),
        holdout_fraction=args.holdout_fraction,
        train_size=args.train_size,
        eval_per_class=args.eval_per_class,
        data_dir=args.data_dir,
    )
    options: dict[str, Any] = {"threads": 1 if args.threads is None else args.threads}
    if args.ray_address is not None:
        if args.executor != "ray":
            raise ParameterError("The '--ray-address' parameter needs --executor ray.")
        options["address"] = args.ray_address
    cache = args.cache or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "unlearnkit", "populations"
    )
    n = args.models
    start = time.perf_counter()
    with make_executor(args.executor, **options) as executor:
        population = Population(config, cache, executor=executor, progress=common.show_progress(args))
        population.data()  # bad data settings fail here, before any training
        result = weak_unlearning(
            population,
            {name: (name, settings.get(name, {})) for name in methods},
            seen_seeds=range(n),
            not_seen_seeds=range(100_000, 100_000 + n),
            classifiers=classifiers,
            seed=args.seed,
            features=features,
        )
    result["seconds"] = time.perf_counter() - start
    result["members_trained"] = len(population.trained)
    result["cache"] = cache
    print(
        f"weak-unlearning test: {args.dataset}/{args.arch}, classes {list(config.forget_classes)}, "
        f"{n} + {n} models ({len(population.trained)} trained now, the rest from {cache})"
    )
    print(f"{'method':<16}{'features':<15}{'classifier':<15}{'group':<11}advantage [95% interval]")
    for name, entry in result["variants"].items():
        for row in entry["advantage"]:
            print(
                f"{name:<16}{row['features']:<15}{row['classifier']:<15}{row['group']:<11}"
                f"{row['advantage']:.3f} [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}]"
            )
        if entry["failures"]:
            print(f"{name}: {len(entry['failures'])} failed tasks: {entry['failures'][0]['error']}")
    print("0 = indistinguishable from models that never saw the classes; 1 = always told apart")
    if args.json:
        write_json_atomic(args.json, result)
    return common.EXIT_OK
