"""Markdown audit report (GitHub-flavoured) from the audit model, via a jinja2 template."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

    from ..lockset import Artifact
    from .audit_model import AuditReport

# Characters Markdown would read as syntax inside a table cell; a pipe ends the cell.
_MD_ESCAPES = str.maketrans(
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
)


def md(value: object) -> str:
    """Plain text for a Markdown table cell or paragraph."""
    return str(value).translate(_MD_ESCAPES)


def code(value: object) -> str:
    """A code span that survives a table cell (pipes escaped, no line breaks)."""
    text = str(value).replace("|", "\\|").replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def short(value: object) -> str:
    """The first 12 characters of a hash (what `lockd history` shows)."""
    return str(value)[:12]


def artifact_rows(artifacts: Iterable[Artifact]) -> str:
    """The rows of one lock's artifact table (the report's hot loop, kept out of jinja:
    five filter calls per row through the template cost three times as much)."""
    return "\n".join(
        f"| {md(a.name)} | {md(a.version)} | {md(a.index)} | {code(a.filename)} "
        f"| {code(a.sha256)} |"
        for a in artifacts
    )


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


def render_markdown(report: AuditReport) -> str:
    """The audit report as GitHub-flavoured Markdown (for pull requests)."""
    return _environment().get_template("audit.md.j2").render(report=report)


__all__ = ["artifact_rows", "code", "md", "render_markdown", "short"]
