"""Exposure of canaries in a language model (Carlini et al. 2019, "The Secret Sharer"; 003 eqs. 8–9).

Pure functions of a language model (logits ``(B, V, L)`` on ``(B, L)`` token ids, as
:class:`~unlearnkit.core.lm.LSTMLanguageModel`) and token ids:

* :func:`log_perplexity` — eq. 9, ``P_θ(s) = Σ_i −log2 Pr(s_i | context, s_1..s_{i−1})`` in bits,
  summed over the secret's tokens given the canary's fixed context (the context's own
  term is the same for every candidate secret, so it changes neither rank nor CDF).
  Lower = the model finds the secret less surprising.
* :func:`all_log_perplexities` — ``P_θ`` of every secret of the randomness space R
  (all ``10 ** digits`` digit strings), by walking the digit tree: the model runs once
  on the context, then one step per tree node, level by level in batches —
  ``1 + 10 + … + 10^(digits−1)`` steps (111,111 for six digits), not 10^6 full sequences.
* :func:`rank_exposure` — ``log2 |R| − log2 rank(s)``, ``rank(s) = |{r ∈ R : P_θ(r) ≤ P_θ(s)}|``
  (Carlini et al. §4): 0 when the secret is no likelier than the least likely candidate,
  ``log2 |R|`` (19.93 for 10^6) when it is the likeliest. Higher = more memorised.
* :func:`skew_normal_exposure` — eq. 8, ``−log2 CDF(P_θ(s))`` with the CDF of a skew-normal
  fitted (``scipy.stats.skewnorm``) to the log-perplexities of sampled random secrets: an
  estimate that needs no enumeration and is not capped at ``log2 |R|`` (an exposure beyond
  the double range is ``inf``). Higher = more memorised; 003 (after Carlini) calls below 10 safe.
* :func:`next_token_scores` — next-token accuracy and cross-entropy on a view of windows
  (the canary windows: the language model's "forget accuracy"; held-out windows: its test accuracy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import evaluating
from unlearnkit.data.splits import View
from unlearnkit.errors import ParameterError

LN2 = math.log(2.0)
#: Rank exposure enumerates R: refused above this many secrets (use the skew-normal estimate instead).
MAX_ENUMERATED = 10**7
#: 003 / Carlini et al.: extraction is negligible below this exposure (bits).
SAFE_EXPOSURE = 10.0


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _ids(values: Sequence[int] | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.long).flatten()
    if t.numel() == 0:
        raise ParameterError(f"The {name!r} parameter must hold at least one token id; got none.")
    return t


@torch.no_grad()
def log_perplexity(
    model: nn.Module,
    context: Sequence[int] | torch.Tensor,
    secrets: torch.Tensor,
    *,
    batch_size: int = 512,
) -> torch.Tensor:
    """Eq. 9 for each row of ``secrets`` ``(S, n)`` (token ids) after ``context``: ``(S,)`` float64, in bits.

    One full forward pass per batch of sequences ``context + secret[:-1]``.

    Example:
        >>> from unlearnkit.core.lm import LSTMLanguageModel
        >>> m = LSTMLanguageModel((4,), 12, embed=4, hidden=8)
        >>> log_perplexity(m, [11], torch.tensor([[2, 3], [4, 5]])).shape
        torch.Size([2])
    """
    ctx = _ids(context, "context")
    if secrets.dim() != 2 or secrets.shape[1] < 1 or secrets.is_floating_point():
        raise ParameterError(
            "The 'secrets' parameter must be (S, n) int64 token ids, n >= 1; got "
            f"{secrets.dtype} {tuple(secrets.shape)}."
        )
    dev = _device(model)
    c = ctx.numel()
    out = []
    with evaluating(model):
        for start in range(0, secrets.shape[0], batch_size):
            s = secrets[start : start + batch_size].to(dev)
            x = torch.cat([ctx.to(dev).expand(s.shape[0], c), s[:, :-1]], dim=1)  # (b, c + n - 1)
            logp = F.log_softmax(model(x)[:, :, c - 1 :].double(), dim=1)  # (b, V, n): the secret's positions
            out.append(-logp.gather(1, s.unsqueeze(1)).squeeze(1).sum(1).cpu() / LN2)
    return torch.cat(out)


@torch.no_grad()
def all_log_perplexities(
    model: nn.Module,
    context: Sequence[int] | torch.Tensor,
    digit_ids: Sequence[int] | torch.Tensor,
    digits: int,
    *,
    chunk: int = 16384,
) -> torch.Tensor:
    """``(10 ** digits,)`` float64: eq. 9 of every secret, entry ``v`` the secret whose digits spell ``v``.

    The model must have ``step(tokens (B, T), state) -> (logits (B, T, V), state)`` with a
    batch-first state of shape ``(layers, B, hidden)`` (:class:`~unlearnkit.core.lm.LSTMLanguageModel`).
    Level ``k`` of the tree holds the ``10 ** k`` secret prefixes of ``k`` digits, each with
    its score so far and its LSTM state; one batched step (in chunks of ``chunk`` nodes)
    scores its ten children. Probabilities are normalised over the whole vocabulary.
    """
    ctx = _ids(context, "context")
    dig = _ids(digit_ids, "digit_ids")
    if dig.numel() != 10 or dig.unique().numel() != 10:
        raise ParameterError(f"The 'digit_ids' parameter must hold 10 distinct token ids; got {dig.tolist()}.")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1 or 10**digits > MAX_ENUMERATED:
        raise ParameterError(
            f"The 'digits' parameter must be an int in [1, {round(math.log10(MAX_ENUMERATED))}] to enumerate the "
            f"randomness space (use skew_normal_exposure beyond); got {digits!r}."
        )
    step = getattr(model, "step", None)
    if not callable(step):
        raise ParameterError(
            f"The 'model' parameter must have a step(tokens, state) method (an LSTMLanguageModel); "
            f"{type(model).__name__} has none."
        )
    dev = _device(model)
    dig = dig.to(dev)
    with evaluating(model):
        logits, (h, c) = step(ctx.to(dev).unsqueeze(0))
        scores = -F.log_softmax(logits[:, -1].double(), dim=-1)[0, dig] / LN2  # (10,): the first digit
        tokens = dig  # each node's last digit, the input of its next step
        h, c = h.repeat_interleave(10, dim=1), c.repeat_interleave(10, dim=1)
        for level in range(1, digits):
            last = level == digits - 1  # the leaves need no state
            parts, hs, cs = [], [], []
            for a in range(0, scores.numel(), chunk):
                b = min(a + chunk, scores.numel())
                lg, (hn, cn) = step(tokens[a:b].unsqueeze(1), (h[:, a:b].contiguous(), c[:, a:b].contiguous()))
                lp = F.log_softmax(lg[:, 0].double(), dim=-1)[:, dig]  # (n, 10)
                parts.append((scores[a:b].unsqueeze(1) - lp / LN2).flatten())  # child j*10 + d
                if not last:
                    hs.append(hn.repeat_interleave(10, dim=1))
                    cs.append(cn.repeat_interleave(10, dim=1))
            scores = torch.cat(parts)
            if not last:
                tokens = dig.repeat(scores.numel() // 10)
                h, c = torch.cat(hs, dim=1), torch.cat(cs, dim=1)
    return scores.cpu()


def _values(secret_values: Sequence[int] | np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(secret_values, dtype=np.int64)).flatten()
    if v.numel() and (int(v.min()) < 0 or int(v.max()) >= size):
        raise ParameterError(
            f"The 'secret_values' parameter must hold secrets in [0, {size}); got {int(v.min())}..{int(v.max())}."
        )
    return v


def rank_exposure(
    all_scores: torch.Tensor, secret_values: Sequence[int] | np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and exposures ``log2 |R| − log2 rank`` of the secrets ``secret_values`` (indices into ``all_scores``).

    ``all_scores``: ``P_θ`` of every member of R (:func:`all_log_perplexities`). Ties count
    against the secret (``rank = |{r : P_θ(r) ≤ P_θ(s)}|``), so a model that scores every
    candidate alike gives exposure 0.

    Example:
        >>> rank_exposure(torch.tensor([3.0, 1.0, 2.0, 4.0]), [1, 3])
        (array([1, 4]), array([2., 0.]))
    """
    size = int(all_scores.numel())
    v = _values(secret_values, size)
    ordered = torch.sort(all_scores.double()).values
    ranks = torch.searchsorted(ordered, all_scores.double()[v], right=True)
    return ranks.numpy().astype(np.int64), (math.log2(size) - torch.log2(ranks.double())).numpy()


