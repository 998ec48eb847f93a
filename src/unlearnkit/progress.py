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


class Counter:
    """A progress bar counted in units of work (batches), shown when enabled; a no-op otherwise.

    A full-MNIST epoch is hundreds of batches: counting epochs would sit at 0/1
    for a minute, counting batches moves every step.
    """

    def __init__(self, total: int, *, enabled: bool, **kwargs: Any) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, leave=False, dynamic_ncols=True, **kwargs)

    def update(self, n: int = 1, **postfix: Any) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
