"""``lockd lint``: rules for Dockerfiles that ship ML models (pure: text + lock -> findings).

``lint_text`` parses a Dockerfile with ``lockd.images`` and runs every check
(``base`` LD1xx, ``installs`` LD2xx, ``final`` LD3xx, ``secrets`` LD4xx) over
it, with the lock's facts when a lockset is known (``lock_facts``). ``RULES``
lists every rule with its stable id, severity and fix. Generic shell and
Dockerfile style checks are hadolint's; these rules are about locks, CUDA and
what ships.
"""

from .engine import lint_text, lock_facts
from .model import FileReport, Finding, LockFacts, Rule, Severity
from .rules import RULES

__all__ = [
    "RULES",
    "FileReport",
    "Finding",
    "LockFacts",
    "Rule",
    "Severity",
    "lint_text",
    "lock_facts",
]
