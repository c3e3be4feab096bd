"""Fleet use cases: a deployment's snapshot checked against its lock and recorded.

``Fleet.ingest`` is what ``POST /api/v1/snapshots`` does: read the posted
document strictly (a ``lockd snapshot`` JSON, or the raw output of the
stdlib probe), pick the lockset (the project's newest, or the one named),
compare the snapshot with the target's lock and with the deployment's last
clean snapshot (the comparison ``lockd drift --snapshot`` makes; before its
first clean post, its dists with the last clean local check's), and record
the report, the snapshot and the deployment in one transaction of the
project's drift chain.

A ``Fleet`` lives as long as the server process: locksets are immutable and
content-addressed and snapshots are never rewritten, so both are cached by
their hash or row id; so are what reading a posted document gave (by the
document's content: a fleet posts the same few contents over and over) and
what comparing a content with a lock and baselines found (both pure
functions), and baselines by their content's hash: every worker of a server
knows a content it has read, whichever worker recorded the post that made it
a deployment's baseline. What moves (a project's newest lockset, which
snapshot is a deployment's baseline) is read from the database on every call,
but for the last clean local check's snapshot, read again once a minute.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson

from ..drift import DriftReport, Finding
from ..errors import FormatError, NotFoundError, UsageError, excerpt
from ..fields import MAX_TEXT
from ..lockset import Lockset
from ..names import check_name
from ..snapshot import Snapshot, snapshot_from_document
from ..store import Deployment, DeploymentQuery, Posted, ProjectOverview, Recorded, Store
from ..store.fleet import days_back
from ..store.snapshots import SnapshotRecord, SnapshotRef, snapshot_content
from ..targets import parse_target_id
from .drift import live_findings

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")

# How long ingestion trusts the id of a target's last clean local check before reading it
# again (a local check recorded meanwhile is seen this much later).
LOCAL_BASELINE_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Ingestion:
    """Where a posted snapshot comes from and what it is compared with."""

    project: str
    target: str
    deployment: str
    lockset: str | None = None  # hash or unique prefix; default: the project's newest


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map (the server's request threads share it); a load that
    finds nothing (None) is not remembered."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, key: K, load: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()  # outside the lock: two threads may load the same value once each
        if value is None:
            return value
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass(frozen=True, slots=True)
class Overview:
    """The dashboard's first page: the fleet by status and every project's recent nights."""

    counts: dict[str, int]
    attention: list[Deployment]  # drifted, failing and stale deployments, newest first
    projects: list[ProjectOverview]
    days: list[str]  # the nights shown, oldest first


class Fleet:
    """Snapshot ingestion and the fleet's state over one open store (one per server process)."""

    def __init__(self, store: Store, stale_after: timedelta = timedelta(hours=24)) -> None:
        self.store = store
        self.stale_after = stale_after
        self._locksets: _Lru[str, Lockset] = _Lru(64)
        # content hash -> the snapshot as first read with that content (its taken_at is
        # whichever came first: no comparison reads it); baselines are found here
        self._contents: _Lru[str, Snapshot | None] = _Lru(1024)
        # (project, target) -> (when read, the last clean local check's snapshot); only
        # pairs with a lock get here, so the map stays as small as the projects' targets.
        self._local_refs: dict[tuple[str, str], tuple[float, SnapshotRef | None]] = {}
        # posted_key -> (the snapshot as first read, its content's hash)
        self._posted: _Lru[str, tuple[Snapshot, str]] = _Lru(256)
        # (lockset, target, content, baseline's content, local baseline's content) -> the
        # comparison's findings
        self._findings: _Lru[tuple[str, str, str, str | None, str | None], tuple[Finding, ...]] = (
            _Lru(1024)
        )
        self._commits: GroupCommit[tuple[DriftReport, Posted | None], Recorded] = GroupCommit(
            store.record_drifts
        )
        # One posted snapshot at a time is read and compared in this process. That work
        # holds the GIL: two threads doing it at once only take turns, and every thread
        # that waits for the GIL (the event loop receiving bodies, the group commit's
        # leader) waits behind both. Queued here, they wait without competing for it
        # (the benchmark's p99 fell by a third).
        self._checking = threading.Lock()

    def stale_before(self) -> datetime:
        return datetime.now(UTC) - self.stale_after

    def deployments(self, query: DeploymentQuery) -> list[Deployment]:
        return self.store.deployments(query, self.stale_before())

    def projects(self, nights: int = 14) -> tuple[list[str], list[ProjectOverview]]:
        """The last ``nights`` UTC days (oldest first) and every project over them."""
        days = days_back(datetime.now(UTC), nights)
        return days, self.store.project_overviews(days[0])

    def overview(self, nights: int = 14, attention: int = 50) -> Overview:
        stale_before = self.stale_before()
        counts = self.store.deployment_counts(stale_before)
        worrying: list[Deployment] = []
        for status in ("drift", "error", "stale"):
            if counts.get(status) and len(worrying) < attention:
                query = DeploymentQuery(status=status, limit=attention - len(worrying))
                worrying += self.store.deployments(query, stale_before)
        days, projects = self.projects(nights)
        return Overview(counts, worrying, projects, days)

    def ingest(self, request: Ingestion, body: bytes) -> DriftReport:
        """Check the posted snapshot; record and return the drift report."""
        for label, value in (
            ("project", request.project),
            ("target", request.target),
            ("deployment", request.deployment),
        ):
            check_name(label, value, hint=f"Pass {label}=NAME in the query string.")
        with self._checking:
            report, posted, snapshot = self._check(request, body)
        recorded = self._commits.submit((report, posted))
        if recorded.report.status == "clean" and posted.snapshot is not None:
            # the deployment's baseline from now on (known already unless its reading
            # could not be keyed: see _read)
            self._contents.fetch(posted.snapshot.hash, lambda: snapshot)
        return recorded.report

    def _check(self, request: Ingestion, body: bytes) -> tuple[DriftReport, Posted, Snapshot]:
        """The report on the posted snapshot, how it is recorded, and the snapshot read."""
        target = parse_target_id(request.target)
        snapshot, content, text = self._read(body)
        posted = Posted(request.deployment, request.target)
        newest, baseline_ref = self.store.ingestion_state(request.project, posted)
        digest, lockset = self._lockset(request, newest)
        lock = lockset.lock(request.target)
        if lock is None:
            raise NotFoundError(
                f"Lockset {digest[:12]} of {request.project!r} has no target {request.target!r}.",
                hint="Its targets: " + ", ".join(lockset.targets) + ".",
            )
        if lock.is_conda():
            raise UsageError(
                f"Target {request.target} is a conda lock; snapshots are compared with pip locks.",
                hint="Post the snapshot against the pip target of the same platform.",
            )
        baseline = self._baseline(baseline_ref)
        # A deployment with no clean post yet has no baseline of its own: its dists are held
        # to the local checks' (a rebuild from the lock's hashes), so a first post with
        # altered files is not trusted as clean. Its system is the deployment's own.
        local = self._local_baseline(request.project, request.target) if baseline is None else None
        # The comparison depends on the lock and on the contents only (never on taken_at):
        # a deployment that posts what it posted before gets the same findings.
        findings = self._findings.fetch(
            (digest, request.target, content, baseline and baseline[1], local and local[1]),
            lambda: tuple(
                live_findings(
                    lock,
                    target,
                    snapshot,
                    baseline and baseline[0],
                    None,
                    dists_baseline=local and local[0],
                )
            ),
        )
        report = DriftReport(
            project=lockset.project,
            lockset=digest,
            checked_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            findings=findings,
            checks=(f"live:{request.target}",),
        )
        if baseline is not None and baseline[1] == content:
            # The deployment posted its baseline's content again (the usual case): the
            # record names that content, which is neither encoded nor stored again.
            record = SnapshotRecord(request.target, snapshot.taken_at, content)
        else:
            if text is None:  # a known content, new to this deployment
                text = snapshot_content(snapshot.to_dict())[1]
            record = SnapshotRecord(request.target, snapshot.taken_at, content, text)
        return report, replace(posted, snapshot=record), snapshot

    def _read(self, body: bytes) -> tuple[Snapshot, str, str | None]:
        """The posted snapshot, the sha256 of its content as recorded and, when this call
        encoded it, that content (``snapshot_content``).

        A content read before (the same document but for ``taken_at``) is not read again:
        reading is a pure function of the document, and a fleet posts the same few
        contents over and over.
        """
        data, exact = decode_posted(body)
        key = posted_key(data) if exact else None
        taken_at = data.get("taken_at") if key is not None else None
        if key is None or type(taken_at) is not str or len(taken_at) > MAX_TEXT:
            snapshot = read_posted(data)  # raises what a malformed document deserves
            return snapshot, *snapshot_content(snapshot.to_dict())
        encoded: list[str] = []

        def read() -> tuple[Snapshot, str]:
            first = read_posted(data)
            digest, text = snapshot_content(first.to_dict())
            encoded.append(text)
            self._contents.fetch(digest, lambda: first)  # a baseline, once recorded clean
            return first, digest

        known, content = self._posted.fetch(key, read)
        snapshot = replace(known, taken_at=taken_at)
        check_taken_at(snapshot)
        return snapshot, content, encoded[0] if encoded else None

    def _lockset(self, request: Ingestion, newest: str | None) -> tuple[str, Lockset]:
        """(hash, lockset): the hash as filed (``Lockset.hash`` recomputes it: costly)."""
        if request.lockset:
            found = self.store.get(request.lockset, request.project)
            digest = found.hash
            return digest, self._locksets.fetch(digest, lambda: found)
        if newest is None:
            raise NotFoundError(
                f"Project {request.project!r} has no lockset.",
                hint="Run `lockd compile` for it first (with the database this server uses).",
            )
        return newest, self._locksets.fetch(newest, lambda: self.store.get(newest))

    def _local_baseline(self, project: str, target: str) -> tuple[Snapshot, str] | None:
        """The last clean local check's snapshot of the target, its id read again at most
        every ``LOCAL_BASELINE_TTL`` seconds: finding it walks the project's reports, too
        costly for every post of a deployment that is not clean yet."""
        now = time.monotonic()
        found = self._local_refs.get((project, target))
        if found is None or now - found[0] > LOCAL_BASELINE_TTL:
            found = (now, self.store.baseline_snapshot_ref(project, target))
            self._local_refs[project, target] = found
        return self._baseline(found[1])

    def _baseline(self, ref: SnapshotRef | None) -> tuple[Snapshot, str] | None:
        """A baseline snapshot and its content's hash, read from the database only when no
        snapshot with its content was read here before."""
        if ref is None:
            return None

        def load() -> Snapshot | None:
            found = self.store.snapshot(ref.id)
            return Snapshot.from_dict(found[0]) if found else None

        snapshot = self._contents.fetch(ref.content, load)
        return (snapshot, ref.content) if snapshot is not None else None


