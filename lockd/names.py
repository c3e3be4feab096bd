"""The one rule for the names people give things: projects, deployments, targets, tokens (pure).

A name is 1 to ``MAX_NAME`` printable characters (``str.isprintable``: no line
breaks, tabs or other control or separator characters). It is checked wherever
a name enters lockd — ``lockd.toml``, a ``pyproject.toml``'s name, a directory's
name, ``--project``, a ``lockd.json`` or lockset document read back, a request
to the server — so every table, log line, Dockerfile comment and URL that shows
one stays on its line, and a project that compiles can also post.
"""

from __future__ import annotations

from .errors import UsageError, excerpt

__all__ = ["MAX_NAME", "check_name", "is_name"]

MAX_NAME = 200


def is_name(value: str) -> bool:
    """``value`` is a name lockd accepts."""
    return 0 < len(value) <= MAX_NAME and value.isprintable()


def check_name(
    label: str,
    value: str,
    *,
    hint: str,
    where: str = "",
    error: type[UsageError] = UsageError,
) -> str:
    """``value``, or ``error`` naming what is wrong with it and, in ``hint``, the fix.

    ``where`` says where the name came from ("lockd.toml", "--project"); the
    refused value is shown escaped and bounded, never as it is. ``error`` is a
    ``UsageError`` subclass (``ConfigError``, ``FormatError``): exit 2 either way.
    """
    if is_name(value):
        return value
    source = f" in {where}" if where else ""
    if not value:
        problem = "is empty"
    elif len(value) > MAX_NAME:
        problem = f"has {len(value)} characters"
    else:
        problem = f"holds a line break or control character ({excerpt(value, 60)})"
    raise error(
        f"The {label} name{source} {problem}: a {label} name must be 1 to {MAX_NAME} "
        "printable characters.",
        hint=hint,
    )
