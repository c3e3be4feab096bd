"""Markdown audit report (GitHub-flavoured) from the audit model, via a jinja2 template."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from .console import CONTROLS

if TYPE_CHECKING:
    import jinja2

    from ..lockset import Artifact
    from .audit_parts import TemplateParts

# Characters Markdown would read as syntax inside a table cell; a pipe ends the cell.
_MD_ESCAPES = CONTROLS | str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "*": "\\*",
        "_": "\\_",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
        "<": "&lt;",
        ">": "&gt;",
        "\r": "",
        "\n": "<br>",
    }
)  # and other control characters spelled out (\x1b): a report shown in a terminal is not obeyed


def md(value: object) -> str:
    """Plain text for a Markdown table cell or paragraph."""
    return str(value).translate(_MD_ESCAPES)


def code(value: object) -> str:
    """A code span that survives a table cell (pipes escaped, no line breaks)."""
    text = str(value)
    if "|" not in text and "`" not in text and text.isprintable():
        return f"`{text}`"  # the common case (hashes, file names), without copies
    text = text.replace("|", "\\|").replace("\n", " ").translate(CONTROLS)
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def short(value: object) -> str:
    """The first 12 characters of a hash (what `lockd history` shows)."""
    return str(value)[:12]


def artifact_rows(artifacts: Iterable[Artifact]) -> str:
    """The rows of one lock's artifact table (the report's hot loop, kept out of jinja:
    five filter calls per row through the template cost three times as much)."""
    # Names, versions and indexes recur from lockset to lockset: each is escaped once.
    if len(_ESCAPED) > _ESCAPED_MAX:
        _ESCAPED.clear()
    escaped = _ESCAPED.get
    return "\n".join(
        f"| {escaped(a.name) or _escape(a.name)} | {escaped(a.version) or _escape(a.version)} "
        f"| {escaped(a.index) or _escape(a.index)} | {code(a.filename)} | {code(a.sha256)} |"
        for a in artifacts
    )


_ESCAPED: dict[str, str] = {}  # md() of the values artifact_rows met
_ESCAPED_MAX = 100_000


def _escape(value: str) -> str:
    out = _ESCAPED[value] = md(value)
    return out


def chain_word(verified: bool | None) -> str:
    return "verified" if verified else ("not checked" if verified is None else "**broken**")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lockd.report", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, not HTML: the md/code filters escape cells
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    from .audit_model import count

    env.filters.update(md=md, code=code, short=short, count=count)
    env.globals.update(chain_word=chain_word, artifact_rows=artifact_rows)
    return env


def markdown_report() -> TemplateParts:
    """The audit report as GitHub-flavoured Markdown (for pull requests), in parts."""
    from .audit_parts import TemplateParts

    return TemplateParts(_environment().get_template("audit.md.j2"))


__all__ = ["artifact_rows", "code", "markdown_report", "md", "short"]
