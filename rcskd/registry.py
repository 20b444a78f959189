"""One small registry pattern: a name -> factory table with helpful errors.

`MODELS`, `LOSSES` and `SOURCES` are the instances the rest of rcskd uses; modules register
their entries at import time with the `register` decorator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from rcskd.errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A named table of factories (classes or functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that records `obj` under `name`; a name can be registered only once."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> Callable[..., Any]:
        """Return the factory registered as `name`, or fail listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as `name` with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MODELS = Registry("model")
LOSSES = Registry("loss")
SOURCES = Registry("data source")
