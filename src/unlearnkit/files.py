"""Files written safely: atomic writes, SHA-256 of a file, strict JSON.

Every write goes to a temporary file beside the target, is flushed to disk and
renamed into place, so a crash leaves either the old file or the new one, never
a partial one. A leaf module: it imports nothing of the package and no torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearnkit.errors import OutputExistsError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clean_json(obj: Any) -> Any:
    """Make ``obj`` strict-JSON: NaN/inf become None, tuples lists, tensors lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # tensors and numpy arrays, without importing them
        return clean_json(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(clean_json(obj), indent=2, allow_nan=False) + "\n"


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STALE_AFTER_SECONDS = 24 * 3600  # a temporary of ours older than this is removed even if its writer looks alive


def temporary_prefix(name: str) -> str:
    """Prefix of our temporary files / folders beside ``name``: it names the writer (host and pid)."""
    return f".{name}.{socket.gethostname()}-{os.getpid()}."


def _writer_alive(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return True  # another machine's writer (a shared disk): only the age limit applies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def sweep_temporaries(folder: str | Path, name: str, *, now: float | None = None) -> list[Path]:
    """Remove the temporaries beside ``name`` in ``folder`` whose writer is gone (killed) or that are stale.

    Only entries named as :func:`temporary_prefix` names them are touched; a
    live writer's temporary (another process saving the same model now) stays.
    Returns what was removed.
    """
    import shutil

    folder = Path(folder)
    removed: list[Path] = []
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?P<host>[^/]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time() if now is None else now
    for entry in entries:
        m = pattern.match(entry.name)
        if not m:
            continue
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        if _writer_alive(m["host"], int(m["pid"])) and age < STALE_AFTER_SECONDS:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, dumps(obj))


def check_writable_dir(folder: str | Path, *, param: str, what: str) -> None:
    """Refuse, before any work is done, a folder that cannot take a new file.

    Creates and removes an empty temporary file in ``folder``: this is the only
    test that holds as root too (a read-only mount, a full or vanished disk),
    where permission bits say nothing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputExistsError(f"The '{param}' parameter names {what} in {str(folder)!r}, which is not a folder.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".unlearnkit-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputExistsError(
            f"The '{param}' parameter names {what} in {str(folder)!r}, which cannot be written ({exc.strerror})."
        ) from None
