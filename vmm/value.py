"""`Value`: equality, hash and repr from ``__slots__``, for the few value classes compared.

What frozen dataclasses gave them, without importing dataclasses (with inspect, ast, dis,
tokenize) on the VMM's start-up path (see `vmm`).
"""

from __future__ import annotations


class Value:
    """Instances of the same class are equal when every slot is; the repr names each slot."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({fields})"
