"""The drift use case (see :mod:`lockd.app.drift.run`), one module per check.

``run`` walks the lockset's targets; ``environment`` compares a live
environment or a rebuild, ``artifacts`` checks that locked files are still
served, ``creep`` resolves the inputs again, ``images`` re-resolves base
image tags; ``indexes`` puts the configured credentials on recorded URLs.
"""

from .environment import live_findings
from .options import DriftOptions, DriftStep, ProgressHook
from .run import default_project, exit_code, run_drift

__all__ = [
    "DriftOptions",
    "DriftStep",
    "ProgressHook",
    "default_project",
    "exit_code",
    "live_findings",
    "run_drift",
]
