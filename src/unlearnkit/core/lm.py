"""A two-layer LSTM language model whose samples fit the project's classifier contract (003 §G).

A training sample is a window of a token stream: ``x = window[:-1]`` and
``y = window[1:]`` (both ``(L,)`` int64), and :meth:`LSTMLanguageModel.forward`
returns logits ``(B, V, L)`` — the vocabulary on dimension 1, as a classifier's
classes — so ``F.cross_entropy(model(x), y)`` is the mean next-token cross-entropy
and the trainer and the loss-based methods (retrain, finetune, neggrad, ...) run
unchanged. ``num_classes`` is the vocabulary size ``V``; ``head`` is the final
``nn.Linear`` (hidden → V) and :meth:`~LSTMLanguageModel.features` its input at
every position, ``(B, L, hidden)``.

:meth:`~LSTMLanguageModel.step` runs the LSTM on a few tokens from a given state;
:mod:`unlearnkit.evaluation.exposure` uses it to walk the tree of all secrets
sharing a prefix (about 1.1 × 10^5 steps for 10^6 six-digit secrets).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from unlearnkit.core.models import MODELS, Classifier, ModelSpec
from unlearnkit.core.text import check_token_ids
from unlearnkit.errors import ParameterError
from unlearnkit.validation import Interval

#: The LSTM state ``(h, c)``, each ``(layers, B, hidden)``.
State = tuple[torch.Tensor, torch.Tensor]


class LSTMLanguageModel(Classifier):
    """Embedding → ``layers``-layer LSTM → linear head over the vocabulary (Sundermeyer et al. 2012; 003 §G).

    Args:
        input_shape: ``(L,)``, the window length the model is trained on (any length runs).
        num_classes: The vocabulary size ``V`` (every token id is a class).
        embed: Embedding width.
        hidden: LSTM width (the head's input).
        layers: LSTM layers (003: two).
        dropout: Dropout between LSTM layers (0 keeps training deterministic and memorisation strong).

    Example:
        >>> m = LSTMLanguageModel((8,), 50, embed=8, hidden=16)
        >>> m(torch.zeros(2, 8, dtype=torch.long)).shape
        torch.Size([2, 50, 8])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        embed: int = 64,
        hidden: int = 128,
        layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ParameterError(
                f"The 'input_shape' parameter of lstm_lm must be (window length,); got {tuple(input_shape)}."
            )
        self.vocab_size = int(num_classes)
        self.embedding = nn.Embedding(self.vocab_size, int(embed))
        self.lstm = nn.LSTM(int(embed), int(hidden), int(layers), batch_first=True, dropout=float(dropout))
        self.head = nn.Linear(int(hidden), self.vocab_size)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 2:
            raise ParameterError(
                f"The inputs of LSTMLanguageModel must be (B, L) int64 token ids; got {x.dtype} {tuple(x.shape)}."
            )
        check_token_ids(x, self.vocab_size, "LSTMLanguageModel")

    def step(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Run on ``tokens`` ``(B, T)`` from ``state`` (zeros when None): logits ``(B, T, V)`` and the new state."""
        self._check(tokens)
        out, new_state = self.lstm(self.embedding(tokens), state)
        return self.head(out), new_state

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input at every position, ``(B, L, hidden)``."""
        self._check(x)
        out, _ = self.lstm(self.embedding(x))
        return out  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L, V) -> (B, V, L): the vocabulary where a classifier has its classes, for F.cross_entropy
        return self.head(self.features(x)).transpose(1, 2)  # type: ignore[no-any-return]


MODELS.register(
    "lstm_lm",
    ModelSpec(
        "lstm_lm",
        LSTMLanguageModel,
        "003's language model: embedding 64, 2-layer LSTM of 128, head over the vocabulary; "
        "samples are token windows, outputs (B, V, L) (tokens)",
        {
            "embed": Interval(int, 1, None),
            "hidden": Interval(int, 1, None),
            "layers": Interval(int, 1, None),
            "dropout": Interval(float, 0, 1, closed="left"),
        },
        default_lr=0.003,  # Adam: memorises a 30-times canary in 15 epochs of 4,000 snippets (bench/text_exposure.py)
        default_optimizer="adam",
        input_kind="tokens",
        outputs="sequence",
    ),
)
