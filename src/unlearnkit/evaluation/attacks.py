"""Membership-inference attacks ("membership oracles") and the forgetting rates built on them (003).

Attacks are registered like methods and share one small contract: ``fit(members,
nonmembers)`` on collected :class:`~unlearnkit.evaluation.outputs.Outputs` of some model,
then ``score(outputs)`` (higher = more likely a member) and ``predict(outputs)``
(boolean "member"). An attack never sees a model, only outputs, so the outputs
of a model are collected once and every attack is evaluated on them.

Registered attacks:

* ``threshold_loss``, ``threshold_confidence``, ``threshold_entropy``,
  ``threshold_modified_entropy`` — one score per sample (the loss, the
  true-label probability, the prediction entropy, Song & Mittal's modified
  entropy); ``fit`` picks the threshold with the best balanced accuracy on the
  fitting data.
* ``shadow`` — a classifier on the confidence vector (sorted probabilities plus
  the true-label probability), fitted on a shadow model's members and
  non-members (003's oracle); ``shadow_loss`` also sees the per-sample loss.
  The classifier is chosen by name: ``xgboost`` (default, the ``xgboost-cpu``
  package), ``logistic``, ``random_forest``, ``adaboost``, ``mlp``.

:func:`roc_summary` reports AUC and TPR at 1% and 0.1% FPR (``None``, with the
reason, when the non-members are too few to resolve that FPR);
:func:`forgetting_rate` and :func:`catastrophic_forgetting_rate` are 003's
FR = (AF − BF) / BT and CFR = (BT_train − AT_train) / BT_train with their counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.outputs import Outputs
from unlearnkit.evaluation.scores import confidence_features, sample_scores
from unlearnkit.optional import optional_import
from unlearnkit.registry import Registry
from unlearnkit.validation import Constraint, Options, validate_parameters


class Attack(ABC):
    """A membership oracle: fitted on outputs of members and non-members, then applied to outputs."""

    name: ClassVar[str]
    parameter_constraints: ClassVar[dict[str, Constraint]] = {}

    def __init__(self, **params: Any) -> None:
        validate_parameters(f"attack {self.name!r}", params, self.parameter_constraints)
        self.params = params
        self.fitted = False

    def fit(self, members: Outputs, nonmembers: Outputs, *, seed: int = 0) -> Attack:
        if len(members) == 0 or len(nonmembers) == 0:
            raise ParameterError(
                f"attack {self.name!r} needs members and non-members to fit; got {len(members)} and {len(nonmembers)}."
            )
        self._fit(members, nonmembers, seed)
        self.fitted = True
        return self

    def _check(self) -> None:
        if not self.fitted:
            raise ParameterError(
                f"attack {self.name!r} must be fitted before it scores; call fit(members, nonmembers)."
            )

    @abstractmethod
    def _fit(self, members: Outputs, nonmembers: Outputs, seed: int) -> None: ...

    @abstractmethod
    def score(self, outputs: Outputs) -> np.ndarray:
        """Membership score per sample (higher = more likely a member)."""

    @abstractmethod
    def predict(self, outputs: Outputs) -> np.ndarray:
        """Boolean "member" per sample."""


class ThresholdAttack(Attack):
    """Member when a per-sample score passes a threshold chosen for balanced accuracy on the fitting data."""

    kind: ClassVar[str]

    def _fit(self, members: Outputs, nonmembers: Outputs, seed: int) -> None:
        sm, sn = sample_scores(members, self.kind), sample_scores(nonmembers, self.kind)
        candidates = np.unique(np.concatenate([sm, sn]))
        best, best_t = -1.0, float(candidates[0])
        for t in candidates:
            acc = 0.5 * float(np.mean(sm >= t)) + 0.5 * float(np.mean(sn < t))
            if acc > best:
                best, best_t = acc, float(t)
        self.threshold = best_t

    def score(self, outputs: Outputs) -> np.ndarray:
        return sample_scores(outputs, self.kind)

    def predict(self, outputs: Outputs) -> np.ndarray:
        self._check()
        return np.asarray(self.score(outputs) >= self.threshold)


def _threshold(kind: str) -> type[ThresholdAttack]:
    return type(f"Threshold_{kind}", (ThresholdAttack,), {"name": f"threshold_{kind}", "kind": kind})


def _classifier(name: str, seed: int) -> Any:
    if name == "xgboost":
        xgb = optional_import("xgboost", extra="xgboost")
        return xgb.XGBClassifier(n_estimators=100, max_depth=4, random_state=seed, n_jobs=1, verbosity=0)
    from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    factories: dict[str, Callable[[], Any]] = {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
        "adaboost": lambda: AdaBoostClassifier(random_state=seed),
        "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=500, random_state=seed)),
    }
    return factories[name]()


class ShadowAttack(Attack):
    """A classifier on confidence vectors, fitted on a shadow model's members vs non-members (003)."""

    name = "shadow"
    with_loss: ClassVar[bool] = False
    parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "classifier": Options(("xgboost", "logistic", "random_forest", "adaboost", "mlp")),
    }

    def __init__(self, classifier: str = "xgboost") -> None:
        super().__init__(classifier=classifier)
        self.classifier = classifier

    def features(self, o: Outputs) -> np.ndarray:
        """The classifier's input per sample: the sorted confidences and the true-label one (and the loss)."""
        return confidence_features(o, with_loss=self.with_loss)

    def _fit(self, members: Outputs, nonmembers: Outputs, seed: int) -> None:
        xm, xn = self.features(members), self.features(nonmembers)
        size = min(len(xm), len(xn))  # balance the two sides by a seeded subsample of the larger one
        rng = np.random.default_rng(seed)
        xm, xn = xm[rng.permutation(len(xm))[:size]], xn[rng.permutation(len(xn))[:size]]
        self.model = _classifier(self.classifier, seed)
        self.model.fit(np.concatenate([xm, xn]), np.concatenate([np.ones(size), np.zeros(size)]))

    def score(self, outputs: Outputs) -> np.ndarray:
        self._check()
        return np.asarray(self.model.predict_proba(self.features(outputs))[:, 1])

    def predict(self, outputs: Outputs) -> np.ndarray:
        return np.asarray(self.score(outputs) >= 0.5)


