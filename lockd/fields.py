"""Typed reads of JSON documents that lockd did not necessarily write (pure).

``lockd.json`` comes back from disk, where a pull request may have changed it:
every field is checked for its type and size as it is read, and a wrong one
raises ``FormatError`` naming its path (``locks[0].files``), instead of a
``KeyError`` or ``TypeError`` somewhere later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

from .errors import FormatError

MAX_TEXT = 1 << 16  # characters in one string: a failure message, a URL, a requirement
MAX_INT = 2**63 - 1  # what a database integer column holds

V = TypeVar("V")


class Fields:
    """One JSON object, read field by field. ``where`` is its path in the document."""

    __slots__ = ("_data", "_where")

    def __init__(self, data: object, where: str | tuple[str, int]) -> None:
        if not isinstance(data, dict):
            raise _wrong(_spelled(where), "an object", data)
        self._data: dict[str, Any] = data
        # (list path, index) until a message needs it: a list of 100,000 objects is read
        # without building 100,000 paths.
        self._where = where

    @property
    def where(self) -> str:
        return _spelled(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def text(self, key: str) -> str:
        value = self._data.get(key)
        if type(value) is str and len(value) <= MAX_TEXT:  # the common case: no path built
            return value
        return _text(self._required(key), self._path(key))

    def text_fields(self, *keys: str) -> tuple[str, ...]:
        """Several required strings at once (records read by the 100,000: artifacts)."""
        try:
            found = itemgetter(*keys)(self._data)  # a tuple for two keys or more
            values: tuple[Any, ...] = found if len(keys) > 1 else (found,)
        except KeyError:
            values = ()
        if values and _short_texts_fast(values):
            return values
        return tuple(self.text(key) for key in keys)

    def optional_text_fields(self, *keys: str) -> tuple[str | None, ...]:
        """Several optional strings at once (``None`` for each one absent or null)."""
        values = tuple(map(self._data.get, keys))
        if _short_texts_fast([v for v in values if v is not None]):
            return values
        return tuple(self.optional_text(key) for key in keys)

    def optional_text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is None or (type(value) is str and len(value) <= MAX_TEXT):
            return value
        return _text(value, self._path(key))

    def check_format(self, expected: str, what: str) -> None:
        """The ``format`` field is ``expected`` (``lockd.lockset/1``), else ``FormatError``.

        A missing or foreign ``format`` means the document is not ``what`` at all
        (restore or recompile it); another version of ``expected``'s family is one
        this lockd does not know (upgrade lockd).
        """
        fmt = self._data.get("format")
        if fmt == expected:
            return
        family = expected.rsplit("/", 1)[0] + "/"
        where = f" in {self.where}" if self.where else ""
        fix = "Restore it from git, or recompile with `lockd compile`."
        if fmt is None:
            raise FormatError(
                f"The document{where} has no 'format' field: it is not a {what} lockd wrote "
                f"(those say {expected!r}).",
                hint=fix,
            )
        if not isinstance(fmt, str) or not fmt.startswith(family):
            raise FormatError(
                f"The document{where} has format {str(fmt)[:40]!r}: it is not a {what} "
                f"(this lockd reads {expected!r}).",
                hint=fix,
            )
        raise FormatError(
            f"Unknown {what} format {fmt[:40]!r}{where} (this lockd reads {expected!r}).",
            hint="Upgrade lockd, or recompile the lockset with this version.",
        )

    def integer(self, key: str) -> int:
        return _integer(self._required(key), self._path(key))

    def optional_integer(self, key: str) -> int | None:
        value = self._data.get(key)
        if value is None or (type(value) is int and 0 <= value <= MAX_INT):
            return value
        return _integer(value, self._path(key))

    def flag(self, key: str) -> bool:
        value = self._required(key)
        if not isinstance(value, bool):
            raise _wrong(self._path(key), "true or false", value)
        return value

    def optional_bool(self, key: str) -> bool | None:
        value = self._data.get(key)
        if value is not None and not isinstance(value, bool):
            raise _wrong(self._path(key), "true or false", value)
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        """A string that must be one of ``choices`` (the value itself is never echoed)."""
        value = self.text(key)
        if value not in choices:
            raise FormatError(f"{self._path(key)} must be one of {', '.join(choices)}.")
        return value

    def texts(self, key: str, *, required: bool = True) -> tuple[str, ...]:
        items = self._list(key, required)
        if _short_texts(items):
            return tuple(items)
        return tuple(_text(v, f"{self._path(key)}[{i}]") for i, v in enumerate(items))

    def optional_texts(self, key: str) -> tuple[str, ...] | None:
        return None if self._data.get(key) is None else self.texts(key)

    def text_rows(self, key: str, width: int) -> tuple[tuple[str, ...], ...]:
        """A list of lists of ``width`` strings each (``[["libc6", "2.36", "amd64"], …]``)."""
        rows = self._list(key, required=True)
        if (
            set(map(type, rows)) <= {list}
            and set(map(len, rows)) <= {width}
            and _short_texts(list(chain.from_iterable(rows)))
        ):
            return tuple(map(tuple, rows))  # the common case, checked at C speed
        for i, row in enumerate(rows):
            where = f"{self._path(key)}[{i}]"
            if not isinstance(row, list) or len(row) != width:
                raise FormatError(f"{where} must be a list of {width} strings.")
            for j, v in enumerate(row):
                _text(v, f"{where}[{j}]")
        raise AssertionError("unreachable: a row failed the fast check")  # pragma: no cover

    def text_map(self, key: str, *, required: bool = True) -> dict[str, str]:
        return self.mapping(key, _text, required=required)

    def integer_map(self, key: str) -> dict[str, int]:
        return self.mapping(key, _integer)

    def texts_map(self, key: str, *, required: bool = True) -> dict[str, tuple[str, ...]]:
        def texts(value: object, where: str) -> tuple[str, ...]:
            if not isinstance(value, list):
                raise _wrong(where, "a list", value)
            return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value))

        return self.mapping(key, texts, required=required)

    def mapping(
        self, key: str, read: Callable[[object, str], V], *, required: bool = True
    ) -> dict[str, V]:
        """An object of string keys, each value read by ``read(value, its path)``."""
        value = self._required(key) if required else self._data.get(key, {})
        where = self._path(key)
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        return {_text(k, where): read(v, f"{where}[{k[:60]!r}]") for k, v in value.items()}

    def object(self, key: str) -> Fields:
        return Fields(self._required(key), self._path(key))

    def objects(self, key: str, *, required: bool = True) -> list[Fields]:
        items = self._list(key, required)
        where = self._path(key)
        return [Fields(v, (where, i)) for i, v in enumerate(items)]

    def raw_object(self, key: str) -> dict[str, Any]:
        """A free-form object (its own reader checks the inside)."""
        value = self._data.get(key, {})
        if not isinstance(value, dict):
            raise _wrong(self._path(key), "an object", value)
        return value

    def optional_raw_object(self, key: str) -> dict[str, Any] | None:
        """A free-form object or null/absent (its own reader checks the inside)."""
        return None if self._data.get(key) is None else self.raw_object(key)

    def raw_objects(self, key: str) -> tuple[dict[str, Any], ...]:
        """Free-form objects, optional (their own reader checks the inside)."""
        items = self._list(key, required=False)
        for i, value in enumerate(items):
            if not isinstance(value, dict):
                raise _wrong(f"{self._path(key)}[{i}]", "an object", value)
        return tuple(items)

    def _required(self, key: str) -> Any:
        if key not in self._data:
            raise FormatError(f"{self._path(key)} is missing.")
        return self._data[key]

    def _list(self, key: str, required: bool) -> list[Any]:
        value = self._required(key) if required else self._data.get(key, [])
        if not isinstance(value, list):
            raise _wrong(self._path(key), "a list", value)
        return value

    def _path(self, key: str) -> str:
        where = self.where
        return f"{where}.{key}" if where else key


def _spelled(where: str | tuple[str, int]) -> str:
    return where if isinstance(where, str) else f"{where[0]}[{where[1]}]"


def _short_texts_fast(values: Sequence[Any]) -> bool:
    """:func:`_short_texts` for a few values, checked at C speed: ``join`` takes only strings,
    and together they are not longer than one string may be."""
    try:
        return len("".join(values)) <= MAX_TEXT
    except TypeError:
        return False


def _short_texts(values: list[Any]) -> bool:
    """Every value a string of at most ``MAX_TEXT`` characters (no message: a fast check,
    at C speed)."""
    return set(map(type, values)) <= {str} and max(map(len, values), default=0) <= MAX_TEXT


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _wrong(where, "a string", value)
    if len(value) > MAX_TEXT:
        raise FormatError(f"{where} is longer than {MAX_TEXT} characters.")
    return value


def _integer(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(where, "a whole number", value)
    if not 0 <= value <= MAX_INT:
        raise FormatError(f"{where} is out of range ({str(value)[:30]}).")
    return value


def _wrong(where: str, expected: str, value: object) -> FormatError:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    kind = "null" if value is None else kinds.get(type(value), "a number")
    return FormatError(f"{where or 'the document'} must be {expected}, not {kind}.")
