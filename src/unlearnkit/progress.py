"""Progress bars for long work (tqdm on stderr, silent when disabled)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], *, enabled: bool, **kwargs: Any) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled``; otherwise iterate it plainly."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, leave=False, dynamic_ncols=True, **kwargs)
