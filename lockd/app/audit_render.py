"""Rendering the audit report: in this process, or in a second one while this one reads.

Reading the records and checking their chains, and reading each document into
a lockset and rendering its section, cost about the same (several seconds each
for 10,000 locksets) and depend on each other only through the records, in
order. :class:`Renderer` does the second half here; :class:`WorkerRenderer`
hands each record's hash, project and document to a process of its own
(``spawn``: nothing of this process's open database or threads is inherited),
which renders into its own spool file and, once given the chain verdict, writes
the report into the scratch directory for this process to copy out. The worker
ends with its pipe: when this process fails or is killed, it stops too.
"""

from __future__ import annotations

import multiprocessing
import queue
import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import LockdError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..store.verify import ChainReport, DriftRecord, LocksetRecord

_BATCH = 100  # records per message to the worker (a few MB of documents)
Period = tuple[datetime | None, datetime | None]  # since, until (already checked)


class Renderer:
    """The report model and its lockset sections, built in this process."""

    def __init__(self, project: str | None, period: Period, fmt: str, spool: IO[bytes]) -> None:
        from ..report.audit_model import AuditBuilder
        from ..report.audit_model import Period as Window
        from ..report.audit_parts import SectionSpool
        from .audit import report_parts

        self._builder = AuditBuilder(project, Window(*period))
        self._spool = SectionSpool(report_parts(fmt), spool)

    def drift_report(self, record: DriftRecord) -> None:
        self.add("drift", record.hash, record.project, record.data, record.origin)

    def lockset(self, record: LocksetRecord) -> None:
        self.add("lockset", record.hash, record.project, record.data)

    def add(self, kind: str, digest: str, project: str, data: Any, origin: str = "") -> None:
        """A record's parsed document (``kind``: ``drift`` or ``lockset``; a drift report's
        ``origin``: see ``drift.standing``)."""
        if kind == "drift":
            self._builder.drift_report(digest, project, data, origin)
        elif (entry := self._builder.lockset(digest, project, data)) is not None:
            self._spool.add(entry)

    def finish(self, chain: ChainReport, generated_at: str, out: IO[bytes]) -> None:
        from .. import __version__

        report = self._builder.build(chain, generated_at=generated_at, lockd_version=__version__)
        self._spool.write(report, out)

    def close(self) -> None:
        """Nothing to stop here."""


class WorkerRenderer:
    """:class:`Renderer` in a second process, fed the records' documents as they are read."""

    def __init__(self, project: str | None, period: Period, fmt: str, scratch: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_work,
            args=(child, project, period, fmt, str(scratch)),
            name="lockd-audit-render",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._scratch = scratch
        self._batch: list[tuple[str, str, str, str, str]] = []
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._failed: BaseException | None = None
        self._sender = threading.Thread(target=self._send, name="lockd-audit-send", daemon=True)
        self._sender.start()

    def _send(self) -> None:
        # A thread: sending waits while the worker is busy, and the reading must go on.
        while (message := self._outbox.get()) is not None:
            if self._failed is None:
                try:
                    self._conn.send(message)
                except (OSError, EOFError) as exc:  # the worker is gone
                    self._failed = exc

    def _add(self, kind: str, digest: str, project: str, document: str, origin: str = "") -> None:
        self._batch.append((kind, digest, project, document, origin))
        if len(self._batch) >= _BATCH:
            self._outbox.put(("records", self._batch))
            self._batch = []

    def drift_report(self, record: DriftRecord) -> None:
        self._add("drift", record.hash, record.project, record.document, record.origin)

    def lockset(self, record: LocksetRecord) -> None:
        self._add("lockset", record.hash, record.project, record.document)

    def finish(self, chain: ChainReport, generated_at: str, out: IO[bytes]) -> None:
        if self._batch:
            self._outbox.put(("records", self._batch))
            self._batch = []
        self._outbox.put(("finish", chain, generated_at))
        self._outbox.put(None)
        self._sender.join()
        try:
            reply = self._conn.recv()
        except (OSError, EOFError):
            reply = ("error", "the process rendering the report ended without a word")
        if reply[0] != "done":
            raise LockdError(f"Rendering the audit report failed: {reply[1]}")
        with (self._scratch / _REPORT).open("rb") as written:
            shutil.copyfileobj(written, out, 1 << 20)

    def close(self) -> None:
        """Stop the worker (when the report is written it has already ended)."""
        if self._sender.is_alive():
            self._failed = self._failed or EOFError()
            self._outbox.put(None)
        self._conn.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


_REPORT = "report"


def _work(conn: Connection, project: str | None, period: Period, fmt: str, scratch: str) -> None:
    """The worker: render what ``conn`` brings until the chain verdict, then the report."""
    import gc
    import signal

    from ..store.verify import parse_document

    # Ctrl-C is the reading process's to handle: it closes the pipe, and that ends this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # acyclic values by the 100,000, as in the reading process
    try:
        with tempfile.TemporaryFile(dir=scratch) as spool:
            renderer = Renderer(project, period, fmt, spool)
            while (message := conn.recv())[0] == "records":
                for kind, digest, owner, document, origin in message[1]:
                    renderer.add(kind, digest, owner, parse_document(document), origin)
            _, chain, generated_at = message
            with (Path(scratch) / _REPORT).open("wb") as out:
                renderer.finish(chain, generated_at, out)
        conn.send(("done",))
    except (EOFError, BrokenPipeError):
        return  # the reading process is gone: nothing to report to
    except LockdError as exc:
        conn.send(("error", exc.render()))
    except Exception as exc:  # named to the reading process, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
