"""Which checks of the nightly run a shard takes (pure).

The nightly run (``lockd drift --all``) is a list of checks, one per
(project, target, image): a target's lock (rebuild or artifact check, and
re-resolution), the project's base-image tags (target ``None``), and, where
images are tracked, an image checked against a target's lock. ``--shard I/N``
runs the checks assigned to shard I, so that N workers cover each check once.

Every shard computes the same assignment on its own, from inputs that do not
change while the night's shards run:

* checks with recorded durations (drift reports checked in the week before the
  run's day began, UTC) are spread longest first onto the least-loaded shard;
* the other checks (new projects, targets or images) go to the shard a hash of
  their name picks.

So shards of one night need not start together, only on the same UTC day; a
compile during the night changes which lockset a check reads, never which
shard runs it.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import UsageError

HISTORY = timedelta(days=7)  # how far back durations are read


@dataclass(frozen=True, slots=True)
class Check:
    """One unit of the nightly run."""

    project: str
    target: str | None = None  # None: the project-wide check (the lockset's base-image tags)
    image: str | None = None  # a tracked image checked against the target's lock

    @property
    def name(self) -> str:
        """``project/target[@image]``; ``project/*`` for the project-wide check."""
        return f"{self.project}/{self.target or '*'}" + (f"@{self.image}" if self.image else "")

    def to_dict(self) -> dict[str, str | None]:
        return {"project": self.project, "target": self.target, "image": self.image}

    def sort_key(self) -> tuple[str, str, str]:
        """Checks in order: by project, the project-wide check first, images after targets."""
        return (self.project, self.target or "", self.image or "")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(
                f"Shard {self.index}/{self.count} does not exist: shards are numbered "
                f"1 to {self.count}.",
                hint="Give --shard I/N with 1 <= I <= N.",
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` as the command line writes it (1-based, as GitHub's matrix counts)."""
        index, sep, count = text.partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise UsageError(
                f"--shard {text!r} is not of the form I/N.",
                hint="Write for example --shard 2/4 (the second of four shards).",
            )
        if int(count) < 1:
            raise UsageError(f"--shard {text!r}: the number of shards must be at least 1.")
        return cls(int(index), int(count))

    @classmethod
    def from_job_index(cls, job_index: str, count: int | None) -> Shard:
        """Kubernetes Indexed Jobs number their pods 0..N-1 in ``JOB_COMPLETION_INDEX``."""
        if not job_index.strip().isdigit():
            raise UsageError(f"JOB_COMPLETION_INDEX={job_index!r} is not a number.")
        if count is None:
            raise UsageError(
                f"JOB_COMPLETION_INDEX={job_index} is set (a Kubernetes Indexed Job), but the "
                "number of shards is not.",
                hint="Pass --shards N or set LOCKD_SHARDS to the Job's completions.",
            )
        if count < 1:
            raise UsageError(f"The number of shards must be at least 1, not {count}.")
        if int(job_index) >= count:
            raise UsageError(
                f"JOB_COMPLETION_INDEX={job_index} is past the last of {count} shards (a "
                f"Kubernetes Indexed Job numbers its pods 0 to {count - 1}).",
                hint="Set --shards / LOCKD_SHARDS to the Job's completions.",
            )
        return cls(int(job_index) + 1, count)


def choose_shard(shard: str | None, count: int | None, job_index: str | None) -> Shard | None:
    """``--shard I/N``; else ``JOB_COMPLETION_INDEX`` with ``count`` (--shards, LOCKD_SHARDS)."""
    if shard is not None:
        chosen = Shard.parse(shard)
        if count is not None and count != chosen.count:
            raise UsageError(
                f"--shard {shard} says {chosen.count} shards, --shards or LOCKD_SHARDS says "
                f"{count}.",
                hint="Give the same number of shards to every worker.",
            )
        return chosen
    if job_index is not None:
        return Shard.from_job_index(job_index, count)
    if count is not None:
        raise UsageError(
            f"{count} shards, but which one is this?",
            hint="Give --shard I/N, or run it as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX).",
        )
    return None


def history_window(now: datetime) -> tuple[datetime, datetime]:
    """The drift reports whose durations plan ``now``'s run: the week before today (UTC)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - HISTORY, day


def durations(samples: Iterable[tuple[Check, float]]) -> dict[Check, float]:
    """The median recorded duration of each check."""
    seen: dict[Check, list[float]] = {}
    for check, seconds in samples:
        seen.setdefault(check, []).append(seconds)
    return {check: statistics.median(values) for check, values in seen.items()}


def assign(checks: Iterable[Check], known: Mapping[Check, float], count: int) -> dict[Check, int]:
    """Each check's shard index (1-based) among ``count``; see the module docstring."""
    loads = [0.0] * count
    planned: dict[Check, int] = {}
    for check in sorted(known, key=lambda c: (-known[c], c.sort_key())):
        lightest = min(range(count), key=lambda i: (loads[i], i))
        loads[lightest] += known[check]
        planned[check] = lightest + 1
    return {check: planned.get(check) or _hashed(check, count) for check in checks}


def select(checks: Iterable[Check], known: Mapping[Check, float], shard: Shard) -> list[Check]:
    """The checks shard ``shard`` runs, in order."""
    chosen = assign(checks, known, shard.count)
    return sorted(
        (check for check, index in chosen.items() if index == shard.index), key=Check.sort_key
    )


def _hashed(check: Check, count: int) -> int:
    key = "\x1f".join((check.project, check.target or "", check.image or ""))
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1
