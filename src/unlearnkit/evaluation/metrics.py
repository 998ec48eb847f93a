"""Metrics: pure functions over :class:`~unlearnkit.evaluation.outputs.Collected` outputs.

Every metric is registered with its direction: ``"higher"`` (higher is
better), ``"lower"``, or ``"retrain"`` (as close to the retrained reference as
possible). Definitions are in ``docs/metrics.md``. Functions take the
collected outputs and a seed (for metrics that subsample) and return a float,
a list (per-class values) or ``None`` where the metric is undefined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from unlearnkit.evaluation.outputs import Collected, Outputs
from unlearnkit.evaluation.scores import accuracy, per_class_accuracy, sample_scores
from unlearnkit.registry import Registry

MetricValue = Union[float, None, list[Union[float, None]]]  # noqa: UP007 (runtime alias on 3.10)


# -- pure tensor functions -------------------------------------------------


LOSS_CLIP = 50.0


def loss_attack_accuracy(
    member_losses: torch.Tensor,
    nonmember_losses: torch.Tensor,
    *,
    seed: int = 0,
    folds: int = 5,
    repeats: int = 5,
) -> float | None:
    """Membership-inference accuracy of a logistic-regression attack on per-sample losses.

    Each repeat subsamples the larger side (seeded) to the size of the smaller,
    so 0.5 is chance, and scores the attack by stratified ``folds``-fold
    cross-validation; the result is the mean over ``repeats`` draws (fresh
    subsample and folds each time), which cuts the variance of small forget
    sets. The feature is the loss clipped to [0, 50] (a masked logit gives an
    infinite loss). The raw loss, not its log, is used: a linear boundary on
    log-loss sits in the bulk of tiny losses where members and non-members
    overlap, while on the loss itself it isolates the high-loss tail that
    only non-members have (measured on MNIST/LeNet: 0.55 vs 0.48). Returns None
    if either side has fewer than ``folds`` samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    m_all = np.clip(member_losses.double().numpy(), 0.0, LOSS_CLIP)
    n_all = np.clip(nonmember_losses.double().numpy(), 0.0, LOSS_CLIP)
    size = min(m_all.size, n_all.size)
    if size < folds:
        return None
    rng = np.random.default_rng(seed)
    target = np.concatenate([np.ones(size), np.zeros(size)])
    scores = []
    for _ in range(repeats):
        m = m_all[rng.permutation(m_all.size)[:size]]
        n = n_all[rng.permutation(n_all.size)[:size]]
        feats = np.concatenate([m, n])[:, None]
        clf = make_pipeline(StandardScaler(), LogisticRegression())
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(rng.integers(2**31)))
        scores.append(np.mean(cross_val_score(clf, feats, target, cv=cv, scoring="accuracy", error_score="raise")))
    return float(np.mean(scores))


# -- registered metrics ------------------------------------------------------

MetricFn = Callable[[Collected, int], MetricValue]


@dataclass(frozen=True)
class Metric:
    """A registered metric: the function, its direction and a one-line definition."""

    name: str
    fn: MetricFn
    direction: str  # "higher" | "lower" | "retrain"
    description: str
    kinds: frozenset[str] = frozenset({"classes", "samples"})
    scalar: bool = True
    requires: tuple[str, ...] = ("forget",)  # split names read (see outputs.collect)
    requires_info: tuple[str, ...] = ()  # scenario facts read (Splits.info keys)

    def applies_to(self, kind: str, splits: Iterable[str], info: Iterable[str]) -> bool:
        """Whether the metric is defined for a request kind given the available splits / facts."""
        available = set(splits)
        return (
            kind in self.kinds
            and all(r.partition("@")[0] in available for r in self.requires)
            and set(self.requires_info) <= set(info)
        )

    @property
    def higher_is_better(self) -> bool | None:
        return {"higher": True, "lower": False}.get(self.direction)

    def __call__(self, collected: Collected, seed: int = 0) -> MetricValue:
        return self.fn(collected, seed)


