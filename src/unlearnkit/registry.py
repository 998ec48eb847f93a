"""Name -> object registries with helpful errors for unknown names.

Methods, datasets, models, metrics and scenarios are all looked up by name
through a :class:`Registry`; an unknown name lists the valid ones and the
closest match, so a typo on the command line explains itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from unlearnkit.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping from snake_case names to registered objects.

    Args:
        kind: What the registry holds ("method", "dataset", ...); used in errors.

    Example:
        >>> reg: Registry[int] = Registry("number")
        >>> _ = reg.register("one", 1)
        >>> reg.get("one")
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name``; a name can be registered only once."""
        if not name or name != name.lower() or " " in name:
            raise ValueError(f"{self.kind} names must be snake_case; got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        valid = ", ".join(self._items)
        close = difflib.get_close_matches(str(name), list(self._items), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}: valid {self.kind}s are {valid}{hint}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
