"""Per-example forgetting evidence over model populations: pure functions of output arrays.

Each test asks, for every forgotten example, whether the distribution of an
unlearning method's output on it — over many runs — can be told apart from the
distribution retraining produces on it. Inputs are arrays of shape
``(models, examples)`` (signals) or ``(models, examples, classes)`` (logits);
nothing here trains or loads a model, so the same arrays are scored many ways.

* :func:`logit_scaled_confidence` — the NeurIPS 2023 unlearning competition's
  signal (Triantafillou et al.); :func:`epsilons` its per-example ε, and
  :func:`forget_score` / :func:`final_score` its forget score F and final score.
* :func:`ulira` — U-LiRA (Hayes et al., SaTML 2025): a per-example Gaussian
  likelihood-ratio attack with the scored model left out.
* :func:`rmia` — offline RMIA (Zarifzadeh, Liu, Shokri, ICML 2024) for one
  target model against reference models that never saw the forget set;
  :func:`rmia_vs_unseen` the same for a deployed model with no retrained one
  (forgotten vs never-seen samples, with the attack's power on members beside it).
* :func:`margins` / :func:`klom` — KLoM (Georgiev et al., 2024): per-example KL
  between binned margin distributions of unlearned and retrained models.
* :func:`memorization` — Feldman-style memorisation from models trained on
  random halves of the data.

A function that cannot answer (too few models, a population of one) raises a
:class:`~unlearnkit.errors.ParameterError` naming the parameter and the constraint.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import logsumexp
from scipy.stats import entropy

from unlearnkit.errors import ParameterError
from unlearnkit.evaluation.attacks import roc_summary

EPS_CAP = 50.0
"""The competition's ceiling on a per-example ε (also its value for a zero-width population)."""
DELTA = 1e-5
GRID = 0.01
"""Threshold spacing: 100 thresholds per unit of the signal."""
TWO_SIDED_SPAN = 2.0
"""The two-threshold family scans right thresholds max(peaky) ± 2 and left ones right − width ± 2."""