METRICS: Registry[Metric] = Registry("metric")


def _register(name: str, direction: str, description: str, **kw: object) -> Callable[[MetricFn], MetricFn]:
    def wrap(fn: MetricFn) -> MetricFn:
        METRICS.register(name, Metric(name, fn, direction, description, **kw))  # type: ignore[arg-type]
        return fn

    return wrap


@_register("forget_accuracy", "retrain", "accuracy on the forget set, with the labels it was trained with")
def _forget_accuracy(c: Collected, seed: int) -> MetricValue:
    return accuracy(c["forget"])


@_register(
    "retain_accuracy",
    "higher",
    "accuracy on the retain set (remaining classes' logits for class requests)",
    requires=("retain",),
)
def _retain_accuracy(c: Collected, seed: int) -> MetricValue:
    return accuracy(c["retain"], c.remaining_classes if c.forget_classes else None)


@_register(
    "test_accuracy", "higher", "accuracy on test samples of the classes still to be predicted", requires=("test",)
)
def _test_accuracy(c: Collected, seed: int) -> MetricValue:
    if not c.forget_classes:
        return accuracy(c["test"])
    return accuracy(c["test"].of_classes(c.remaining_classes), c.remaining_classes)


@_register(
    "forgotten_class_test_accuracy",
    "lower",
    "accuracy on test samples of the forgotten classes (class requests only)",
    kinds=frozenset({"classes"}),
    requires=("test",),
)
def _forgotten_class_test_accuracy(c: Collected, seed: int) -> MetricValue:
    if not c.forget_classes:
        return None
    return accuracy(c["test"].of_classes(c.forget_classes))


@_register(
    "per_class_test_accuracy",
    "higher",
    "test accuracy per true class (list of k values)",
    scalar=False,
    requires=("test",),
)
def _per_class(c: Collected, seed: int) -> MetricValue:
    return per_class_accuracy(c["test"], c.num_classes)


def mia_nonmembers(c: Collected) -> Outputs:
    """Never-trained samples from the same classes as the forget set (holdout + test)."""
    classes = list(c.forget_classes) if c.forget_classes else sorted({int(v) for v in c["forget"].labels})
    pool = [c[s].of_classes(classes) for s in ("holdout", "test") if s in c.outputs]
    return Outputs(torch.cat([p.logits for p in pool]), torch.cat([p.labels for p in pool]))


@_register(
    "mia_accuracy",
    "retrain",
    "mean 5-fold CV accuracy (5 repeats) of a logistic-regression loss attack: "
    "forget set vs never-seen samples of its classes",
    requires=("forget", "holdout", "test"),
)
def _mia_accuracy(c: Collected, seed: int) -> MetricValue:
    return loss_attack_accuracy(c["forget"].losses, mia_nonmembers(c).losses, seed=seed)


def mia_efficacy(
    train_member: Outputs, nonmember: Outputs, target: Outputs, *, seed: int = 0, max_per_side: int = 5000
) -> float | None:
    """SalUn's MIA-efficacy: share of ``target`` samples an attack calls non-members.

    The attack is an RBF SVC on the true-label confidence (softmax probability),
    fitted on at most ``max_per_side`` seeded samples of each of ``train_member``
    (the retain set) and ``nonmember`` (test samples), balanced to the same size.
    Applied to the forget set, higher means more samples look unseen; the
    retrained reference is the target. Returns None when a side is empty.
    """
    from sklearn.svm import SVC

    def confidence(o: Outputs) -> np.ndarray:  # one feature column: the true-label probability
        return sample_scores(o, "confidence")[:, None]

    if len(train_member) == 0 or len(nonmember) == 0 or len(target) == 0:
        return None
    rng = np.random.default_rng(seed)
    size = min(len(train_member), len(nonmember), max_per_side)
    m = confidence(train_member)[rng.permutation(len(train_member))[:size]]
    n = confidence(nonmember)[rng.permutation(len(nonmember))[:size]]
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(np.concatenate([m, n]), np.concatenate([np.ones(size), np.zeros(size)]))
    return float(np.mean(clf.predict(confidence(target)) == 0))