def whitebox_features(o: Outputs) -> np.ndarray:
    """The white-box oracle's input: the shadow attack's confidence features and loss, plus log gradient norms."""
    if o.grad_norms is None:
        raise ParameterError(
            "The 'outputs' of a white-box attack must carry gradient norms; collect them with "
            "outputs_of(model, view, white_box=True)."
        )
    return np.concatenate([confidence_features(o, with_loss=True),
                           np.log(o.grad_norms.double().numpy() + 1e-12)], axis=1)  # fmt: skip


class WhiteBoxShadowAttack(ShadowAttack):
    """003 §V-E's white-box oracle, after Nasr et al. (S&P 2019): a shadow-trained classifier on confidences,
    the loss and each layer's per-sample gradient norm (outputs collected with ``white_box=True``)."""

    name = "shadow_whitebox"

    def features(self, o: Outputs) -> np.ndarray:
        return whitebox_features(o)


class ShadowLossAttack(ShadowAttack):
    """The shadow attack with the per-sample loss added to its features (not 003's white-box oracle)."""

    name = "shadow_loss"
    with_loss = True


ATTACKS: Registry[type[Attack]] = Registry("attack")
for _kind in ("loss", "confidence", "entropy", "modified_entropy"):
    ATTACKS.register(f"threshold_{_kind}", _threshold(_kind))
ATTACKS.register("shadow", ShadowAttack)
ATTACKS.register("shadow_loss", ShadowLossAttack)
ATTACKS.register("shadow_whitebox", WhiteBoxShadowAttack)


def make_attack(name: str, **params: Any) -> Attack:
    """Build a registered attack by name with its settings."""
    return ATTACKS.get(name)(**params)


#: FPRs at which :func:`roc_summary` samples the curve (log-spaced: the low-FPR end is the one that matters)
CURVE_FPRS = tuple(float(f) for f in np.concatenate([[0.0], np.logspace(-4, 0, 41)]))


