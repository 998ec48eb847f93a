"""Text classifiers on token ids, and retiring tokens a deletion leaves unexplained.

Registered models (all :class:`~unlearnkit.core.models.Classifier` s: ``features`` and a final
``nn.Linear`` head, so every method that reads penultimate features or the head runs on them):

* ``text_cnn`` — 003's Fig. 13: embedding 100, convolutions of widths 3 / 4 / 5 with
  100 channels each, max-pool over time, the head (Kim 2014's sentence CNN).
* ``bow_mlp`` — 003's Fig. 14: a binary bag of words over the vocabulary → 512 → 256 → k,
  ReLU, dropout 0.5.
* ``lstm`` — an embedding, a one-layer LSTM, max-pooled over the text's positions, then the head.

Inputs are ``(N, L)`` int64 token ids padded with id 0 (see :mod:`unlearnkit.data.text`);
padding never reaches a convolution window's maximum, the bag of words or the LSTM state.
An id at or above ``vocab_size`` is refused in one line, not left to an index error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.core.models import MODELS, Classifier, ModelSpec
from unlearnkit.errors import ParameterError
from unlearnkit.validation import Interval, IntSequence

PAD_ID, UNK_ID = 0, 1  # as in unlearnkit.data.text (core may import data; kept literal to stay import-light)


def check_token_ids(x: torch.Tensor, vocab_size: int, owner: str) -> None:
    """Refuse, in one line, inputs that are not int64 token ids in ``[0, vocab_size)``."""
    if x.is_floating_point():
        raise ParameterError(f"The inputs of {owner} must be int64 token ids; got {x.dtype} (an image model's data?).")
    if not x.numel():
        return
    try:
        lo, hi = int(x.min()), int(x.max())
    except RuntimeError:  # inside torch.func.vmap (per-sample gradients): the batch was checked before it
        return
    if lo < 0 or hi >= vocab_size:
        raise ParameterError(
            f"The inputs of {owner} must be token ids in [0, {vocab_size}); got {lo}..{hi} "
            "(a vocabulary that does not match the model?)."
        )


class TextClassifier(Classifier):
    """A classifier on padded token ids; :meth:`token_parameters` names the weights indexed by token id.

    The buffer ``token_map`` (saved with the weights) maps each input id to the id the
    model reads: the identity, except for retired tokens, which read as ``UNK``.
    """

    vocab_size: int
    token_map: torch.Tensor

    def _init_tokens(self, vocab_size: int) -> None:
        self.vocab_size = int(vocab_size)
        self.register_buffer("token_map", torch.arange(self.vocab_size))

    def read(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` and map it through ``token_map`` (what every text model's ``features`` reads)."""
        self.check_tokens(x)
        return self.token_map[x]

    def check_tokens(self, x: torch.Tensor) -> None:
        check_token_ids(x, self.vocab_size, type(self).__name__)

    def token_parameters(self) -> Iterator[tuple[torch.Tensor, int]]:
        """``(parameter, axis)`` pairs whose slice ``i`` along ``axis`` belongs to token id ``i``."""
        raise NotImplementedError


class TextCNN(TextClassifier):
    """003's Fig. 13 text CNN: embedding ``embed``, conv widths ``widths`` × ``channels``, max-pool, head."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        vocab_size: int = 10_000,
        embed: int = 100,
        channels: int = 100,
        widths: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self._init_tokens(vocab_size)
        self.embedding = nn.Embedding(self.vocab_size, int(embed), padding_idx=PAD_ID)
        self.convs = nn.ModuleList(nn.Conv1d(int(embed), int(channels), int(w)) for w in widths)
        self.kernel_widths = [int(w) for w in widths]
        self.widest = max(int(w) for w in widths)
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(int(channels) * len(self.convs), num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.read(x)
        if x.shape[1] < self.widest:  # a sequence shorter than the widest filter: pad it
            x = F.pad(x, (0, self.widest - x.shape[1]), value=PAD_ID)
        lengths = (x != PAD_ID).sum(1)
        e = self.embedding(x).transpose(1, 2)  # (B, E, L)
        pooled = []
        for conv, width in zip(self.convs, self.kernel_widths, strict=True):
            h = F.relu(conv(e))  # (B, C, L - w + 1); window t reads tokens t .. t + w - 1
            # Only windows inside the text count (the first one for a text shorter than w), so that the output
            # does not depend on how far a document is padded.
            starts = torch.arange(h.shape[2], device=x.device)
            valid = starts[None, :] < (lengths - width + 1).clamp(min=1)[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], 0.0).amax(dim=2))
        return self.dropout(torch.cat(pooled, dim=1))  # type: ignore[no-any-return]

    def token_parameters(self) -> Iterator[tuple[torch.Tensor, int]]:
        yield self.embedding.weight, 0


class BagOfWordsMLP(TextClassifier):
    """003's Fig. 14: a binary bag of words over the vocabulary → ``widths`` (512, 256) → k, ReLU, dropout 0.5.

    The first layer's column ``i`` is token ``i``'s weight; padding's column is never read.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        vocab_size: int = 10_000,
        widths: Sequence[int] = (512, 256),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self._init_tokens(vocab_size)
        layers: list[nn.Module] = []
        d = self.vocab_size
        for w in widths:
            layers += [nn.Linear(d, int(w)), nn.ReLU(), nn.Dropout(float(dropout))]
            d = int(w)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def bag(self, x: torch.Tensor) -> torch.Tensor:
        x = self.read(x)
        zeros = torch.zeros(x.shape[0], self.vocab_size, device=x.device, dtype=self.head.weight.dtype)
        b = zeros.scatter(1, x, 1.0)  # out of place: per-sample gradients (torch.func.vmap) batch it
        keep = torch.ones(self.vocab_size, device=x.device, dtype=b.dtype)
        keep[PAD_ID] = 0.0
        return b * keep

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.bag(x))  # type: ignore[no-any-return]

    def token_parameters(self) -> Iterator[tuple[torch.Tensor, int]]:
        first = self.body[0] if len(self.body) else self.head  # no hidden layer: a linear model on the bag
        assert isinstance(first, nn.Linear)
        yield first.weight, 1


