"""Self-contained HTML audit report (inline CSS and script, no external assets)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

    from .audit_model import AuditReport


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("lockd.report", "templates"),
        autoescape=True,  # every recorded value (paths, messages, URLs) is untrusted text
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_html(report: AuditReport) -> str:
    """The audit report as one HTML page for auditors (screen and print)."""
    from .audit_model import AUDIT_FORMAT

    template = _environment().get_template("audit.html.j2")
    return template.render(report=report, audit_format=AUDIT_FORMAT)


__all__ = ["render_html"]
