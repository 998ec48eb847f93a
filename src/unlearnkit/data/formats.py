"""Readers for standard on-disk dataset formats. Nothing here downloads.

* IDX (MNIST, Fashion-MNIST): optionally gzipped, big-endian header.
* CIFAR-10/100 binary (``.bin``): fixed-size records of label byte(s) + 3072 pixels.
* CIFAR-10/100 python pickles: read through :class:`RestrictedUnpickler`, which
  admits only built-in containers and numpy arrays, so a crafted file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from unlearnkit.errors import DataError

_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a numpy array of its stored shape."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(
            f"{path} is truncated or corrupt: expected {count * dtype.itemsize} data bytes "
            f"for shape {shape}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in IDX format; gzipped if the name ends in ``.gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def read_cifar_bin(path: str | Path, *, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR binary batch: records of ``label_bytes`` labels + 3x32x32 pixels.

    CIFAR-10 has one label byte; CIFAR-100 has two (coarse, fine) and the fine
    label (the last byte) is returned.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    rec = label_bytes + 3072
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"{path} is not a CIFAR binary batch: size {raw.size} is not a multiple of {rec}")
    raw = raw.reshape(-1, rec)
    labels = raw[:, label_bytes - 1].astype(np.int64)
    images = raw[:, label_bytes:].reshape(-1, 3, 32, 32)
    return images, labels


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds built-in containers and numpy arrays.

    Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`~unlearnkit.errors.DataError` instead of being imported.
    """

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays and built-in containers are allowed")


def restricted_load(path: str | Path) -> Any:
    """Load a pickle file with :class:`RestrictedUnpickler` (latin1 for Python-2 pickles)."""
    data = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read pickled batch {path}: {exc}") from None


def read_cifar_python(path: str | Path, *, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR python batch (a pickled dict with ``b'data'`` and the label key)."""
    obj = restricted_load(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR python batch (not a dict)")
    obj = {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}
    if b"data" not in obj or label_key not in obj:
        raise DataError(f"{path} lacks the keys b'data' and {label_key!r}")
    images = np.asarray(obj[b"data"], dtype=np.uint8)
    if images.ndim != 2 or images.shape[1] != 3072:
        raise DataError(f"{path}: b'data' has shape {images.shape}, expected (N, 3072)")
    labels = np.asarray(obj[label_key], dtype=np.int64)
    if labels.shape != (images.shape[0],):
        raise DataError(f"{path}: {labels.shape[0]} labels for {images.shape[0]} images")
    return images.reshape(-1, 3, 32, 32), labels
