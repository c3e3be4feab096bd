"""Console output: errors on stderr, tables with rich on a TTY."""

from __future__ import annotations

import sys

from ..errors import LockdError


def print_error(err: LockdError) -> None:
    """Print one error paragraph to stderr, without a traceback."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]error:[/] {_escape(err.render())}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def is_tty() -> bool:
    return sys.stdout.isatty()
