"""Canaries in a language model's training text (Carlini et al. 2019, "The Secret Sharer"; 003 §G).

A *canary* is a sentence of a fixed format with a random secret, e.g.
``"my pin is 3 1 4 1 5 9"``: the prefix, then ``digits`` single-digit tokens
drawn uniformly (seeded, without replacement among canaries) from the
randomness space R of all ``10 ** digits`` digit strings. Each canary is inserted
into the training documents ``repeats`` times (a canary inserted 0 times is a
control: a secret the model never saw) as a document of its own, at seeded
positions between documents.

The corpus is one token stream: every document's tokens followed by ``<eos>``,
encoded with a :class:`~unlearnkit.data.text.Vocabulary` fitted on the training
documents *without* the canaries, in which the ten digits, ``<eos>`` and the
prefix's tokens are always present — so every candidate secret is expressible and
the vocabulary says nothing about which one was inserted. A language-model sample is
a window of ``window + 1`` consecutive tokens (window ``k`` starts at ``k * window``,
so consecutive windows share one token and every transition is trained on exactly
once); its input is the window's first ``window`` tokens and its label the last
``window``. A canary's samples are the windows holding any of its tokens; the
``canary`` scenario forgets all of them.

Held-out documents make the non-member windows: ``holdout`` and ``test`` hold no
canary; ``reference`` is the holdout text with ``count`` *other* secrets of the same
format inserted once each — non-member canaries, the "real-world non-member OOD"
data whose posteriors Forsaken pulls the forget set toward (003 Definition 4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch

from unlearnkit.data.scenarios import SCENARIOS, Scenario
from unlearnkit.data.splits import DataSplit, ForgetRequest, Splits, View
from unlearnkit.data.text import DIGITS, PAD, UNK, UNK_ID, Vocabulary
from unlearnkit.errors import DataError, ParameterError, RequestError
from unlearnkit.validation import SEED_MAX, Interval, validate_parameters

EOS = "<eos>"
#: The file a saved language model keeps its canaries in (beside ``vocabulary.json``).
CANARIES_FILE = "canaries.json"
_SALT_SECRETS, _SALT_PLACES, _SALT_REFERENCE = 611953, 746773, 882377  # independent seeded streams


@dataclass(frozen=True)
class CanarySpec:
    """Which canaries, how often: everything needed to rebuild them (and to score a saved model).

    Args:
        count: Number of canaries.
        repeats: Insertions per canary, cycled: canary ``i`` is inserted ``repeats[i % len(repeats)]`` times.
        digits: Secret length; the randomness space has ``10 ** digits`` members.
        prefix: The format's fixed part, before the secret.
        seed: Seeds the secrets and their positions.

    Example:
        >>> s = CanarySpec(count=3, repeats=(0, 5), digits=2, seed=0)
        >>> s.repeat_counts(), s.secrets().shape
        ((0, 5, 0), (3, 2))
    """

    count: int = 10
    repeats: tuple[int, ...] = (1, 5, 30)
    digits: int = 6
    prefix: str = "my pin is"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.repeats, list):
            object.__setattr__(self, "repeats", tuple(self.repeats))
        validate_parameters(
            "CanarySpec",
            {"count": self.count, "digits": self.digits, "seed": self.seed},
            {"count": Interval(int, 1, None), "digits": Interval(int, 1, 9), "seed": Interval(int, 0, SEED_MAX)},
        )
        r = self.repeats
        if not (
            isinstance(r, tuple) and r and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r)
        ):
            raise ParameterError(
                f"The 'repeats' parameter of CanarySpec must be a non-empty sequence of ints >= 0; got {r!r}."
            )
        if not isinstance(self.prefix, str) or not self.prefix.strip():
            raise ParameterError(
                f"The 'prefix' parameter of CanarySpec must be a non-empty string; got {self.prefix!r}."
            )
        if 2 * self.count > self.space_size:  # the canaries and as many non-member reference secrets, all distinct
            raise ParameterError(
                f"The 'count' parameter of CanarySpec must be at most {self.space_size // 2} for {self.digits}-digit "
                f"secrets (half the randomness space); got {self.count}."
            )

    @property
    def space_size(self) -> int:
        """``|R| = 10 ** digits``."""
        return int(10**self.digits)

    def repeat_counts(self) -> tuple[int, ...]:
        return tuple(self.repeats[i % len(self.repeats)] for i in range(self.count))

    def _drawn(self) -> np.ndarray:
        rng = np.random.default_rng((self.seed, _SALT_SECRETS))
        return np.asarray(rng.choice(self.space_size, size=2 * self.count, replace=False), dtype=np.int64)

    def secret_values(self) -> np.ndarray:
        """``(count,)`` the secrets as integers in [0, 10 ** digits) (their digits, leading zeros included)."""
        return self._drawn()[: self.count]

    def reference_values(self) -> np.ndarray:
        """``(count,)`` other secrets, never inserted in training (the non-member canaries)."""
        return self._drawn()[self.count :]

    def secrets(self) -> np.ndarray:
        """``(count, digits)`` the secrets' digits."""
        return to_digits(self.secret_values(), self.digits)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repeats": list(self.repeats)}

    @classmethod
    def from_dict(cls, d: Any) -> CanarySpec:
        try:
            return cls(**{k: d[k] for k in ("count", "repeats", "digits", "prefix", "seed")})
        except (KeyError, TypeError) as exc:
            raise DataError(f"not a canary spec ({exc}).") from None