def sample_secret_values(size: int, n: int, *, seed: int) -> np.ndarray:
    """``n`` secrets drawn uniformly (with replacement) from R = [0, size), seeded."""
    return np.random.default_rng((int(seed), 104723)).integers(0, size, size=int(n))


def skew_normal_fit(samples: np.ndarray | torch.Tensor) -> tuple[float, float, float]:
    """``(a, loc, scale)`` of the skew-normal fitted to ``samples`` by maximum likelihood (``skewnorm.fit``)."""
    from scipy.stats import skewnorm

    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size < 3 or not np.isfinite(x).all() or float(x.std()) == 0.0:
        raise ParameterError(
            f"The 'samples' parameter must hold at least 3 finite, not all equal log-perplexities; got {x.size} values."
        )
    a, loc, scale = skewnorm.fit(x)
    return float(a), float(loc), float(scale)


def skew_normal_exposure(
    secret_scores: np.ndarray | torch.Tensor | Sequence[float], fit: tuple[float, float, float]
) -> np.ndarray:
    """Eq. 8: ``−log2 CDF(P_θ(s))`` under the skew-normal ``fit = (a, loc, scale)``; ``inf`` past double range."""
    from scipy.stats import skewnorm

    a, loc, scale = fit
    logcdf = skewnorm.logcdf(np.asarray(secret_scores, dtype=np.float64), a, loc, scale)
    return np.asarray(-logcdf / LN2, dtype=np.float64) + 0.0  # + 0.0: no "-0.0" for a CDF of 1