def roc_summary(
    member_scores: np.ndarray, nonmember_scores: np.ndarray, *, fprs: Sequence[float] = (0.01, 0.001),
    curve: bool = False,
) -> dict[str, Any]:
    """AUC and TPR at each FPR in ``fprs``; a TPR is None (with the reason) when 1/#non-members > FPR.

    ``curve``: also return ``{"fpr": CURVE_FPRS, "tpr": ...}``, the ROC curve's highest TPR at each of
    those FPRs (a step function sampled on a fixed grid, so curves of different runs line up).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    m, n = np.asarray(member_scores, dtype=float), np.asarray(nonmember_scores, dtype=float)
    if m.size == 0 or n.size == 0:
        raise ParameterError(f"roc_summary needs members and non-members; got {m.size} and {n.size}.")
    y = np.concatenate([np.ones(m.size), np.zeros(n.size)])
    s = np.concatenate([m, n])
    fpr, tpr, _ = roc_curve(y, s)
    out: dict[str, Any] = {"auc": float(roc_auc_score(y, s)), "tpr_at_fpr": {}, "reasons": {}}
    for f in fprs:
        key = f"{f:g}"
        if 1.0 / n.size > f:
            out["tpr_at_fpr"][key] = None
            out["reasons"][key] = (
                f"{n.size} non-members cannot resolve an FPR of {f:g} (the finest is {1 / n.size:.2g})"
            )
        else:
            out["tpr_at_fpr"][key] = float(np.max(tpr[fpr <= f])) if np.any(fpr <= f) else 0.0
    if curve:
        idx = np.searchsorted(fpr, np.asarray(CURVE_FPRS), side="right") - 1  # fpr is sorted ascending
        out["curve"] = {"fpr": list(CURVE_FPRS), "tpr": [float(tpr[i]) for i in idx]}
    return out


def oracle_quality(attack: Attack, members: Outputs, nonmembers: Outputs) -> dict[str, Any]:
    """Accuracy (balanced), precision and recall of an oracle on known members / non-members (003 Table XIV)."""
    pm, pn = attack.predict(members), attack.predict(nonmembers)
    tp, fn, fp, tn = int(pm.sum()), int((~pm).sum()), int(pn.sum()), int((~pn).sum())
    return {
        "accuracy": 0.5 * tp / max(tp + fn, 1) + 0.5 * tn / max(tn + fp, 1),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "members": len(members),
        "nonmembers": len(nonmembers),
    }


def forgetting_rate(member_before: np.ndarray, member_after: np.ndarray) -> dict[str, Any]:
    """003 eq. 2 on the forget set: FR = (AF − BF) / BT, with BT, BF, AF; undefined (None + reason) when BT = 0."""
    b, a = np.asarray(member_before, dtype=bool), np.asarray(member_after, dtype=bool)
    if b.shape != a.shape:
        raise ParameterError(f"before and after must cover the same samples; got {b.shape} and {a.shape}.")
    bt, bf, af = int(b.sum()), int((~b).sum()), int((~a).sum())
    out: dict[str, Any] = {"BT": bt, "BF": bf, "AF": af, "n": int(b.size)}
    if bt == 0:
        out.update(fr=None, reason="BT = 0: the oracle called no forget sample a member before unlearning")
    else:
        out["fr"] = (af - bf) / bt
    return out


def catastrophic_forgetting_rate(member_before: np.ndarray, member_after: np.ndarray) -> dict[str, Any]:
    """003 eq. 10 on retained training data: CFR = (BT_train − AT_train) / BT_train; undefined when BT_train = 0."""
    b, a = np.asarray(member_before, dtype=bool), np.asarray(member_after, dtype=bool)
    if b.shape != a.shape:
        raise ParameterError(f"before and after must cover the same samples; got {b.shape} and {a.shape}.")
    bt, at = int(b.sum()), int(a.sum())
    out: dict[str, Any] = {"BT_train": bt, "AT_train": at, "n": int(b.size)}
    if bt == 0:
        out.update(cfr=None, reason="BT_train = 0: the oracle called no training sample a member before unlearning")
    else:
        out["cfr"] = (bt - at) / bt
    return out


__all__ = [
    "ATTACKS",
    "Attack",
    "catastrophic_forgetting_rate",
    "forgetting_rate",
    "make_attack",
    "oracle_quality",
    "roc_summary",
]


def train_shadow_oracle(
    build: Callable[[int], torch.nn.Module],
    recipe: Any,
    pool: Any,
    *,
    seed: int = 0,
    attack: str = "shadow",
    classifier: str = "xgboost",
    pool_size: int | None = None,
) -> tuple[Attack, dict[str, Any]]:
    """003's shadow-model oracle: train a shadow on half of ``pool`` and fit the attack on its outputs.

    Args:
        build: ``seed -> new model`` with the target's architecture.
        recipe: The target's training recipe (:class:`~unlearnkit.core.training.TrainConfig`).
        pool: A :class:`~unlearnkit.data.View` disjoint from the target's training and test data
            (by default the holdout split); a seeded half trains the shadow, the other half is its non-members.
        pool_size: Use a seeded subset of this many pool samples (e.g. twice the target's training-set
            size, so the shadow overfits as much as the target).
        attack, classifier: ``shadow``, ``shadow_loss`` or ``shadow_whitebox`` (score targets' outputs
            collected with ``white_box=True``), and its classifier.

    Returns:
        The fitted attack and facts about the shadow (sizes, train / held-out accuracy).
    """
    from unlearnkit.core.training import fit
    from unlearnkit.evaluation.outputs import outputs_of
    from unlearnkit.evaluation.scores import accuracy

    if attack not in ("shadow", "shadow_loss", "shadow_whitebox"):
        raise ParameterError(
            "The 'attack' parameter of train_shadow_oracle must be shadow, shadow_loss or shadow_whitebox; "
            f"got {attack!r}."
        )
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(pool), generator=g)
    if pool_size is not None:
        if not 4 <= pool_size <= len(pool):
            raise ParameterError(f"The 'pool_size' parameter must be an int in [4, {len(pool)}]; got {pool_size!r}.")
        perm = perm[:pool_size]
    half = perm.numel() // 2
    members, nonmembers = pool.subset(perm[:half], "shadow_in"), pool.subset(perm[half:], "shadow_out")
    shadow = build(seed)
    fit(shadow, members, recipe, seed=seed)
    wb = attack == "shadow_whitebox"
    out_in, out_out = outputs_of(shadow, members, white_box=wb), outputs_of(shadow, nonmembers, white_box=wb)
    oracle = make_attack(attack, classifier=classifier).fit(out_in, out_out, seed=seed)
    facts = {"shadow_members": len(members), "shadow_nonmembers": len(nonmembers),
             "shadow_train_accuracy": accuracy(out_in), "shadow_holdout_accuracy": accuracy(out_out),
             "attack": attack, "classifier": classifier}  # fmt: skip
    return oracle, facts