def _signals(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ParameterError(
            f"The {name!r} parameter must be a (models, examples) array with at least 2 models; got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ParameterError(f"The {name!r} parameter must be finite; it holds NaN or inf.")
    return arr


def _logits(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim == 2:
        z = z[None]
    if z.ndim != 3:
        raise ParameterError(
            f"The 'logits' parameter must be (models, examples, classes) or (examples, classes); got shape {z.shape}."
        )
    if y.shape != (z.shape[1],) or not np.issubdtype(y.dtype, np.integer):
        raise ParameterError(
            f"The 'labels' parameter must be {z.shape[1]} integer labels; got dtype {y.dtype}, shape {y.shape}."
        )
    if y.size and (y.min() < 0 or y.max() >= z.shape[2]):
        raise ParameterError(f"The 'labels' must lie in [0, {z.shape[2]}); got {y.min()}..{y.max()}.")
    return z, y.astype(np.int64)


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """The competition's signal, ``log(p_y + 1e-45) − log(Σ_{j≠y} p_j + 1e-45)`` per (model, example).

    ``p`` is the float64 softmax of the max-subtracted logits. The 1e-45 is the
    reference implementation's; it caps the signal near ±103.6 on very confident
    models, and is kept so the numbers are the competition's.

    Args:
        logits: ``(models, examples, classes)`` (or ``(examples, classes)`` for one model).
        labels: ``(examples,)`` true labels.

    Returns:
        ``(models, examples)`` float64.
    """
    z, y = _logits(logits, labels)
    z = z - z.max(axis=2, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=2, keepdims=True)
    py = np.take_along_axis(p, y[None, :, None], axis=2)[..., 0]
    # summed over j ≠ y directly: 1 − p_y would lose every digit when p_y ≈ 1
    rest = np.where(np.arange(p.shape[2])[None, None, :] == y[None, :, None], 0.0, p).sum(axis=2)
    return np.asarray(np.log(py + 1e-45) - np.log(rest + 1e-45), dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _epsilon_table(n_neg: int, n_pos: int, delta: float) -> np.ndarray:
    """ε for every (false positives, false negatives) count pair: rates are k / n, so rules come in few kinds.

    ``table[fp, fn]``: inf where both are 0 (a perfect rule), −inf where exactly one is
    (the rule is dropped), else ``max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)``
    clipped at 0 (a log of a non-positive number counts as −inf).
    """
    fpr = (np.arange(n_neg + 1) / n_neg)[:, None]
    fnr = (np.arange(n_pos + 1) / n_pos)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.where(1 - delta - fpr > 0, 1 - delta - fpr, 0.0)) - np.log(fnr)
        b = np.log(np.where(1 - delta - fnr > 0, 1 - delta - fnr, 0.0)) - np.log(fpr)
    table = np.maximum(np.nan_to_num(np.maximum(a, b), nan=-np.inf), 0.0)
    table[(fpr == 0) ^ (fnr == 0)] = -np.inf
    table[0, 0] = np.inf
    table.setflags(write=False)
    return np.asarray(table)


_STEPS = round(2 * TWO_SIDED_SPAN / GRID)  # 400: right thresholds max(peaky) ± 2, left ones right − width ± 2
_PAIRS = np.arange(_STEPS + 1)[:, None] + np.arange(_STEPS)[None, :]  # left threshold (i, j) is grid point i + j
_PAIRS.setflags(write=False)


def _thresholds(u: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, bool]:
    """One example's rule grids: single thresholds, right thresholds, the left-threshold grid, and which is which.

    Right threshold i is ``max(peaky) − 2 + i/100`` (i = 0..400); left threshold j of right i is
    ``right_i − width − 2 + j/100`` (j = 0..399), i.e. grid point ``i + j`` of
    ``max(peaky) − width − 4 + m/100`` (m = 0..799), computed once per point.
    """
    lo, hi = min(u.min(), r.min()), max(u.max(), r.max())
    single = lo + GRID * np.arange(math.ceil((hi - lo) / GRID) + 1)
    retrained_positive = bool(np.median(r) > np.median(u))
    peaky_is_u = bool((u.max() - u.min()) <= (r.max() - r.min()))
    peaky = u if peaky_is_u else r
    width = float(peaky.max() - peaky.min())
    top = float(peaky.max())
    right = (top - TWO_SIDED_SPAN) + GRID * np.arange(_STEPS + 1)
    left_grid = (top - TWO_SIDED_SPAN - width - TWO_SIDED_SPAN) + GRID * np.arange(2 * _STEPS)
    return single, right, left_grid, retrained_positive, peaky_is_u


def _count_below(values: np.ndarray) -> Any:
    """t -> how many of ``values`` are <= t (elementwise over any array of thresholds), by binary search."""
    ordered = np.sort(values)
    return lambda t: np.searchsorted(ordered, t, side="right")


def _example_epsilon_loop(u: np.ndarray, r: np.ndarray, delta: float) -> float:
    """The straightforward reading, rule by rule: every value against every threshold, ε from float rates.

    The reference for :func:`_example_epsilon` (same thresholds, independent arithmetic).
    """
    wu, wr = u.max() - u.min(), r.max() - r.min()
    if wu < 0.01 * wr or wr < 0.01 * wu:
        return EPS_CAP
    single, right, left_grid, retrained_positive, peaky_is_u = _thresholds(u, r)
    pos, neg = (r, u) if retrained_positive else (u, r)
    rules_fpr, rules_fnr = [], []
    for t in single:
        rules_fpr.append(float((neg > t).mean()))
        rules_fnr.append(float((pos <= t).mean()))
    inside_is_positive = peaky_is_u != retrained_positive
    for i, rt in enumerate(right):
        lefts = left_grid[i : i + _STEPS]
        inside_pos = ((pos[None, :] > lefts[:, None]) & (pos[None, :] <= rt)).mean(axis=1)
        inside_neg = ((neg[None, :] > lefts[:, None]) & (neg[None, :] <= rt)).mean(axis=1)
        if inside_is_positive:
            rules_fpr += list(inside_neg)
            rules_fnr += list(1.0 - inside_pos)
        else:
            rules_fpr += list(1.0 - inside_neg)
            rules_fnr += list(inside_pos)
    best = 0.0
    for f, n in zip(rules_fpr, rules_fnr, strict=True):
        if f == 0 and n == 0:
            return EPS_CAP  # ε = ∞, clipped
        if f == 0 or n == 0:
            continue
        terms = [math.log(1 - delta - f) - math.log(n) if 1 - delta - f > 0 else -math.inf,
                 math.log(1 - delta - n) - math.log(f) if 1 - delta - n > 0 else -math.inf]  # fmt: skip
        best = max(best, *terms)
    return min(EPS_CAP, max(0.0, best))


def _example_epsilon(u: np.ndarray, r: np.ndarray, delta: float) -> float:
    wu, wr = u.max() - u.min(), r.max() - r.min()
    if wu < 0.01 * wr or wr < 0.01 * wu:  # a zero-width population (e.g. a method that ignores its seed)
        return EPS_CAP
    single, right, left_grid, retrained_positive, peaky_is_u = _thresholds(u, r)
    pos, neg = (r, u) if retrained_positive else (u, r)
    n_pos, n_neg = pos.size, neg.size
    pos_le, neg_le = _count_below(pos), _count_below(neg)
    # family 1: positive above the threshold -> false positives are negatives above, false negatives positives below
    fp1, fn1 = n_neg - neg_le(single), pos_le(single)
    # family 2: values in (left, right] are called the peakier population (an inverted window holds none);
    # counts are small ints, so the (rights × lefts) arrays are int32
    c_pos = pos_le(right).astype(np.int32)[:, None] - pos_le(left_grid).astype(np.int32)[_PAIRS]
    c_neg = neg_le(right).astype(np.int32)[:, None] - neg_le(left_grid).astype(np.int32)[_PAIRS]
    in_pos, in_neg = np.maximum(c_pos, 0), np.maximum(c_neg, 0)
    if peaky_is_u != retrained_positive:  # the peakier population is the positive one: inside -> positive
        fp2, fn2 = in_neg, n_pos - in_pos
    else:  # inside -> negative, outside -> positive
        fp2, fn2 = n_neg - in_neg, in_pos
    fp = np.concatenate([fp1.astype(np.int32), fp2.ravel()])
    fn = np.concatenate([fn1.astype(np.int32), fn2.ravel()])
    seen = np.zeros((n_neg + 1) * (n_pos + 1), dtype=bool)
    seen[fp * (n_pos + 1) + fn] = True  # which (fp, fn) kinds of rule occur: ε depends on nothing else
    return float(np.clip(_epsilon_table(n_neg, n_pos, delta).ravel()[seen].max(), 0.0, EPS_CAP))


def epsilons(unlearned: Any, retrained: Any, *, delta: float = DELTA, method: str = "fast") -> np.ndarray:
    """The competition's per-example ε between an unlearned and a retrained population of signals.

    For each example the "positive" population is the retrained one if its median
    is strictly larger, else the unlearned one. A population whose range is below
    1% of the other's gives ε = 50. Otherwise two families of decision rules are
    scanned on a grid of 100 thresholds per unit: one threshold over the combined
    range (positive above it), and two thresholds calling the values between them
    the peakier population (right thresholds ``max(peaky) ± 2``, for each 400 left
    thresholds ``right − width ± 2``, width = the peakier population's range; a
    left threshold is computed once per point of its 0.01 grid, so the fast and the
    loop method compare values with the very same numbers). A
    rule with FPR = FNR = 0 gives ε = ∞; one with exactly one rate 0 is dropped;
    otherwise ``ε = max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR)``,
    clipped at 0. The example's ε is the maximum over rules, clipped to [0, 50].

    Args:
        unlearned, retrained: ``(models, examples)`` signals (e.g. :func:`logit_scaled_confidence`);
            the example axes must match, the model counts may differ.
        delta: The δ of the (ε, δ) reading.
        method: ``"fast"`` (sort once, count by binary search, and score each *kind* of rule once:
            with N models a rate is k/N, so the ~160,000 rules per example fall into at most
            (N + 1)² kinds) or ``"loop"`` (rule by rule, every value against every threshold, ε from
            float rates: the straightforward reference, for checks and timing; about 100x slower).

    Returns:
        ``(examples,)`` float64 in [0, 50].
    """
    u, r = _signals(unlearned, "unlearned"), _signals(retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ParameterError(
            f"The 'retrained' parameter must cover the same {u.shape[1]} examples as 'unlearned'; got {r.shape[1]}."
        )
    if method not in ("fast", "loop"):
        raise ParameterError(f"The 'method' parameter must be 'fast' or 'loop'; got {method!r}.")
    if not 0 <= delta < 1:
        raise ParameterError(f"The 'delta' parameter must be a float in [0, 1); got {delta!r}.")
    one = _example_epsilon if method == "fast" else _example_epsilon_loop
    return np.array([one(u[:, i], r[:, i], delta) for i in range(u.shape[1])])


def resolution(n_models: int) -> float:
    """The largest ε a population of ``n_models`` can tell apart: ``ceil(ln(N − 1))``."""
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)) or n_models < 3:
        raise ParameterError(f"The 'n_models' parameter must be an int >= 3; got {n_models!r}.")
    return float(math.ceil(math.log(n_models - 1)))


def forget_points(eps: Any, n_models: int) -> np.ndarray:
    """Each example's points toward F: 2^−k for ε in bucket k (width 0.5), 0 at or above :func:`resolution`."""
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or not (e >= 0).all():
        raise ParameterError(f"The 'eps' parameter must be a non-empty 1-D array of values >= 0; got shape {e.shape}.")
    top = resolution(n_models)
    k = np.floor(e / 0.5)
    return np.asarray(np.where(e >= top, 0.0, np.power(2.0, -k)))


def forget_score(eps: Any, n_models: int) -> float:
    """The competition's forget score F: mean over examples of 2^−k for ε in bucket k.

    Buckets of width 0.5 run from 0 up to :func:`resolution` (``ceil(ln(N − 1))``);
    an ε at or above the last edge earns 0. F = 1: indistinguishable from
    retraining at this N; F = 0: every example separated.
    """
    return float(forget_points(eps, n_models).mean())


def final_score(forget: float, retain_unlearned: float, retain_retrained: float, test_unlearned: float,
                test_retrained: float) -> float:  # fmt: skip
    """The competition's final score: F · (RA_u / RA_r) · (TA_u / TA_r), mean accuracies of the two populations."""
    for name, v in (("retain_retrained", retain_retrained), ("test_retrained", test_retrained)):
        if not v > 0:
            raise ParameterError(f"The {name!r} parameter must be an accuracy > 0; got {v!r}.")
    return float(forget * (retain_unlearned / retain_retrained) * (test_unlearned / test_retrained))


def ulira(unlearned: Any, retrained: Any, *, min_std: float = 1e-3) -> dict[str, Any]:
    """U-LiRA: per example, Gaussians fitted to each population with the scored model left out; score = LLR.

    Every (example, model) pair is scored by ``log N(x | unlearned) − log N(x | retrained)``,
    both Gaussians fitted on that example's signals with the scored model itself left
    out of its own population. Reported over all pairs: balanced accuracy at LLR > 0,
    AUC and TPR at 1% / 0.1% FPR (None with the reason when the pairs cannot resolve
    it). 0.5 is perfect unlearning. ``min_std`` floors each fitted standard deviation
    (a population whose members agree exactly would otherwise give an infinite ratio).

    Args:
        unlearned, retrained: ``(models, examples)`` signals, at least 3 models each
            (a left-out Gaussian needs 2).
    """
    u, r = _signals(unlearned, "unlearned"), _signals(retrained, "retrained")
    for name, arr in (("unlearned", u), ("retrained", r)):
        if arr.shape[0] < 3:
            raise ParameterError(f"The {name!r} parameter must hold at least 3 models for U-LiRA; got {arr.shape[0]}.")
    if u.shape[1] != r.shape[1]:
        raise ParameterError("The 'retrained' parameter must cover the same examples as 'unlearned'.")

    def fit_all(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.mean(0), np.maximum(x.std(0, ddof=1), min_std)

    def fit_loo(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        s, ss = x.sum(0), (x * x).sum(0)
        mean = (s[None] - x) / (n - 1)
        var = ((ss[None] - x * x) - (n - 1) * mean * mean) / (n - 2)
        return mean, np.maximum(np.sqrt(np.maximum(var, 0.0)), min_std)

    def logpdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        return np.asarray(-0.5 * ((x - mean) / std) ** 2 - np.log(std))

    mu_u, sd_u = fit_all(u)
    mu_r, sd_r = fit_all(r)
    lu_mean, lu_std = fit_loo(u)
    lr_mean, lr_std = fit_loo(r)
    score_u = logpdf(u, lu_mean, lu_std) - logpdf(u, mu_r[None], sd_r[None])  # unlearned models, left out
    score_r = logpdf(r, mu_u[None], sd_u[None]) - logpdf(r, lr_mean, lr_std)  # retrained models, left out
    roc = roc_summary(score_u.ravel(), score_r.ravel(), curve=True)
    acc = 0.5 * float((score_u > 0).mean()) + 0.5 * float((score_r <= 0).mean())
    return {"balanced_accuracy": acc, "auc": roc["auc"], "tpr_at_fpr": roc["tpr_at_fpr"], "reasons": roc["reasons"],
            "pairs": {"unlearned": int(score_u.size), "retrained": int(score_r.size)},
            "roc": roc["curve"]}  # fmt: skip


def rmia(target_x: Any, reference_x: Any, target_z: Any, reference_z: Any, *, a: float = 0.3,
         gamma: float = 1.0, out: Any = None) -> np.ndarray:  # fmt: skip
    """Offline RMIA scores of examples ``x`` for one target model, against population samples ``z``.

    Signals are softmax probabilities of the true label. ``p(x) = ((1 + a)/2)·mean_OUT(x) + (1 − a)/2``
    over reference models that never saw ``x`` (offline: no IN models), ``p(z)`` = the mean over the
    reference models, and ``score(x)`` = the share of ``z`` with
    ``(p(x|θ)/p(x)) / (p(z|θ)/p(z)) > γ``.

    Args:
        target_x: ``(n,)`` the target model's probabilities on the examples.
        reference_x: ``(R, n)`` the reference models' probabilities on them.
        target_z, reference_z: ``(m,)`` and ``(R, m)`` the same on the population samples (which no
            reference model saw).
        a: The offline correction (0.3 by default, or chosen on a reference model).
        gamma: The likelihood-ratio threshold.
        out: ``(R, n)`` booleans, True where reference ``r`` never saw example ``i``; ``mean_OUT(x_i)``
            averages only those (each example needs at least one). None: every reference is OUT for
            every example (the references were trained on data disjoint from ``x``).

    Returns:
        ``(n,)`` scores in [0, 1]: higher = more likely a member.
    """
    tx, tz = np.asarray(target_x, dtype=np.float64), np.asarray(target_z, dtype=np.float64)
    rx, rz = np.asarray(reference_x, dtype=np.float64), np.asarray(reference_z, dtype=np.float64)
    if tx.ndim != 1 or rx.ndim != 2 or rx.shape[1] != tx.size or rx.shape[0] < 1:
        raise ParameterError(
            f"The 'reference_x' parameter must be (references, {tx.size}) for target_x of {tx.size} examples; "
            f"got shape {rx.shape}."
        )
    if tz.ndim != 1 or rz.shape != (rx.shape[0], tz.size) or tz.size == 0:
        raise ParameterError(
            f"The 'reference_z' parameter must be ({rx.shape[0]}, {tz.size}) for target_z; got shape {rz.shape}."
        )
    if not 0 <= a <= 1:
        raise ParameterError(f"The 'a' parameter must be a float in [0, 1]; got {a!r}.")
    if not gamma > 0:
        raise ParameterError(f"The 'gamma' parameter must be a float > 0; got {gamma!r}.")
    if out is None:
        mean_out = rx.mean(0)
    else:
        mask = np.asarray(out, dtype=bool)
        if mask.shape != rx.shape:
            raise ParameterError(
                f"The 'out' parameter must have the shape of reference_x {rx.shape}; got {mask.shape}."
            )
        counts = mask.sum(0)
        if (counts == 0).any():
            raise ParameterError(
                f"The 'out' parameter must give every example at least one reference that never saw it; example "
                f"{int(np.argmax(counts == 0))} has none."
            )
        mean_out = (rx * mask).sum(0) / counts
    px = (1 + a) / 2 * mean_out + (1 - a) / 2
    pz = rz.mean(0)
    with np.errstate(divide="ignore"):
        ratio_x = tx / px
        ratio_z = np.sort(tz / np.maximum(pz, 1e-300))
    # (ratio_x / ratio_z) > γ  <=>  ratio_z < ratio_x / γ: count with one sorted array
    return np.asarray(np.searchsorted(ratio_z, ratio_x / gamma, side="left") / ratio_z.size, dtype=np.float64)


def rmia_vs_unseen(target: Mapping[str, Any], references: Mapping[str, Any], out: Mapping[str, Any], *,
                   a: float = 0.3) -> dict[str, Any]:  # fmt: skip
    """RMIA for one deployed model with reference models but no retrained one: forgotten vs never-seen samples.

    Every argument maps a group of samples to true-label probabilities: ``"forget"`` (the forgotten
    samples), ``"unseen"`` (never-seen samples, e.g. half the holdout split), ``"population"`` (the
    population samples ``z`` of :func:`rmia`, the other half, which no model saw) and, optionally,
    ``"members"`` (samples the model still trains on). ``target[g]`` is ``(n,)`` for the model under
    test, ``references[g]`` ``(R, n)`` for the reference models, ``out[g]`` ``(R, n)`` booleans
    (reference r never saw sample i; the unseen and population groups need none).

    Returns the scores' percentiles per group and ``auc``: the probability that a forgotten sample
    scores above a never-seen one (0.5: RMIA cannot tell them apart; above: the forgotten samples still
    look like members; below: they look *less* like members than never-seen data, itself a tell).
    ``members_auc``, the same for samples the model still holds, is the attack's power on this model:
    a low ``auc`` only means something when ``members_auc`` is well above 0.5.
    """
    from sklearn.metrics import roc_auc_score

    need = ("forget", "unseen", "population")
    missing = [g for g in need if g not in target or g not in references]
    if missing:
        raise ParameterError(f"The 'target' and 'references' parameters need the groups {need}; missing {missing}.")
    z_t, z_r = target["population"], references["population"]
    scores = {g: rmia(target[g], references[g], z_t, z_r, a=a, out=out.get(g))
              for g in ("forget", "unseen", "members") if g in target}  # fmt: skip

    def auc(pos: np.ndarray, neg: np.ndarray) -> float:
        return float(roc_auc_score(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg]))

    res: dict[str, Any] = {"references": int(np.asarray(z_r).shape[0]), "a": a,
                           "n": {g: int(v.size) for g, v in scores.items()} | {"population": int(np.size(z_t))},
                           "scores": {g: percentiles(v) for g, v in scores.items()},
                           "auc": auc(scores["forget"], scores["unseen"])}  # fmt: skip
    if "members" in scores:
        res["members_auc"] = auc(scores["members"], scores["unseen"])
    if "forget" in out:
        res["references_out_per_sample"] = float(np.asarray(out["forget"], dtype=bool).sum(0).mean())
    return res


def margins(logits: Any, labels: Any, *, clip: float = 100.0) -> np.ndarray:
    """KLoM's margin ``z_y − logsumexp_{j≠y} z_j`` per (model, example), clipped to ±``clip``."""
    z, y = _logits(logits, labels)
    zy = np.take_along_axis(z, y[None, :, None], axis=2)[..., 0]
    others = np.where(np.arange(z.shape[2])[None, None, :] == y[None, :, None], -np.inf, z)
    return np.asarray(np.clip(zy - logsumexp(others, axis=2), -clip, clip), dtype=np.float64)


def klom(unlearned: Any, retrained: Any, *, bins: int = 20, floor: float = 1e-5) -> np.ndarray:
    """KLoM per example: KL(P_unlearned ‖ P_retrained) between histograms of the two populations' margins.

    ``bins`` equal-width bins span the combined min–max of both populations on that
    example; the retrained histogram is floored at ``floor`` where the unlearned one
    is positive; both are normalised (``scipy.stats.entropy``). 0 = the same distribution.
    An example on which every model gives the same margin has KL 0.
    """
    u, r = _signals(unlearned, "unlearned"), _signals(retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ParameterError("The 'retrained' parameter must cover the same examples as 'unlearned'.")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ParameterError(f"The 'bins' parameter must be an int >= 2; got {bins!r}.")
    lo = np.minimum(u.min(0), r.min(0))
    hi = np.maximum(u.max(0), r.max(0))
    width = np.where(hi > lo, hi - lo, 1.0)

    def hist(x: np.ndarray) -> np.ndarray:
        idx = np.clip(np.floor((x - lo) / width * bins).astype(np.int64), 0, bins - 1)  # the max lands in the last
        counts = np.zeros((x.shape[1], bins))
        np.add.at(counts, (np.broadcast_to(np.arange(x.shape[1]), x.shape), idx), 1.0)
        return np.asarray(counts / x.shape[0])

    pu, pr = hist(u), hist(r)
    pr = np.where((pu > 0) & (pr < floor), floor, pr)
    return np.asarray(entropy(pu, pr, axis=1), dtype=np.float64)


def percentiles(values: Any) -> dict[str, float]:
    """Mean, median, 95th and 99th percentile (the KLoM summary)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "p99": float(np.percentile(v, 99))}  # fmt: skip


def memorization(correct: Any, trained: Any) -> np.ndarray:
    """Feldman's memorisation ``P[correct | x trained] − P[correct | x not trained]`` per example.

    Args:
        correct: ``(models, examples)`` bool, whether each model classifies each example correctly.
        trained: ``(models, examples)`` bool, whether each model trained on it (e.g. random halves).

    Returns:
        ``(examples,)``; NaN where no model (or every model) trained on the example.
    """
    c, t = np.asarray(correct, dtype=bool), np.asarray(trained, dtype=bool)
    if c.shape != t.shape or c.ndim != 2:
        raise ParameterError(f"The 'trained' parameter must have the shape of 'correct' {c.shape}; got {t.shape}.")
    n_in, n_out = t.sum(0), (~t).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = (c & t).sum(0) / n_in
        p_out = (c & ~t).sum(0) / n_out
    return np.where((n_in > 0) & (n_out > 0), p_in - p_out, np.nan)


def forgotten_vs_unseen(forget: Any, unseen: Any) -> dict[str, Any]:
    """Can the forgotten samples be told from never-seen samples of the same classes? (No retrained reference.)

    The production check for one model: per-sample losses and prediction entropies of the forget set
    against those of never-seen samples (the holdout split, same classes). For each signal, the two-sample
    Kolmogorov–Smirnov statistic and p-value (``scipy.stats.ks_2samp``) and the AUC of the best one-sided
    threshold (``max(AUC, 1 − AUC)``: 0.5 = an attacker with this signal cannot tell them apart).

    Args:
        forget, unseen: :class:`~unlearnkit.evaluation.outputs.Outputs` of one model.
    """
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    from unlearnkit.evaluation.scores import sample_scores

    if len(forget) == 0 or len(unseen) == 0:
        raise ParameterError(f"forgotten_vs_unseen needs both sides; got {len(forget)} and {len(unseen)} samples.")
    out: dict[str, Any] = {"n_forget": len(forget), "n_unseen": len(unseen)}
    for kind in ("loss", "entropy"):  # the true-label confidence is a monotone map of the loss: no new test
        a = np.asarray(sample_scores(forget, kind), dtype=float)
        b = np.asarray(sample_scores(unseen, kind), dtype=float)
        a, b = np.nan_to_num(a, posinf=1e6), np.nan_to_num(b, posinf=1e6)
        ks = ks_2samp(a, b)
        auc = float(roc_auc_score(np.r_[np.ones(a.size), np.zeros(b.size)], np.r_[a, b]))
        out[kind] = {"ks": float(ks.statistic), "p_value": float(ks.pvalue), "auc": max(auc, 1.0 - auc),
                     "forget": percentiles(a), "unseen": percentiles(b),
                     "histogram": _shared_histogram(a, b)}  # fmt: skip
    return out


def _shared_histogram(a: np.ndarray, b: np.ndarray, bins: int = 20) -> dict[str, list[float]]:
    """Shares of two samples in the same ``bins`` equal-width bins (for a plot an auditor reads at a glance)."""
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    return {"edges": edges.tolist(), "forget": (np.histogram(a, edges)[0] / a.size).tolist(),
            "unseen": (np.histogram(b, edges)[0] / b.size).tolist()}  # fmt: skip