@_register(
    "mia_efficacy",
    "retrain",
    "SalUn's MIA-efficacy: share of the forget set an RBF SVC on true-label confidence, fitted on "
    "retain (members) vs test samples of the remaining classes (at most 5,000 each), calls non-members",
    requires=("forget", "retain", "test"),
)
def _mia_efficacy(c: Collected, seed: int) -> MetricValue:
    test = c["test"]
    if c.forget_classes:
        test = test.of_classes(c.remaining_classes)
    return mia_efficacy(c["retain"], test, c["forget"], seed=seed)


ROC_FPR_GRID = tuple(float(x) for x in np.linspace(0.0, 1.0, 51))


def loss_roc(member_losses: torch.Tensor, nonmember_losses: torch.Tensor) -> tuple[float, list[float]] | None:
    """ROC of the loss-threshold attack (lower loss ⇒ "member"): its AUC and the TPR at each FPR of ``ROC_FPR_GRID``.

    None when either side is empty. The attack is fitted on nothing, so the
    curve is read directly from the per-sample scores.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    if member_losses.numel() == 0 or nonmember_losses.numel() == 0:
        return None
    scores = -np.clip(torch.cat([member_losses, nonmember_losses]).double().numpy(), 0.0, LOSS_CLIP)
    target = np.concatenate([np.ones(member_losses.numel()), np.zeros(nonmember_losses.numel())])
    fpr, tpr, _ = roc_curve(target, scores)
    return float(roc_auc_score(target, scores)), [float(v) for v in np.interp(ROC_FPR_GRID, fpr, tpr)]


@_register(
    "mia_loss_auc",
    "retrain",
    "AUC of the loss-threshold attack: forget set vs never-seen samples of its classes (0.5 = chance)",
    requires=("forget", "holdout", "test"),
)
def _mia_loss_auc(c: Collected, seed: int) -> MetricValue:
    roc = loss_roc(c["forget"].losses, mia_nonmembers(c).losses)
    return None if roc is None else roc[0]


@_register(
    "mia_loss_roc",
    "retrain",
    "ROC curve of the same attack: TPR at FPR = 0, 0.02, ..., 1 (list of 51 values; drawn by the report)",
    scalar=False,
    requires=("forget", "holdout", "test"),
)
def _mia_loss_roc(c: Collected, seed: int) -> MetricValue:
    roc = loss_roc(c["forget"].losses, mia_nonmembers(c).losses)
    return None if roc is None else list[float | None](roc[1])


@_register(
    "poisoned_class_test_recall",
    "higher",
    "poison scenario: recall of the class whose labels were flipped (share of its test samples predicted as it)",
    requires=("test",),
    requires_info=("poisoned_class",),
)
def _poisoned_class_test_recall(c: Collected, seed: int) -> MetricValue:
    cls = int(c.info["poisoned_class"])
    return accuracy(c["test"].of_classes([cls]))


@_register(
    "forget_true_label_accuracy",
    "higher",
    "accuracy on the forget set with its true labels (mislabel scenario: the labels before corruption)",
    requires=("forget_true",),
)
def _forget_true_label_accuracy(c: Collected, seed: int) -> MetricValue:
    return accuracy(c["forget_true"])


@_register(
    "interclass_confusion",
    "lower",
    "test samples of class a predicted as b plus those of b predicted as a (a count; mislabel scenario)",
    requires=("test",),
    requires_info=("confused_classes",),
)
def _interclass_confusion(c: Collected, seed: int) -> MetricValue:
    a, b = (int(v) for v in c.info["confused_classes"])  # type: ignore[attr-defined]
    test = c["test"]
    preds = test.predictions(c.remaining_classes if c.forget_classes else None)
    return float(((test.labels == a) & (preds == b)).sum() + ((test.labels == b) & (preds == a)).sum())


_FEATURE = frozenset({"features"})
# 000's four datasets (test splits) and which three each pattern must keep high (Table 1)
FEATURE_VIEWS = {"retain": "test_retain", "forget": "test_forget", "clean": "test_forget_clean", "extra": "test_extra"}
PATTERN_TARGETS = {"B": ("retain", "clean", "extra"), "C": ("retain", "forget", "extra")}


def _feature_accuracy(key: str) -> MetricFn:
    def fn(c: Collected, seed: int) -> MetricValue:
        return accuracy(c[FEATURE_VIEWS[key]])

    return fn


for _key, _what in (
    ("retain", "D_r: test images of the other classes"),
    ("forget", "D_f: test images of the target class, stamped with the feature"),
    ("clean", "D_f,clean: test images of the target class, clean"),
    ("extra", "D_r,extra: test images of the other classes, stamped with the feature"),
):
    METRICS.register(
        f"feature_{_key}_accuracy",
        Metric(f"feature_{_key}_accuracy", _feature_accuracy(_key), "higher" if _key != "forget" else "retrain",
               f"accuracy on {_what} (000)", kinds=_FEATURE, requires=(FEATURE_VIEWS[_key],)),
    )  # fmt: skip


@_register(
    "attack_success_rate",
    "lower",
    "share of D_r,extra (other classes' test images with the feature) predicted as the target class (000 backdoor)",
    kinds=_FEATURE,
    requires=("test_extra",),
    requires_info=("target_class",),
)
def _attack_success_rate(c: Collected, seed: int) -> MetricValue:
    extra = c["test_extra"]
    if len(extra) == 0:
        return None
    return float((extra.predictions() == int(c.info["target_class"])).float().mean())  # type: ignore[call-overload]


@_register(
    "pattern_score",
    "higher",
    "minimum of the three accuracies the pattern keeps high (B: D_r, D_f,clean, D_r,extra; C: D_r, D_f, D_r,extra)",
    kinds=_FEATURE,
    requires=tuple(FEATURE_VIEWS.values()),
    requires_info=("pattern",),
)
def _pattern_score(c: Collected, seed: int) -> MetricValue:
    values = [accuracy(c[FEATURE_VIEWS[k]]) for k in PATTERN_TARGETS[str(c.info["pattern"])]]
    return None if any(v is None for v in values) else min(v for v in values if v is not None)


def _tta_metric(transform: str) -> MetricFn:
    def fn(c: Collected, seed: int) -> MetricValue:
        return accuracy(c[f"forget@{transform}"])

    return fn


# 002's test-time-augmentation check: forget accuracy under input transforms.
for _t, _what in (("hflip", "horizontal flip"), ("vflip", "vertical flip"), ("crop90", "90% centre crop resized back")):
    METRICS.register(
        f"forget_accuracy_{_t}",
        Metric(
            f"forget_accuracy_{_t}",
            _tta_metric(_t),
            "retrain",
            f"forget accuracy under test-time {_what} (two-stage paper's TTA check)",
            requires=(f"forget@{_t}",),
        ),
    )


def applicable(kind: str, splits: Iterable[str], info: Iterable[str]) -> list[str]:
    splits, info = list(splits), list(info)
    return [n for n, m in METRICS.items() if m.applies_to(kind, splits, info)]


def evaluate(collected: Collected, metrics: Sequence[str] | None = None, *, seed: int = 0) -> dict[str, MetricValue]:
    """Compute the named metrics (default: all that apply to the request kind and
    whose splits were collected)."""
    kind = collected.kind
    if metrics is None:
        names = applicable(kind, {n.partition("@")[0] for n in collected.outputs}, collected.info)
        names = [n for n in names if all(r in collected for r in METRICS.get(n).requires)]
    else:
        names = list(metrics)
    return {n: METRICS.get(n)(collected, seed) for n in names}


def gap(value: MetricValue, reference: MetricValue) -> float | None:
    """Absolute difference to the retrained reference (None if either is undefined)."""
    if isinstance(value, (int, float)) and isinstance(reference, (int, float)):
        return abs(float(value) - float(reference))
    return None