@dataclass(frozen=True)
class ExposureReport:
    """Every canary's exposure under one model (arrays are per canary, in the canaries' order).

    Attributes:
        log_perplexity: Eq. 9, bits.
        rank, rank_exposure: Among all ``space_size`` secrets (None when not enumerated).
        skew_normal_exposure: Eq. 8 from ``samples`` random secrets.
        fit: The skew-normal ``(a, loc, scale)`` fitted to the samples' log-perplexities.
        seconds: Wall time of each part ("enumeration", "sampling", "canaries").
    """

    log_perplexity: np.ndarray
    rank: np.ndarray | None
    rank_exposure: np.ndarray | None
    skew_normal_exposure: np.ndarray
    space_size: int
    samples: int
    fit: tuple[float, float, float]
    seconds: dict[str, float] = field(default_factory=dict)


def canary_exposure(
    model: nn.Module,
    context: Sequence[int] | torch.Tensor,
    digit_ids: Sequence[int] | torch.Tensor,
    secret_values: Sequence[int] | np.ndarray | torch.Tensor,
    digits: int,
    *,
    samples: int = 5000,
    enumerate_space: bool = True,
    seed: int = 0,
) -> ExposureReport:
    """Both exposures of the secrets ``secret_values`` (integers whose ``digits`` decimal digits are the secret).

    The canaries share their context, so one enumeration of R (and one skew-normal fit)
    serves them all; each canary costs one lookup. ``samples`` random secrets (seeded)
    make the skew-normal fit.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 3:
        raise ParameterError(f"The 'samples' parameter must be an int >= 3; got {samples!r}.")
    size = 10**digits
    values = _values(secret_values, size)
    dig = _ids(digit_ids, "digit_ids")
    powers = 10 ** torch.arange(digits - 1, -1, -1)
    seconds: dict[str, float] = {}

    def ids(v: torch.Tensor) -> torch.Tensor:
        return dig[(v.unsqueeze(1) // powers) % 10]

    t = time.perf_counter()
    own = log_perplexity(model, context, ids(values))
    seconds["canaries"] = time.perf_counter() - t
    t = time.perf_counter()
    drawn = torch.as_tensor(sample_secret_values(size, samples, seed=seed))
    fit = skew_normal_fit(log_perplexity(model, context, ids(drawn)).numpy())
    seconds["sampling"] = time.perf_counter() - t
    rank = exposure = None
    if enumerate_space:
        t = time.perf_counter()
        rank, exposure = rank_exposure(all_log_perplexities(model, context, dig, digits), values)
        seconds["enumeration"] = time.perf_counter() - t
    return ExposureReport(
        log_perplexity=own.numpy(),
        rank=rank,
        rank_exposure=exposure,
        skew_normal_exposure=skew_normal_exposure(own.numpy(), fit),
        space_size=size,
        samples=samples,
        fit=fit,
        seconds=seconds,
    )


@dataclass(frozen=True)
class NextToken:
    """Next-token accuracy and mean cross-entropy (nats) over every position of a view's windows."""

    accuracy: float
    loss: float
    positions: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)


@torch.no_grad()
def next_token_scores(model: nn.Module, view: View, *, batch_size: int = 256) -> NextToken:
    """:class:`NextToken` of ``model`` on ``view`` (windows ``x`` ``(n, L)``, next tokens ``y`` ``(n, L)``)."""
    if len(view) == 0:
        raise ParameterError(f"The 'view' parameter must hold at least one window; {view.name!r} holds none.")
    dev = _device(model)
    correct, total, loss = 0, 0, 0.0
    with evaluating(model):
        for xb, yb in view.batches(batch_size):
            xb, yb = xb.to(dev), yb.to(dev)
            logits = model(xb)
            correct += int((logits.argmax(1) == yb).sum())
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            total += int(yb.numel())
    return NextToken(correct / total, loss / total, total)
