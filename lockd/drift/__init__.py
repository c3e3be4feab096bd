"""Drift: comparing the record with reality (pure).

Each function takes recorded values (a lock, a baseline snapshot, what an
index offered) and observed values (a snapshot, a fresh resolution, today's
index pages, an image lookup) and returns findings. Nothing here does I/O.

One module per finding family: ``environment`` (installed dists against the
lock), ``system`` (libraries, glibc, driver, Debian packages), ``creep``
(re-resolution, what an index offers), ``artifacts`` (locked files still
served), ``images`` (base image tags, an image's base layers); ``report``
holds the findings and the report they make; ``standing`` judges a lockset by
the newest report of each target and origin.
"""

from .artifacts import check_artifacts
from .creep import compare_offered, compare_resolution
from .environment import TOOLING, compare_snapshot
from .images import compare_base_image, compare_image
from .report import (
    DRIFT_FORMAT,
    KINDS,
    NO_REPORT,
    SEVERITIES,
    CheckError,
    CheckTiming,
    DriftReport,
    Finding,
    report_status,
    statuses_of,
    target_statuses,
)
from .standing import Standing, origin_of
from .system import MIN_DRIVER_LINUX, driver_findings

__all__ = [
    "DRIFT_FORMAT",
    "KINDS",
    "MIN_DRIVER_LINUX",
    "NO_REPORT",
    "SEVERITIES",
    "TOOLING",
    "CheckError",
    "CheckTiming",
    "DriftReport",
    "Finding",
    "Standing",
    "check_artifacts",
    "compare_base_image",
    "compare_image",
    "compare_offered",
    "compare_resolution",
    "compare_snapshot",
    "driver_findings",
    "origin_of",
    "report_status",
    "statuses_of",
    "target_statuses",
]