@dataclass(slots=True)
class _Entry(Generic[V]):
    item: V
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class GroupCommit(Generic[V, R]):
    """Writes that arrive while one is being committed are committed together, next.

    A commit waits for the disk (an fsync); one per request would cap the rate at
    one request per fsync. Instead the first waiting request becomes the leader,
    writes everything pending in one transaction and wakes the others; each leader
    writes one batch, so none waits behind an endless stream. A batch that fails is
    written again item by item, so one bad report fails only its own request.
    Writes from this process are serialised here rather than in SQLite's busy
    handler, which sleeps.
    """

    def __init__(self, write: Callable[[list[V]], list[R]]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._pending: list[_Entry[V]] = []
        self._leading = False

    def submit(self, item: V) -> R:
        entry = _Entry(item)
        with self._cond:
            self._pending.append(entry)
            while self._leading and not entry.done:
                self._cond.wait()
            if not entry.done:
                self._leading = True
                batch, self._pending = self._pending, []
        if not entry.done:
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if entry.error is not None:
            raise entry.error
        result: R = entry.result
        return result

    def _commit(self, batch: list[_Entry[V]]) -> None:
        try:
            results = self._write([e.item for e in batch])
        except Exception:
            if len(batch) == 1:
                batch[0].error, batch[0].done = sys.exc_info()[1], True
                return
            for entry in batch:
                self._commit([entry])
            return
        for entry, result in zip(batch, results, strict=True):
            entry.result, entry.done = result, True


def parse_posted(body: bytes) -> Snapshot:
    """A posted snapshot: ``lockd snapshot`` JSON, or what the stdlib probe prints."""
    return read_posted(decode_posted(body)[0])


def decode_posted(body: bytes) -> tuple[Any, bool]:
    """The body's JSON, and whether ``posted_key`` may encode it: not when it holds a
    NaN or an infinity, which orjson would encode as ``null`` (the key of another
    document)."""
    finite = True

    def constant(text: str) -> float:
        nonlocal finite
        finite = False
        return float(text)

    def number(text: str) -> float:
        nonlocal finite
        value = float(text)
        finite = finite and math.isfinite(value)
        return value

    try:
        data: Any = json.loads(body, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise FormatError(
            f"The request body is not JSON ({detail}).",
            hint="Post the output of `lockd snapshot` (or of the stdlib probe) as the body.",
        ) from None
    return data, finite


def posted_key(data: Any) -> str | None:
    """The sha256 of a posted ``lockd snapshot`` document without its ``taken_at``, in
    orjson's sorted encoding (one encoding per JSON value); None for anything else (the
    probe's output, which has no ``taken_at`` of its own) and for what orjson cannot
    encode exactly (integers past 64 bits, lone surrogates, deep nesting)."""
    if type(data) is not dict or "version" not in data:
        return None
    try:
        encoded = orjson.dumps(
            {k: v for k, v in data.items() if k != "taken_at"}, option=orjson.OPT_SORT_KEYS
        )
    except (TypeError, orjson.JSONEncodeError):
        return None
    return hashlib.sha256(encoded).hexdigest()


def read_posted(data: Any) -> Snapshot:
    """A posted snapshot from its decoded JSON (see ``parse_posted``)."""
    try:
        snapshot = snapshot_from_document(data, source="the posted snapshot")
    except RecursionError:
        raise FormatError("The posted snapshot is nested too deeply.") from None
    check_taken_at(snapshot)
    return snapshot


def check_taken_at(snapshot: Snapshot) -> None:
    """The time a posted snapshot is recorded under is an ISO 8601 time."""
    try:
        datetime.fromisoformat(snapshot.taken_at.replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(
            f"The posted snapshot's taken_at {excerpt(snapshot.taken_at)} is not an ISO 8601 time.",
            hint="Post the output of `lockd snapshot` (or of the stdlib probe) unchanged.",
        ) from None