def to_digits(values: np.ndarray | Sequence[int], digits: int) -> np.ndarray:
    """``(n, digits)`` the decimal digits of ``values``, most significant first (``7 -> [0, 0, 7]``)."""
    v = np.asarray(values, dtype=np.int64).reshape(-1, 1)
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    return np.asarray((v // powers) % 10)


def canary_vocabulary(
    documents: Sequence[str], spec: CanarySpec, *, max_size: int, min_df: int, window: int
) -> Vocabulary:
    """The vocabulary of a canary corpus: fitted on ``documents`` (no canary in them), plus the format's tokens."""
    probe = Vocabulary((PAD, UNK), max_length=1)  # only its tokeniser is used
    forced = (*DIGITS, EOS, *dict.fromkeys(probe.tokenize(spec.prefix)))
    return Vocabulary.fit(documents, max_size=max_size, min_df=min_df, max_length=window + 1, always=forced)


def windows(stream: torch.Tensor, window: int, name: str = "view") -> View:
    """The stream's language-model samples: ``x[k] = stream[kL : kL + L]``, ``y[k] = stream[kL + 1 : kL + L + 1]``."""
    n = (int(stream.numel()) - 1) // window
    if n < 1:
        raise DataError(f"The {name} stream holds {stream.numel()} tokens, fewer than one window of {window + 1}.")
    rows = torch.arange(n).unsqueeze(1) * window + torch.arange(window + 1)
    w = stream[rows]
    return View(w[:, :-1].contiguous(), w[:, 1:].contiguous(), torch.arange(n), name)


def windows_holding(starts: torch.Tensor, length: int, window: int, n_windows: int) -> torch.Tensor:
    """Sorted indices of the windows holding any token of the spans ``[start, start + length)``.

    Window ``k`` holds the tokens ``[kL, kL + L]``; it meets a span iff ``kL <= end - 1`` and ``kL + L >= start``.
    """
    if starts.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    first = torch.div(starts - 1, window, rounding_mode="floor").clamp(min=0)  # smallest k with kL + L >= start
    last = torch.div(starts + length - 1, window, rounding_mode="floor")  # largest k with kL <= end - 1
    span = int((last - first).max()) + 1
    ks = first.unsqueeze(1) + torch.arange(span)
    ks = ks[(ks <= last.unsqueeze(1)) & (ks < n_windows)]
    return torch.unique(ks)  # type: ignore[no-any-return]


@dataclass(frozen=True, eq=False)
class CanaryCorpus:
    """A token stream with canaries inserted, its held-out streams, and where each canary went.

    Attributes:
        vocabulary: Fitted on the training documents (without canaries); holds the digits, ``<eos>``, the prefix.
        spec: The canaries.
        window: Input length ``L`` of a sample (a window holds ``L + 1`` tokens).
        train: ``(T,)`` the training stream, canaries inserted.
        holdout, test: Held-out streams without canaries.
        reference: The holdout documents with the non-member reference secrets inserted once each.
        starts, owners: ``(M,)`` where each inserted occurrence starts in ``train`` and which canary it is.
    """

    vocabulary: Vocabulary
    spec: CanarySpec
    window: int
    train: torch.Tensor
    holdout: torch.Tensor
    test: torch.Tensor
    reference: torch.Tensor
    starts: torch.Tensor
    owners: torch.Tensor

    @cached_property
    def context_ids(self) -> tuple[int, ...]:
        """``<eos>`` then the prefix's token ids: what precedes every canary's secret in the stream."""
        v = self.vocabulary
        return tuple(v.encode_tokens([EOS, *v.tokenize(self.spec.prefix)]))

    @cached_property
    def digit_ids(self) -> tuple[int, ...]:
        """The token ids of ``"0"`` … ``"9"``."""
        return tuple(self.vocabulary.encode_tokens(DIGITS))

    @property
    def canary_length(self) -> int:
        """Tokens of one canary in the stream: the prefix and the secret (its trailing ``<eos>`` not counted)."""
        return len(self.context_ids) - 1 + self.spec.digits

    def secret_ids(self) -> torch.Tensor:
        """``(count, digits)`` the canaries' secrets as token ids."""
        return torch.as_tensor(np.asarray(self.digit_ids)[self.spec.secrets()], dtype=torch.long)

    def view(self, part: str) -> View:
        """The windows of ``part`` ("train", "holdout", "test" or "reference")."""
        streams = {"train": self.train, "holdout": self.holdout, "test": self.test, "reference": self.reference}
        if part not in streams:
            raise ParameterError(f"The 'part' parameter must be one of {', '.join(streams)}; got {part!r}.")
        return windows(streams[part], self.window, part)

    @cached_property
    def n_train_windows(self) -> int:
        return (int(self.train.numel()) - 1) // self.window

    def canary_windows(self, canary: int) -> torch.Tensor:
        """Sorted training-window indices holding any token of canary ``canary`` (empty for a control)."""
        if not (isinstance(canary, int) and 0 <= canary < self.spec.count):
            raise ParameterError(f"The 'canary' parameter must be an int in [0, {self.spec.count}); got {canary!r}.")
        starts = self.starts[self.owners == canary]
        return windows_holding(starts, self.canary_length, self.window, self.n_train_windows)

    def forget_windows(self) -> torch.Tensor:
        """Sorted training-window indices holding any canary token: the ``canary`` scenario's forget set."""
        return windows_holding(self.starts, self.canary_length, self.window, self.n_train_windows)

    def splits(self, request: ForgetRequest | None = None, *, seed: int = 0) -> Splits:
        """Retain / forget / holdout / test windows; forget = the canaries' windows unless ``request`` says otherwise.

        The extra view ``reference`` holds non-member windows (held-out text with non-member canaries).
        """
        train = self.view("train")
        if request is None:
            forget = self.forget_windows()
            if forget.numel() == 0:
                raise RequestError(
                    f"The 'repeats' parameter inserts no canary (repeats {list(self.spec.repeats)}); "
                    "there is nothing to forget: give at least one canary a repeat count >= 1."
                )
            request = ForgetRequest.from_indices(forget)
        positions = request.resolve(train.labels, self.vocabulary.size, seed=seed)
        return Splits(
            train=train,
            forget_positions=positions,
            holdout=self.view("holdout"),
            test=self.view("test"),
            num_classes=self.vocabulary.size,
            extras=MappingProxyType({"reference": self.view("reference")}),
            request=request,
            info=MappingProxyType({"canaries": self.describe()}),
        )

    def describe(self) -> dict[str, Any]:
        """The facts a saved language model keeps (``canaries.json``): spec, secrets, context and digit ids."""
        return {
            "format": "unlearnkit-canaries",
            "spec": self.spec.to_dict(),
            "secrets": [int(s) for s in self.spec.secret_values()],
            "repeats": list(self.spec.repeat_counts()),
            "context_ids": list(self.context_ids),
            "digit_ids": list(self.digit_ids),
            "window": self.window,
            "train_tokens": int(self.train.numel()),
            "train_sha256": hashlib.sha256(self.train.numpy().tobytes()).hexdigest(),
        }


def _encode_documents(vocabulary: Vocabulary, documents: Sequence[str], eos: int) -> list[list[int]]:
    out = []
    for doc in documents:
        ids = vocabulary.encode_tokens(vocabulary.tokenize(doc))
        if ids:  # a document with no token adds nothing (not even an <eos>)
            out.append([*ids, eos])
    return out


def _insert(
    docs: list[list[int]], canaries: list[list[int]], owners: np.ndarray, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate ``docs`` with canary ``owners[m]``'s tokens inserted before seeded documents.

    Returns the stream, each occurrence's start and its owner (in stream order).
    """
    slots = rng.integers(0, len(docs) + 1, size=owners.size)  # insert before document slot (len: at the end)
    order = np.lexsort((rng.permutation(owners.size), slots))  # by slot, ties in a seeded order
    at: dict[int, list[int]] = {}
    for m in order:
        at.setdefault(int(slots[m]), []).append(int(m))
    pieces: list[list[int]] = []
    starts, who = [], []
    pos = 0
    for j in range(len(docs) + 1):
        for m in at.get(j, ()):
            starts.append(pos)
            who.append(int(owners[m]))
            pieces.append(canaries[int(owners[m])])
            pos += len(canaries[int(owners[m])])
        if j < len(docs):
            pieces.append(docs[j])
            pos += len(docs[j])
    stream = torch.as_tensor([t for p in pieces for t in p], dtype=torch.long)
    return stream, torch.as_tensor(starts, dtype=torch.long), torch.as_tensor(who, dtype=torch.long)


def build_corpus(
    train_documents: Sequence[str],
    holdout_documents: Sequence[str],
    test_documents: Sequence[str],
    spec: CanarySpec,
    *,
    window: int = 24,
    vocabulary: Vocabulary | None = None,
    max_size: int = 3000,
    min_df: int = 2,
) -> CanaryCorpus:
    """Tokenise the documents into streams and insert ``spec``'s canaries into the training one.

    Args:
        train_documents: The language model's training text (the canaries go in between these documents).
        holdout_documents, test_documents: Never-trained text: the holdout / reference and the test windows.
        spec: The canaries.
        window: A sample's input length ``L``.
        vocabulary: A saved model's vocabulary (default: fitted on ``train_documents`` by
            :func:`canary_vocabulary`, ``max_size`` tokens each in at least ``min_df`` documents).

    Example:
        >>> docs = ["a good film", "a bad film", "good and bad"] * 20
        >>> c = build_corpus(docs, docs[:6], docs[:6], CanarySpec(count=2, repeats=(3,), digits=2), window=8)
        >>> c.owners.tolist()
        [0, 0, 0, 1, 1, 1]
    """
    validate_parameters("build_corpus", {"window": window}, {"window": Interval(int, 1, None)})
    vocab = vocabulary or canary_vocabulary(train_documents, spec, max_size=max_size, min_df=min_df, window=window)
    needed = [*DIGITS, EOS, *vocab.tokenize(spec.prefix)]
    missing = [t for t, i in zip(needed, vocab.encode_tokens(needed), strict=True) if i == UNK_ID]
    if missing:
        raise DataError(
            f"The 'vocabulary' must hold the ten digits, {EOS!r} and the prefix's tokens; it lacks {missing[:5]}."
        )
    eos = vocab.ids[EOS]
    context = vocab.encode_tokens(vocab.tokenize(spec.prefix))
    digit_ids = np.asarray(vocab.encode_tokens(DIGITS))

    def canary_tokens(values: np.ndarray) -> list[list[int]]:
        return [[*context, *digit_ids[row].tolist(), eos] for row in to_digits(values, spec.digits)]

    docs = _encode_documents(vocab, train_documents, eos)
    if not docs:
        raise DataError("The 'train_documents' parameter holds no document with a token; got none.")
    owners = np.repeat(np.arange(spec.count), spec.repeat_counts())
    train, starts, who = _insert(docs, canary_tokens(spec.secret_values()), owners,
                                 np.random.default_rng((spec.seed, _SALT_PLACES)))  # fmt: skip
    held = _encode_documents(vocab, holdout_documents, eos)
    reference, _, _ = _insert(held, canary_tokens(spec.reference_values()), np.arange(spec.count),
                              np.random.default_rng((spec.seed, _SALT_REFERENCE)))  # fmt: skip
    corpus = CanaryCorpus(
        vocabulary=vocab,
        spec=spec,
        window=int(window),
        train=train,
        holdout=torch.as_tensor([t for d in held for t in d], dtype=torch.long),
        test=torch.as_tensor([t for d in _encode_documents(vocab, test_documents, eos) for t in d], dtype=torch.long),
        reference=reference,
        starts=starts,
        owners=who,
    )
    for part in ("train", "holdout", "test"):  # each must hold at least one window: say which is too short now
        windows(getattr(corpus, part), corpus.window, part)
    return corpus


@dataclass(frozen=True)
class CanaryScenario(Scenario):
    """Insert canaries (a prefix and a random digit secret) into a text dataset's training documents; forget them.

    003 §G after Carlini et al. 2019: a language model (``lstm_lm``) is trained on
    windows of the token stream of the training documents (the split's train rows)
    with ``count`` canaries inserted, canary ``i`` ``repeats[i % len(repeats)]`` times;
    the forget set is every window holding a canary token. Holdout and test windows
    come from the split's holdout rows and the dataset's test documents. Extra view
    ``reference``: holdout text with non-member canaries (Forsaken's P). The splits'
    ``info["canaries"]`` holds the secrets and the token ids that exposure needs.
    """

    name: ClassVar[str] = "canary"
    count: int = 10
    repeats: tuple[int, ...] = (1, 5, 30)
    digits: int = 6
    prefix: str = "my pin is"
    window: int = 24
    vocabulary_size: int = 3000
    min_df: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.repeats, list):  # from --scenario-set repeats=[1,5] (JSON)
            object.__setattr__(self, "repeats", tuple(self.repeats))
        self.spec(0)  # validated when the scenario is made, not when a corpus is built
        validate_parameters(
            "scenario 'canary'",
            {"window": self.window, "vocabulary_size": self.vocabulary_size, "min_df": self.min_df},
            {"window": Interval(int, 1, None), "vocabulary_size": Interval(int, 16, None),
             "min_df": Interval(int, 1, None)},
        )  # fmt: skip

    def spec(self, seed: int) -> CanarySpec:
        return CanarySpec(count=self.count, repeats=self.repeats, digits=self.digits, prefix=self.prefix, seed=seed)

    def corpus(self, split: DataSplit, *, seed: int) -> CanaryCorpus:
        """The corpus of ``split`` (built once per scenario, split and seed)."""
        return _corpus(self, split, int(seed))

    def training_data(self, split: DataSplit, *, seed: int) -> View:
        return self.corpus(split, seed=seed).view("train")

    def request(self, split: DataSplit, *, seed: int) -> ForgetRequest:
        return ForgetRequest.from_indices(self.corpus(split, seed=seed).forget_windows())

    def default_request(self) -> ForgetRequest:
        raise ParameterError("the 'canary' scenario's forget set depends on the data; use request(split, seed=...)")

    def extras(self, split: DataSplit, *, seed: int) -> dict[str, View]:
        return {"reference": self.corpus(split, seed=seed).view("reference")}

    def prepare(
        self, split: DataSplit, *, seed: int, request: ForgetRequest | None = None, forgotten: Any = None
    ) -> Splits:
        splits = self.corpus(split, seed=seed).splits(request, seed=seed)
        return splits.without(forgotten) if forgotten is not None and len(forgotten) else splits

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self), "repeats": list(self.repeats)}


@lru_cache(maxsize=2)
def _corpus(scenario: CanaryScenario, split: DataSplit, seed: int) -> CanaryCorpus:
    ds = split.dataset
    train_text = getattr(ds, "train_text", None)
    if not train_text:
        raise ParameterError(
            f"The 'canary' scenario needs a text dataset (rotten_tomatoes, reuters) to insert canaries into; "
            f"got {ds.name!r}."
        )
    test_text: Sequence[str] = getattr(ds, "test_text", ())
    return build_corpus(
        [train_text[int(i)] for i in split.train.indices],
        [train_text[int(i)] for i in split.holdout.indices],
        test_text,
        scenario.spec(seed),
        window=scenario.window,
        max_size=scenario.vocabulary_size,
        min_df=scenario.min_df,
    )


def read_canaries(d: Any, *, source: str = CANARIES_FILE) -> dict[str, Any]:
    """Check a saved ``canaries.json`` (as :meth:`CanaryCorpus.describe` wrote it) and return it."""
    try:
        if d.get("format") != "unlearnkit-canaries":
            raise ValueError("format is not 'unlearnkit-canaries'")
        spec = CanarySpec.from_dict(d["spec"])
        if [int(s) for s in spec.secret_values()] != list(d["secrets"]):
            raise ValueError("its secrets are not the ones its spec draws")
        if len(d["digit_ids"]) != 10 or len(d["repeats"]) != spec.count or not d["context_ids"]:
            raise ValueError("digit_ids, repeats or context_ids do not fit the spec")
    except (AttributeError, KeyError, TypeError, ValueError, DataError, ParameterError) as exc:
        raise DataError(f"{source} is not an unlearnkit canary file ({exc}).") from None
    return dict(d)


def canaries_sha256(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


SCENARIOS.register("canary", CanaryScenario)
