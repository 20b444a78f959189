"""One small registry pattern: a name -> factory table with helpful errors.

`MODELS`, `LOSSES` and `SOURCES` are the instances the rest of rcskd uses; modules register
their entries at import time with the `register` decorator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from rcskd.errors import ConfigError

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A named table of factories (classes or functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._prefixes: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that records `obj` under `name`; a name can be registered only once."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add

    def register_prefix(self, prefix: str) -> Callable[[T], T]:
        """Decorator for a factory of a whole family: `prefix + x` builds `obj(x, ...)`.

        E.g. `torchvision.` + any torchvision model name, resolved only when asked for.
        """

        def add(obj: T) -> T:
            if prefix in self._prefixes:
                raise ValueError(f"{self.kind} prefix {prefix!r} is already registered")
            self._prefixes[prefix] = obj
            return obj

        return add

    def get(self, name: str) -> Callable[..., Any]:
        """Return the factory registered as `name`, or fail listing the known names."""
        if name in self._entries:
            return self._entries[name]
        for prefix, family in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return partial(family, name[len(prefix) :])
        known = ", ".join(sorted(self._entries) + [f"{p}<name>" for p in self._prefixes])
        raise ConfigError(f"unknown {self.kind} {name!r}; known: {known or '(none)'}")

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as `name` with the given arguments."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or (
            isinstance(name, str)
            and any(name.startswith(p) and len(name) > len(p) for p in self._prefixes)
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MODELS = Registry("model")
LOSSES = Registry("loss")
SOURCES = Registry("data source")
