"""Saving and loading models and records safely.

* Weights are stored with safetensors (no pickle), next to a JSON sidecar
  ``model.json`` with the architecture, dataset, classes, training recipe,
  seed and the SHA-256 of the weights file.
* Every write is atomic: files are written into a temporary folder or file
  beside the target and renamed into place, so a crash leaves no partial output.
* Nothing overwrites an existing model.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnkit.core import sisa, smu  # noqa: F401  (importing them registers the preparations)
from unlearnkit.errors import CheckpointError, OutputExistsError
from unlearnkit.files import (
    check_writable_dir,
    dumps,
    file_sha256,
    sweep_temporaries,
    temporary_prefix,
    umask,
    write_bytes_atomic,
)
from unlearnkit.files import clean_json as clean_json  # the `as` names: re-exported for one release
from unlearnkit.files import write_json_atomic as write_json_atomic
from unlearnkit.files import write_text_atomic as write_text_atomic

WEIGHTS = "model.safetensors"
SIDECAR = "model.json"
FORMAT = "unlearnkit-model"
FORMAT_VERSION = 2  # 2: the sidecar lists every deletion (`deletions`) and a digest of the training rows
READABLE_VERSIONS = (1, 2)


def save_tensors_atomic(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write named tensors as one safetensors file, atomically (CPU, contiguous copies)."""
    from safetensors.torch import save

    write_bytes_atomic(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def check_output_dir(out: str | Path, *, param: str = "--out") -> Path:
    """Refuse an output folder that already holds a model or other files."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"The '{param}' folder must not be an existing file; got {str(out)!r}.")
        if (out / WEIGHTS).exists() or (out / SIDECAR).exists():
            raise OutputExistsError(
                f"The '{param}' folder {str(out)!r} already holds a model; "
                "choose a new folder (models are never overwritten)."
            )
        if any(out.iterdir()):
            raise OutputExistsError(f"The '{param}' folder {str(out)!r} is not empty; choose a new folder.")
        st = out.stat()
        # An empty folder is replaced by the new one, losing its owner and mode: only take our own, writable one.
        # (Mode bits, not access(): root may write anywhere, and must still not replace a read-only folder.)
        if st.st_uid != os.geteuid() or not st.st_mode & stat.S_IWUSR:
            raise OutputExistsError(
                f"The '{param}' folder {str(out)!r} exists, empty but read-only or another user's; "
                "choose a new folder (it would be replaced)."
            )
    parent = next(p for p in (out.absolute().parent, *out.absolute().parents) if p.exists())
    check_writable_dir(parent, param=param, what="the new folder")
    return out


def _write_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Serialise to bytes, then write with Python: a full disk or a permission is an OSError, said in one line."""
    from safetensors.torch import save

    with open(path, "wb") as f:
        f.write(save(dict(tensors)))
        f.flush()
        os.fsync(f.fileno())


def save_model(
    model: nn.Module,
    out: str | Path,
    metadata: Mapping[str, Any],
    *,
    extra_json: Mapping[str, Any] | None = None,
    vocabulary: Any = None,
) -> Path:
    """Save ``model``'s weights and sidecar (plus extra JSON files) atomically into ``out``.

    The folder is assembled under a temporary name beside ``out`` and renamed
    into place as a whole; ``out`` must not exist or be empty. A text model's
    ``vocabulary`` (:class:`~unlearnkit.data.text.Vocabulary`) goes to ``vocabulary.json``,
    its hash into the sidecar.
    """
    out = check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(out.parent, out.name)  # folders left by a writer that was killed (SIGKILL, power loss)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(out.name), suffix=".tmp", dir=out.parent))
    try:
        from unlearnkit.core.preparation import PREPARED_WEIGHTS, PreparedModel

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        _write_tensors(tmp / WEIGHTS, state)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **{k: v for k, v in metadata.items() if k != "prepared"},
            "weights_sha256": file_sha256(tmp / WEIGHTS),
        }
        from unlearnkit.core.gradients import FISHER_FILE, attached_fisher

        fisher = attached_fisher(model)
        meta.pop("fisher", None)
        if fisher is not None:  # 000's EWC Fisher, a training-time artifact
            _write_tensors(tmp / FISHER_FILE, {k: v.contiguous() for k, v in fisher[0].items()})
            meta["fisher"] = {"source": fisher[1], "sha256": file_sha256(tmp / FISHER_FILE)}
        if isinstance(model, PreparedModel):  # SISA / SMU side data: tensors only, hashed like the weights
            side = {k: v.detach().cpu().contiguous() for k, v in model.prepared_tensors().items()}
            _write_tensors(tmp / PREPARED_WEIGHTS, side)
            meta["prepared"] = {
                "name": model.preparation,
                **model.prepared_meta(),
                "sha256": file_sha256(tmp / PREPARED_WEIGHTS),
            }
        meta.pop("vocabulary", None)
        if vocabulary is not None:
            from unlearnkit.data.text import VOCABULARY_FILE

            (tmp / VOCABULARY_FILE).write_text(dumps(vocabulary.to_dict()))
            meta["vocabulary"] = {
                "file": VOCABULARY_FILE,
                "sha256": file_sha256(tmp / VOCABULARY_FILE),
                "size": vocabulary.size,
                "retired": len(vocabulary.retired()),
            }
        (tmp / SIDECAR).write_text(dumps(meta))
        for name, obj in (extra_json or {}).items():
            (tmp / name).write_text(dumps(obj))
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp creates 0700
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """Read and check a model folder's sidecar (no weights are loaded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"The '--model' folder {str(folder)!r} does not exist.")
    side = folder / SIDECAR
    if not side.is_file() or not (folder / WEIGHTS).is_file():
        raise CheckpointError(
            f"The '--model' folder {str(folder)!r} lacks {SIDECAR} or {WEIGHTS}; it is not a saved model."
        )
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{side} is not valid JSON ({exc}); the model folder is damaged.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{side} is not an unlearnkit model sidecar (format != {FORMAT!r}).")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{side} has format_version {version!r}; this unlearnkit reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (a newer unlearnkit wrote it, or the sidecar is damaged)."
        )
    return meta


def load_state(folder: str | Path, model: nn.Module, *, verify: bool = True) -> nn.Module:
    """Load the weights in ``folder`` into ``model`` (a user's own module works too).

    Raises:
        CheckpointError: the file is missing, truncated (hash mismatch or
            unreadable) or its tensors do not fit ``model``'s architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"The '--model' folder {str(folder)!r} has no {WEIGHTS}.")
    meta = read_metadata(folder) if (folder / SIDECAR).exists() else {}
    if verify and "weights_sha256" in meta and file_sha256(weights) != meta["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the hash in its sidecar: the file is truncated or modified.")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} cannot be read ({exc}); the file is damaged.") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or bad:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape of {bad[0]} is {tuple(state[bad[0]].shape)}, model has {tuple(expected[bad[0]].shape)}"
        )
        raise CheckpointError(f"{weights} does not fit the {type(model).__name__} architecture: {detail}.")
    model.load_state_dict(state)
    return model


