"""Coercion of the CLI's string, path and choice parameters without pydantic.

typer 0.29 coerces every parameter through a pydantic ``TypeAdapter`` built on
first use: importing pydantic and building the adapters of ``lockd compile``'s
options costs about 0.1 s per run, more than ``lockd compile --check`` itself.
For the plain types lockd's commands take (``str``, ``Path``, enums, lists of
them) the adapters only call typer's own coercion functions, which this module
calls directly, with the same results and messages; any other annotation (or a
custom parser) and a flag given a non-boolean value keep typer's adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path
from typer.core import _TyperParameter

_Leaf = Callable[[Any, Any, Any], Any]  # (value, param, ctx) -> coerced value


@dataclass(frozen=True)
class _Plain(RuntimeParam):
    leaf: _Leaf
    many: bool

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            if self.many:
                items = value if isinstance(value, list | tuple) else [value]
                return [self.leaf(item, param, ctx) for item in items]
            return self.leaf(value, param, ctx)
        except ValueError as err:  # typer's adapter prefixes "Value error, "; not here
            raise BadParameter(str(err), ctx=ctx, param=param) from err


def install(params: list[Any]) -> list[Any]:
    """Give each typer parameter whose type allows it the plain coercion; returns ``params``."""
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            plain = _plain(param.type_descriptor)
            if plain is not None:
                param._runtime_param = plain
    return params


def _plain(descriptor: TypeDescriptor) -> _Plain | None:
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None:
        return None
    annotation: Any = descriptor.annotation
    many = False
    if get_origin(annotation) is list:
        (annotation,) = get_args(annotation)
        many = True
    leaf = _leaf(annotation, info)
    if leaf is None:
        return None
    return _Plain(info, descriptor.annotation, leaf, many)


def _leaf(annotation: Any, info: Any) -> _Leaf | None:
    if annotation is str:
        return lambda value, _param, _ctx: _text(value)
    if annotation is bool:  # a flag's value is a bool; anything else gets typer's adapter
        return lambda value, param, ctx: (
            value if isinstance(value, bool) else _adapted(bool, info, value, param, ctx)
        )
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        choices = list(annotation)
        return lambda value, _param, ctx: coerce_cli_choice(
            value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
        )
    if annotation is Path and info.path_type is None:
        return lambda value, param, ctx: coerce_cli_path(
            value if isinstance(value, Path) else _path(_text(value), param),
            info,
            path_type=Path,
            param=param,
            ctx=ctx,
        )
    return None


def _path(text: str, param: Any) -> Path:
    """A path as given; an ``--output FILE`` that names a directory is refused here, while
    its trailing slash is still there to see (``Path`` drops it: ``-o out/`` would have
    written a file named ``out``)."""
    if getattr(param, "name", None) == "output" and (text.endswith("/") or Path(text).is_dir()):
        raise ValueError(f"{text} names a directory: --output takes a file name (FILE, not DIR/).")
    return Path(text)


def _adapted(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    descriptor = TypeDescriptor(annotation, info, None)
    return build_runtime_param(descriptor)._coerce_value(value, param=param, ctx=ctx)


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # click hands over str; bytes only from a caller
        return value.decode("utf-8", "replace")
    return str(value)
