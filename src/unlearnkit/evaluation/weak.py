"""Weak unlearning: can a classifier tell unlearned models from models that never saw the class?

004 §3 (Definition 3.2) and §5: the Bayes advantage of binary classifiers
trained on the pre-softmax outputs of two model populations — models trained
on all data and then unlearned ("seen") and models trained without the
forgotten classes ("not seen"). 0 means the populations' outputs cannot be
told apart; 1 means they always can.

:func:`bayes_advantage` is a pure function of the populations' collected
logits on the test set. Training the populations (and running them on many
workers) is separate: any unlearning method can produce the "seen" side, so
this is a general black-box test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from unlearnkit.errors import ParameterError
from unlearnkit.optional import optional_import
from unlearnkit.registry import Registry

ADVANTAGE_CLASSIFIERS: Registry[Callable[[int], Any]] = Registry("advantage classifier")


def _knn(seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=5)


def _random_forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)


def _adaboost(seed: int) -> Any:
    from sklearn.ensemble import AdaBoostClassifier

    return AdaBoostClassifier(random_state=seed)


def _xgboost(seed: int) -> Any:
    xgb = optional_import("xgboost", extra="xgboost")
    return xgb.XGBClassifier(n_estimators=100, random_state=seed, n_jobs=1, verbosity=0)


ADVANTAGE_CLASSIFIERS.register("knn", _knn)
ADVANTAGE_CLASSIFIERS.register("random_forest", _random_forest)
ADVANTAGE_CLASSIFIERS.register("adaboost", _adaboost)
ADVANTAGE_CLASSIFIERS.register("xgboost", _xgboost)


def _split_models(m: int, train_fraction: float, rng: np.random.Generator, side: str) -> tuple[np.ndarray, np.ndarray]:
    n_train = round(train_fraction * m)
    if n_train < 1 or n_train >= m:
        raise ParameterError(
            f"The '{side}' population of {m} models leaves no model on one side of a {train_fraction:.0%} split; "
            "use more models."
        )
    perm = rng.permutation(m)
    return perm[:n_train], perm[n_train:]


def bayes_advantage(
    seen: torch.Tensor,
    not_seen: torch.Tensor,
    labels: torch.Tensor,
    forget_classes: Sequence[int],
    *,
    classifiers: Sequence[str] = ("knn", "random_forest", "adaboost"),
    train_fraction: float = 0.7,
    seed: int = 0,
    n_boot: int = 1000,
    confidence: float = 0.95,
    features: str = "logits",
) -> list[dict[str, Any]]:
    """Classifier advantage, per classifier, for the unlearned and the remaining classes.

    Args:
        seen: ``(M1, n, k)`` logits of the unlearned models on ``n`` test samples
            (forgotten outputs may be -inf or absent: see below).
        not_seen: ``(M2, n, k)`` logits of models trained without ``forget_classes``.
        labels: ``(n,)`` true labels of the test samples; "per class" groups them by it.
        forget_classes: The unlearned classes C.
        classifiers: Names from :data:`ADVANTAGE_CLASSIFIERS`.
        train_fraction: Share of each population's models the classifiers are fitted on
            (paper: 70%); the rest are held out.
        seed: Fixes the model split, the classifiers and the bootstrap.
        n_boot: Bootstrap replicates over the held-out models (resampled with
            replacement within each population; predictions are reused, nothing is refitted).
        confidence: Width of the percentile interval.
        features: ``"logits"`` (the paper: raw outputs) or ``"probabilities"`` (softmax over the
            remaining classes' logits: what an attacker sees from an API that returns probabilities).

    Returns:
        One dict per (classifier, group) with ``advantage = 2·(accuracy − ½)``,
        its interval ``ci``, ``accuracy``, ``per_class`` advantages and the
        numbers of models used. The features are the logits of the remaining
        classes only, so models whose outputs differ in size (k vs k − |C|, or
        −inf columns) are compared on the same coordinates.
    """
    if seen.dim() != 3 or not_seen.dim() != 3:
        raise ParameterError("The 'seen' and 'not_seen' parameters must be (models, samples, outputs) tensors.")
    n = int(labels.numel())
    if seen.shape[1] != n or not_seen.shape[1] != n:
        raise ParameterError(
            f"The populations must have outputs for every one of the {n} labelled samples; "
            f"got {seen.shape[1]} (seen) and {not_seen.shape[1]} (not seen)."
        )
    k = max(int(labels.max()) + 1, seen.shape[2], not_seen.shape[2])
    forget = sorted({int(c) for c in forget_classes})
    remaining = [c for c in range(k) if c not in forget]

    if features not in ("logits", "probabilities"):
        raise ParameterError(f"The 'features' parameter must be one of logits, probabilities; got {features!r}.")

    def featurize(pop: torch.Tensor) -> np.ndarray:
        # outputs may already be restricted to the remaining classes
        x = pop.double() if pop.shape[2] == len(remaining) else pop[:, :, remaining].double()
        return (x.softmax(-1) if features == "probabilities" else x).numpy()

    fs, fn = featurize(seen), featurize(not_seen)
    rng = np.random.default_rng(seed)
    s_tr, s_te = _split_models(fs.shape[0], train_fraction, rng, "seen")
    n_tr, n_te = _split_models(fn.shape[0], train_fraction, rng, "not_seen")
    labels_np = labels.cpu().numpy()
    present = sorted(int(c) for c in np.unique(labels_np))
    results = []
    for name in classifiers:
        factory = ADVANTAGE_CLASSIFIERS.get(name)
        # correct[c] = (held-out seen models x samples, held-out not-seen models x samples) booleans
        correct: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in present:
            rows = labels_np == c
            x_train = np.concatenate(
                [fs[s_tr][:, rows].reshape(-1, fs.shape[2]), fn[n_tr][:, rows].reshape(-1, fn.shape[2])]
            )
            y_train = np.concatenate([np.ones(len(s_tr) * rows.sum()), np.zeros(len(n_tr) * rows.sum())])
            clf = factory(seed)
            clf.fit(x_train, y_train)
            pred_s = clf.predict(fs[s_te][:, rows].reshape(-1, fs.shape[2])).reshape(len(s_te), -1)
            pred_n = clf.predict(fn[n_te][:, rows].reshape(-1, fn.shape[2])).reshape(len(n_te), -1)
            correct[c] = (pred_s == 1, pred_n == 0)
        for group, members in (("unlearned", forget), ("remaining", remaining)):
            members = [c for c in members if c in correct]
            if not members:
                continue
            per_class = {c: _accuracy(*correct[c]) for c in members}
            acc = float(np.mean(list(per_class.values())))
            lo, hi = _interval(correct, members, n_boot=n_boot, confidence=confidence, seed=seed + 1)
            results.append({
                "classifier": name, "group": group, "advantage": 2 * (acc - 0.5), "ci": [float(lo), float(hi)],
                "accuracy": acc, "per_class": {str(c): 2 * (a - 0.5) for c, a in per_class.items()},
                "models_train": [len(s_tr), len(n_tr)], "models_test": [len(s_te), len(n_te)],
            })  # fmt: skip
    return results


def _interval(correct: dict[int, tuple[np.ndarray, np.ndarray]], members: Sequence[int], *, n_boot: int,
              confidence: float, seed: int) -> tuple[float, float]:  # fmt: skip
    """Percentile bootstrap interval of the advantage, resampling held-out models (not samples) of each population.

    The two populations are resampled independently (:func:`scipy.stats.bootstrap`,
    ``paired=False``); one draw of models serves every class of ``members``,
    since a class's samples are scored by the same models.
    """
    from scipy import stats

    n_seen, n_not_seen = len(correct[members[0]][0]), len(correct[members[0]][1])
    if n_boot == 0 or n_seen < 2 or n_not_seen < 2:
        return math.nan, math.nan

    def advantage(ds: np.ndarray, dn: np.ndarray) -> float:
        return 2 * (float(np.mean([_accuracy(correct[c][0][ds], correct[c][1][dn]) for c in members])) - 0.5)

    res = stats.bootstrap((np.arange(n_seen), np.arange(n_not_seen)), advantage, n_resamples=n_boot,
                          paired=False, vectorized=False, confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _accuracy(correct_seen: np.ndarray, correct_not_seen: np.ndarray) -> float:
    """Balanced accuracy over the two populations (each weighs one half, like the uniform prior B)."""
    return 0.5 * float(correct_seen.mean()) + 0.5 * float(correct_not_seen.mean())
