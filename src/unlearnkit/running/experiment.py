"""End-to-end experiments: original, retrained reference, each method, table.

An :class:`ExperimentConfig` is a validated, frozen description of one
scenario; :func:`run_experiment` trains the original, retrains the reference
and runs each method for every seed, collects outputs once per model and
evaluates every metric on them. Results are plain dicts in the JSON record
shape (see ``docs/cli.md``); reports are built from those records only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from unlearnkit.core.models import MODELS, build_model_for
from unlearnkit.core.training import TrainConfig, fit
from unlearnkit.data.datasets import DATASETS, Dataset, load_dataset
from unlearnkit.data.scenarios import SCENARIOS, make_scenario
from unlearnkit.data.splits import split_dataset
from unlearnkit.env import environment, resolve_device
from unlearnkit.errors import DivergenceError, ParameterError, UnsupportedRequestError
from unlearnkit.evaluation.collection import collect
from unlearnkit.evaluation.metrics import evaluate, gap
from unlearnkit.evaluation.outputs import Collected
from unlearnkit.evaluation.scores import accuracy
from unlearnkit.methods import Outcome, Retrain, make_method
from unlearnkit.reporting.tables import mean_std, results_table

# Metrics whose gap to the retrained reference is reported with each row.
GAP_METRICS = ("forget_accuracy", "retain_accuracy", "test_accuracy", "mia_accuracy")


@dataclass(frozen=True)
class ExperimentConfig:
    """One scenario on one dataset and model, over one or more seeds.

    Attributes:
        dataset, model: Registry names; ``model_kwargs`` go to the model factory.
        scenario: Registry name (``"class"`` or ``"random"``); ``scenario_options``
            its options (e.g. ``{"forget_classes": (3,)}`` or ``{"fraction": 0.1}``).
        methods: Methods to compare (``retrain`` and the ``original`` row are always added).
        method_params: Settings per method name.
        seeds: Each seed fixes split, request, initial weights and data order.
        train: Recipe of the original (and of ``retrain``).
        holdout_fraction: Share of the training partition never trained on.
        train_size: Train on a seeded subset of this size (memorisation for random forgetting).
    """

    dataset: str = "mnist"
    model: str = "lenet"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    scenario: str = "class"
    scenario_options: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("finetune", "neggrad", "neggrad_plus")
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    train: TrainConfig = field(default_factory=TrainConfig)
    holdout_fraction: float = 0.1
    train_size: int | None = None
    data_dir: str | None = None
    device: str = "cpu"
    name: str | None = None
    track_validation: bool = False  # holdout accuracy per epoch -> epochs_to_best (not timed)

    def validate(self) -> None:
        """Check every name, option and setting before any work is done."""
        DATASETS.get(self.dataset)
        MODELS.get(self.model)
        scenario = make_scenario(self.scenario, **dict(self.scenario_options))
        kind = scenario.kind
        if not self.seeds:
            raise ParameterError("The 'seeds' parameter must hold at least one seed; got [].")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ParameterError(f"The 'seeds' parameter must hold ints >= 0; got {s!r}.")
        for name in self.method_params:  # settings may be given for methods not run; names must exist
            make_method(name, **dict(self.method_params[name]))
        for name in self.methods:
            method = make_method(name, **dict(self.method_params.get(name, {})))
            if kind not in method.supports:
                raise UnsupportedRequestError(
                    f"method {name!r} does not support {kind} requests (scenario {self.scenario!r}); "
                    f"it supports: {', '.join(sorted(method.supports))}."
                )
        resolve_device(self.device)

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d


@dataclass
class ExperimentResult:
    """Result rows (record shape) plus per-seed facts about the data and original."""

    config: ExperimentConfig
    results: list[dict[str, Any]]
    data: list[dict[str, Any]]

    def table(self) -> str:
        title = self.config.name or f"{self.config.dataset} / {self.config.model} / {self.config.scenario}"
        return results_table(self.results, title=title) + "\n" + self.footnote()

    def footnote(self) -> str:
        """How much the original memorised, and how to read the table."""
        facts = [d["original"] for d in self.data]
        train = mean_std([f["train_accuracy"] for f in facts])[0]
        test = mean_std([f["test_accuracy_all"] for f in facts])[0]
        gap_ = mean_std([f["train_test_gap"] for f in facts])[0]
        seeds = ", ".join(str(d["seed"]) for d in self.data)
        lines = []
        if train is not None and test is not None and gap_ is not None:
            lines.append(
                f"original: train acc {100 * train:.1f}%, test acc {100 * test:.1f}% "
                f"(train-test gap {100 * gap_:.1f} points); seeds {seeds}; "
                f"n_forget {self.data[0]['n_forget']}, n_retain {self.data[0]['n_retain']}"
            )
        if SCENARIOS.get(self.config.scenario).kind == "features":
            pattern = getattr(SCENARIOS.get(self.config.scenario), "pattern", "B")
            keep = "D_r, D_f,clean, D_r,extra" if pattern == "B" else "D_r, D_f, D_r,extra"
            lines.append(
                f"goal (000): keep {keep} high and the attack success low; retrain = trained on clean data; "
                "speed-up = retrain seconds / method seconds"
            )
        else:
            lines.append("goal: forget acc and MIA acc close to retrain's; speed-up = retrain seconds / method seconds")
        return "\n".join(lines)


def _row(
    method: str, seed: int, scenario: str, seconds: float | None, metrics: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "method": method,
        "seed": seed,
        "scenario": scenario,
        "seconds": seconds,
        "speedup": None,
        "metrics": metrics,
        **extra,
    }


def run_experiment(
    config: ExperimentConfig,
    *,
    progress: bool = False,
    dataset: Dataset | None = None,
    log: Callable[[str], None] | None = None,
) -> ExperimentResult:
    """Run ``config`` for every seed and return rows for original, retrain and each method."""
    config.validate()
    device = resolve_device(config.device)
    ds = dataset if dataset is not None else load_dataset(config.dataset, data_dir=config.data_dir)
    scenario = make_scenario(config.scenario, **dict(config.scenario_options))
    results: list[dict[str, Any]] = []
    data_facts: list[dict[str, Any]] = []
    say = log or (lambda _msg: None)
    for seed in config.seeds:
        split = split_dataset(ds, seed=seed, holdout_fraction=config.holdout_fraction, train_size=config.train_size)
        splits = scenario.prepare(split, seed=seed)
        say(
            f"[{config.scenario} seed {seed}] train {len(splits.train)} (forget {len(splits.forget)}, "
            f"retain {len(splits.retain)}), holdout {len(splits.holdout)}, test {len(splits.test)}"
        )

        original = build_model_for(ds, config.model, seed=seed, **dict(config.model_kwargs))
        stats = fit(original, splits.train, config.train, seed=seed, device=device, progress=progress, desc="original")
        original.eval()
        if splits.kind == "features":  # 000's EWC Fisher is a training-time artifact: computed with the original
            from unlearnkit.core.gradients import training_fisher

            training_fisher(original, splits, device=device)
        orig_c = collect(original, splits, device=device)
        orig_m = evaluate(orig_c, seed=seed)
        facts = original_facts(orig_c, orig_m)
        data_facts.append(
            {
                "seed": seed,
                "split": split.describe(),
                "dataset_sha256": ds.content_hash,
                "request": splits.request.describe() if splits.request else None,
                "forget_sha256": splits.request_hash(),
                "n_forget": len(splits.forget),
                "n_retain": len(splits.retain),
                "original": facts,
            }
        )
        say(
            f"[{config.scenario} seed {seed}] original: train acc {100 * facts['train_accuracy']:.1f}%, "
            f"test acc {100 * facts['test_accuracy_all']:.1f}% (gap {100 * facts['train_test_gap']:.1f} points), "
            + "".join(
                f"{label} {100 * v:.1f}%, "
                for label, key in (("MIA acc", "mia_accuracy"), ("attack success", "attack_success_rate"))
                if isinstance(v := orig_m.get(key), float)
            )
            + f"trained in {stats.seconds:.1f}s"
        )

        run: dict[str, Any] = {
            "seed": seed,
            "recipe": config.train,
            "device": device,
            "progress": progress,
            "track_validation": config.track_validation,
        }
        retrain = Retrain().unlearn(original, splits, **run)
        ref_m = evaluate(collect(retrain.model, splits, device=device), seed=seed)
        results.append(
            _row(
                "original",
                seed,
                config.scenario,
                stats.seconds,
                orig_m,
                gap=_gaps(orig_m, ref_m),
                steps=stats.steps,
                samples_seen={"train": stats.samples_seen},
            )
        )
        results.append(_outcome_row(retrain, seed, config.scenario, ref_m, ref_m, retrain.seconds))
        for name in config.methods:
            if name == "retrain":
                continue
            method = make_method(name, **dict(config.method_params.get(name, {})))
            try:
                outcome = method.unlearn(original, splits, **run)
            except DivergenceError as exc:  # recorded, not fatal: the other methods still run
                say(f"[{config.scenario} seed {seed}] {name} failed: {exc}")
                results.append(_row(name, seed, config.scenario, None, {}, error=str(exc), params=method.get_params()))
                continue
            m = evaluate(collect(outcome.model, splits, device=device), seed=seed)
            results.append(_outcome_row(outcome, seed, config.scenario, m, ref_m, retrain.seconds))
    return ExperimentResult(config, results, data_facts)


def _outcome_row(
    outcome: Outcome,
    seed: int,
    scenario: str,
    metrics: dict[str, Any],
    reference: dict[str, Any],
    retrain_seconds: float,
) -> dict[str, Any]:
    """A result row for an unlearning outcome, with its gap to and speed-up over retraining."""
    row = _row(
        outcome.method,
        seed,
        scenario,
        outcome.seconds,
        metrics,
        gap=_gaps(metrics, reference),
        steps=outcome.steps,
        samples_seen=outcome.samples_seen,
        params=outcome.params,
        diagnostics=summarize_diagnostics(outcome.diagnostics),
    )
    row["speedup"] = retrain_seconds / outcome.seconds if outcome.seconds > 0 else None
    return row


#: Longest list of scalars (or of flat dicts of scalars) a record keeps from an outcome's diagnostics.
MAX_RECORDED_LIST = 1_000
_SCALAR = (int, float, bool, str, type(None))


def _recordable(v: Any) -> bool:
    if isinstance(v, (int, float, bool, str, dict)):
        return True
    if isinstance(v, (list, tuple)) and len(v) <= MAX_RECORDED_LIST:
        return all(isinstance(x, _SCALAR) or (isinstance(x, dict) and all(isinstance(y, _SCALAR) for y in x.values()))
                   for x in v)  # fmt: skip
    return False


def summarize_diagnostics(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """An outcome's diagnostics as records keep them: scalars, dicts, and short lists of scalars or of flat dicts
    (epochs to best, neutralisation facts, SCRUB's per-round losses, per-epoch validation accuracy); tensors
    and long per-sample lists are left out."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in diagnostics.items() if _recordable(v)}


def _gaps(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: gap(metrics.get(k), reference.get(k)) for k in GAP_METRICS}


def original_facts(c: Collected, m: Mapping[str, Any]) -> dict[str, Any]:
    """Train accuracy, test accuracy and their gap: how much the original memorised."""
    from unlearnkit.evaluation.outputs import Outputs

    train = Outputs(
        torch.cat([c["forget"].logits, c["retain"].logits]), torch.cat([c["forget"].labels, c["retain"].labels])
    )
    tr, te = accuracy(train), accuracy(c["test"])
    return {
        "train_accuracy": tr,
        "test_accuracy_all": te,
        "train_test_gap": (tr - te) if tr is not None and te is not None else None,
    }


def build_record(
    experiments: Sequence[ExperimentResult],
    *,
    device: torch.device | str,
    extra_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON record of a run: config, env, data facts and result rows."""
    configs = [e.config.describe() for e in experiments]
    config: dict[str, Any] = configs[0] if len(configs) == 1 else {"experiments": configs}
    if extra_config:
        config = {**config, **extra_config}
    return {
        "config": config,
        "env": environment(device),
        "data": [d for e in experiments for d in e.data],
        "results": [r for e in experiments for r in e.results],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


#: The demo's two scenarios: (shipped benchmark file, title, methods with their settings). The set-ups are those
#: benchmarks' (``benchmarks/NAME.toml``: data, model, training, request), so the leaderboard's settings apply;
#: the methods are the top three of that benchmark's ranking in ``docs/results/leaderboard.json`` — the tuned
#: table's where the benchmark is tuned, else the defaults table's; by F where audited, else by Avg. Gap — with
#: the settings they ran with there. ``tests/test_demo.py`` checks the set-ups against the files and the choices
#: against the leaderboard's record, so neither drifts from the page.
DEMO: tuple[tuple[str, str, dict[str, dict[str, Any]]], ...] = (
    ('mnist_class', 'MNIST / LeNet: forget class 3 (the mnist_class benchmark: 20,000 training images)',
     {'boundary_shrink': {'batch_size': 64,
                     'epochs': 6,
                     'epsilon': 0.12003470654393275,
                     'lr': 0.000646481116332319,
                     'momentum': 0.9,
                     'optimizer': 'sgd'},
 'unsir': {'batch_size': 32,
           'impair_lr': 0.006308929382625688,
           'noise_count': 128,
           'noise_lr': 0.1,
           'noise_reg': 0.30922822902740366,
           'noise_repeats': 32,
           'noise_steps': 50,
           'repair_lr': 0.001695501544898451,
           'retain_per_class': 100},
 'finetune': {'batch_size': 126,
              'epochs': 2,
              'lr': 0.011125163158203277,
              'mask': None,
              'mask_ratio': 0.5,
              'momentum': 0.2620699767126225,
              'optimizer': 'adam'}}),
    ('mnist_random10', 'MNIST / MLP: forget a random 10% (the mnist_random10 benchmark: 2,000 images, memorised)',
     {'rld': {'batch_size': 32,
         'epochs': 15,
         'ewc_step': 'gradient',
         'lam_kl': 25581.716333846227,
         'lr': 5.24186278446703e-06,
         'momentum': 0.35772266375391604,
         'rld_classes': 'others'},
 'forsaken': {'iterations': 23,
              'lam': 0.16051911333587626,
              'lbfgs_lr': 3.0374980367128455,
              'lbfgs_steps': 9,
              'penalty_set_size': 229,
              'pull_toward': 'true_label',
              'weighted_penalty': False,
              'xi': 2.693883019285411},
 'l1_sparse': {'batch_size': 128,
               'epochs': 4,
               'gamma': 1.4513388230226925e-06,
               'lr': 0.08077118219860982,
               'mask': None,
               'mask_ratio': 0.5,
               'momentum': 0.9,
               'optimizer': 'sgd'}}),
)  # fmt: skip
#: The shipped benchmarks' set-ups the demo runs (mirrors of their files; tests/test_demo.py compares them).
DEMO_SETUPS: dict[str, dict[str, Any]] = {
    "mnist_class": {"dataset": "mnist", "model": "lenet", "scenario": "class",
                    "scenario_options": {"forget_classes": (3,)}, "train_size": 20000, "holdout_fraction": 0.1,
                    "train": TrainConfig(epochs=4, lr=0.02, batch_size=128)},
    "mnist_random10": {"dataset": "mnist", "model": "mlp", "model_kwargs": {"widths": [256]}, "scenario": "random",
                       "scenario_options": {"fraction": 0.1}, "train_size": 2000, "holdout_fraction": 0.1,
                       "train": TrainConfig(epochs=40, lr=0.05, batch_size=64)},
}  # fmt: skip


def demo_configs(
    *, seeds: tuple[int, ...] = (0,), device: str = "cpu", data_dir: str | None = None
) -> list[ExperimentConfig]:
    """The bundled default: the ``mnist_class`` and ``mnist_random10`` benchmarks' set-ups on real MNIST, each with
    the leaderboard's three best methods at the settings they ran with there (:data:`DEMO`)."""
    return [
        ExperimentConfig(name=title, methods=tuple(methods), method_params=methods, seeds=seeds, device=device,
                         data_dir=data_dir, **DEMO_SETUPS[bench])
        for bench, title, methods in DEMO
    ]  # fmt: skip


RUN_METHODS = ("finetune", "neggrad", "neggrad_plus")  # `unlearnkit run`'s methods when none are named
FEATURE_METHODS = ("rld", "selective_forgetting")  # backdoor / leakage scenarios (000)


__all__ = ["DEMO", "ExperimentConfig", "ExperimentResult", "build_record", "demo_configs", "run_experiment"]