def load_model(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a registered model from its sidecar and load its weights."""
    from unlearnkit.core.models import build_model

    meta = read_metadata(folder)
    try:
        arch = meta["architecture"]

        def build() -> nn.Module:
            return build_model(arch["name"], arch["input_shape"], arch["num_classes"], seed=0, **arch.get("kwargs", {}))

        model = build()
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{Path(folder) / SIDECAR} lacks the architecture entry ({exc}).") from None
    if "prepared" in meta:
        model = _restore_prepared(Path(folder), meta["prepared"], build)
    load_state(folder, model)
    if "fisher" in meta:
        _attach_saved_fisher(Path(folder), meta["fisher"], model)
    model.eval()
    return model, meta


def load_vocabulary(folder: str | Path, meta: Mapping[str, Any] | None = None, model: nn.Module | None = None) -> Any:
    """A text model's saved vocabulary (None for other models), checked against the sidecar's hash and the model.

    Raises:
        CheckpointError: ``vocabulary.json`` is missing, edited, not a vocabulary, or
            not the size of the model's token-indexed weights.
    """
    from unlearnkit.data.text import Vocabulary
    from unlearnkit.errors import DataError

    folder = Path(folder)
    meta = read_metadata(folder) if meta is None else meta
    entry = meta.get("vocabulary")
    if entry is None:
        return None
    path = folder / str(entry.get("file", "vocabulary.json")) if isinstance(entry, dict) else folder / "vocabulary.json"
    if not isinstance(entry, dict) or not path.is_file() or file_sha256(path) != entry.get("sha256"):
        raise CheckpointError(f"{path} is missing or does not match the hash in its sidecar (edited or damaged).")
    try:
        vocab = Vocabulary.from_dict(json.loads(path.read_text()), source=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, DataError) as exc:
        raise CheckpointError(f"{path} cannot be used ({exc}).") from None
    size = getattr(model, "vocab_size", None)
    if isinstance(size, int) and size != vocab.size:
        raise CheckpointError(
            f"{path} holds {vocab.size} tokens but the model's vocabulary has {size}: the vocabulary does not match "
            "the model."
        )
    return vocab


def _attach_saved_fisher(folder: Path, entry: Any, model: nn.Module) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from unlearnkit.core.gradients import FISHER_FILE, attach_fisher
    from unlearnkit.errors import ParameterError

    path = folder / FISHER_FILE
    if not isinstance(entry, dict) or not path.is_file() or file_sha256(path) != entry.get("sha256"):
        raise CheckpointError(f"{path} is missing or does not match the hash in its sidecar.")
    try:
        attach_fisher(model, load_file(str(path)), str(entry.get("source", "unknown")))
    except (SafetensorError, OSError, ValueError, ParameterError) as exc:
        raise CheckpointError(f"{path} cannot be used ({exc}).") from None


def _restore_prepared(folder: Path, prepared: Any, build: Any) -> nn.Module:
    """Rebuild a SISA / SMU model from its sidecar entry and ``prepared.safetensors``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from unlearnkit.core.preparation import PREPARATIONS, PREPARED_WEIGHTS

    path = folder / PREPARED_WEIGHTS
    if not isinstance(prepared, dict) or "name" not in prepared:
        raise CheckpointError(f"{folder / SIDECAR}: the 'prepared' entry is damaged (no name).")
    if not path.is_file():
        raise CheckpointError(f"{folder} is a {prepared['name']!r} model but lacks {PREPARED_WEIGHTS}.")
    if file_sha256(path) != prepared.get("sha256"):
        raise CheckpointError(f"{path} does not match the hash in its sidecar: the file is truncated or modified.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); the file is damaged.") from None
    cls = PREPARATIONS.get(prepared["name"])
    try:
        return cls.restore(build, prepared, tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not fit its sidecar's 'prepared' entry ({exc}).") from None