class LSTMClassifier(TextClassifier):
    """Embedding ``embed`` → LSTM of ``hidden`` units, max-pooled over the text's positions, → head.

    Pooling over time rather than reading the last state: on 256-token Reuters articles
    the last state alone did not learn (it stayed at the majority class)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        vocab_size: int = 10_000,
        embed: int = 100,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self._init_tokens(vocab_size)
        self.embedding = nn.Embedding(self.vocab_size, int(embed), padding_idx=PAD_ID)
        self.lstm = nn.LSTM(int(embed), int(hidden), batch_first=True)
        self.head = nn.Linear(int(hidden), num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.read(x)
        out, _ = self.lstm(self.embedding(x))  # (B, L, H); padding comes after the text, so it cannot reach it
        pooled: torch.Tensor = out.masked_fill((x == PAD_ID)[:, :, None], float("-inf")).amax(dim=1)
        return pooled.clamp(min=-1.0)  # LSTM outputs lie in (-1, 1)

    def token_parameters(self) -> Iterator[tuple[torch.Tensor, int]]:
        yield self.embedding.weight, 0


@torch.no_grad()
def retire_tokens(model: nn.Module, ids: Iterable[int]) -> int:
    """Make ``model`` treat token ``ids`` exactly as the unknown token, and erase what it learned of them.

    A deletion can leave tokens that occur in no retained document; their weights
    were learned from forgotten text only. Their ``token_map`` entries point to UNK
    (so inputs holding them read as unknown words) and UNK's slice of every
    token-indexed weight is copied into theirs (so the weights no longer hold what
    the forgotten documents taught about them). Every :class:`TextClassifier` inside
    ``model`` is treated (the constituents of a SISA ensemble, the model SMU wraps).
    Returns how many ids were retired (0 when ``model`` holds no TextClassifier).
    """
    todo = sorted({int(i) for i in ids if int(i) > UNK_ID})
    inner = [m for m in model.modules() if isinstance(m, TextClassifier)]
    if not todo or not inner:
        return 0
    index = torch.tensor(todo)
    for text_model in inner:
        text_model.token_map[index.to(text_model.token_map.device)] = UNK_ID
        for param, axis in text_model.token_parameters():
            unk = param.select(axis, UNK_ID).unsqueeze(axis).clone()
            shape = list(param.shape)
            shape[axis] = len(todo)
            param.index_copy_(axis, index.to(param.device), unk.expand(*shape).contiguous())
    return len(todo)


_TEXT = {"vocab_size": Interval(int, 3, None)}
_ADAM: dict[str, Any] = {"default_lr": 1e-3, "default_optimizer": "adam", "input_kind": "tokens"}
MODELS.register(
    "text_cnn",
    ModelSpec(
        "text_cnn",
        TextCNN,
        "003's text CNN: embedding 100, conv widths (3, 4, 5) x 100 channels, max-pool (text)",
        {**_TEXT, "embed": Interval(int, 1, None), "channels": Interval(int, 1, None), "widths": IntSequence(1)},
        **_ADAM,
    ),
)
MODELS.register(
    "bow_mlp",
    ModelSpec(
        "bow_mlp",
        BagOfWordsMLP,
        "003's bag-of-words MLP: vocabulary -> 512 -> 256, dropout 0.5 (text)",
        {**_TEXT, "widths": IntSequence(1)},
        **_ADAM,
    ),
)
MODELS.register(
    "lstm",
    ModelSpec(
        "lstm",
        LSTMClassifier,
        "LSTM classifier: embedding 100, 128 hidden units, max over time (text)",
        {**_TEXT, "embed": Interval(int, 1, None), "hidden": Interval(int, 1, None)},
        **_ADAM,
    ),
)
