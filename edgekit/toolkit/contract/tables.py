"""Open vocabularies: a set of named values defined by a table of specs, extendable by registering a spec.

``Format`` and ``QuantMode`` are the two axes every stage speaks about. Each is one table
(``formats.FORMAT_SPECS``, ``options.QUANT_MODE_SPECS``) from which everything else is derived: CLI
choices and help, suffixes and file tags, planning, tolerance profiles, bundles, test matrices. A
``StrEnum`` would freeze the axis at import time; a value here behaves like one — it *is* its string
(``QuantMode.INT8 == "int8"``, JSON and f-strings see the text), has ``.value``, iterates in table
order, compares by identity (``mode is QuantMode.NONE``), pickles to the same object — but a test or
a plug-in can add a row with ``register(spec)``: one table row, one converter module and its registry line
are then all a new precision or output format needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Protocol, TypeVar


class Spec(Protocol):
    @property
    def name(self) -> str: ...


V = TypeVar("V", bound="OpenValue")


class _Vocabulary(type):
    """The metaclass: ``Format.ONNX``, ``Format("onnx")``, ``for f in Format``, ``"onnx" in Format``."""

    _members: dict[str, OpenValue]
    _specs: dict[str, Any]

    def __iter__(cls) -> Iterator[Any]:
        return iter(list(cls._members.values()))

    def __len__(cls) -> int:
        return len(cls._members)

    def __contains__(cls, value: object) -> bool:
        return isinstance(value, str) and str(value) in cls._members


class OpenValue(str, metaclass=_Vocabulary):
    """One value of an open vocabulary; subclasses hold their table (see the module doc)."""

    _members: ClassVar[dict[str, OpenValue]]
    _specs: ClassVar[dict[str, Any]]
    kind: ClassVar[str] = "value"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._members, cls._specs = {}, {}

    def __new__(cls: type[V], value: str) -> V:
        member = cls._members.get(str(value))
        if member is None:
            known = ", ".join(cls._members)
            raise ValueError(f"{value!r} is not a {cls.kind} (known: {known})")
        return member  # type: ignore[return-value]

    @classmethod
    def register(cls: type[V], spec: Any) -> V:
        """Add a row to the table: the value ``spec.name``, reachable as ``cls.NAME`` (upper case, ``-`` → ``_``)."""
        name = spec.name
        if name in cls._members:
            raise ValueError(f"{cls.kind} {name!r} is registered twice")
        member = str.__new__(cls, name)
        cls._members[name] = member
        cls._specs[name] = spec
        setattr(cls, name.upper().replace("-", "_"), member)
        return member

    @classmethod
    def unregister(cls, name: str) -> None:
        """Remove a row added by ``register`` (tests and plug-ins that clean up after themselves)."""
        cls._members.pop(name, None)
        cls._specs.pop(name, None)
        attribute = name.upper().replace("-", "_")
        if isinstance(cls.__dict__.get(attribute), cls):
            delattr(cls, attribute)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def spec(self) -> Any:
        """This value's row in the table."""
        return type(self)._specs[self.value]

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return type(self), (self.value,)

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return str.__ne__(self, other)

    def __copy__(self) -> OpenValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenValue:
        return self
