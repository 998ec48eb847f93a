"""Environment facts recorded with every run, and device / thread settings."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import numpy as np
import torch

from unlearnkit.errors import ParameterError


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (error when absent) or ``"auto"`` (cuda when present)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ParameterError(f"The '--device' parameter must be one of 'cpu', 'cuda', 'auto'; got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(
            f"The '--device' parameter asks for {device!r} but no CUDA device is present; use --device cpu."
        )
    return torch.device(device)


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op thread count (None keeps torch's default)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ParameterError(f"The '--threads' parameter must be an int >= 1; got {threads!r}.")
    torch.set_num_threads(threads)


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    from unlearnkit._version import __version__

    info: dict[str, Any] = {
        "unlearnkit": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        # the kernels torch dispatches to (e.g. AVX2, AVX512): float sums of the same seed differ between
        # capabilities and training amplifies that, so numbers reproduce exactly only on machines that share it
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
