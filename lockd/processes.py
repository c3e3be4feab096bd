"""Child processes (uv, pip-compile) that never outlive lockd.

Each child runs in a process group of its own, so lockd can stop it together
with whatever it started: at Ctrl-C or SIGTERM (``stop_children``, called by
the CLI's signal handler, before the message is printed), and when its
wall-clock deadline passes. On Linux the kernel also sends the child SIGKILL
when the lockd thread that started it dies (``PR_SET_PDEATHSIG``), so even
``kill -9`` of lockd leaves no resolver running. That last guarantee covers
the child itself; what it started in turn (a build backend) lives in its
process group and is stopped with it in every case but ``kill -9``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

from .errors import ResolutionError

_PR_SET_PDEATHSIG = 1

_lock = threading.Lock()
_running: set[subprocess.Popen[Any]] = set()
_stopping = threading.Event()
_signals: list[int] = []


@dataclass(frozen=True, slots=True)
class Deadline:
    """How long a child may run (``LOCKD_UV_DEADLINE``), and who it works for."""

    seconds: float
    what: str  # "uv", "pip-compile"
    target: str | None = None


def run_child(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    deadline: Deadline | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion, capturing its text output.

    Past its ``deadline`` the child's process group is killed and
    ``ResolutionError`` raised; once lockd is stopping, no new child starts
    (``KeyboardInterrupt``).
    """
    child = _start(command, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE)
    with _supervised(child, deadline, child.communicate):
        out, err = child.communicate(stdin, timeout=deadline.seconds if deadline else None)
    return subprocess.CompletedProcess(list(command), child.returncode, out, err)


def stream_child(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    deadline: Deadline | None = None,
    stdin: str | None = None,
    on_line: Callable[[str], None],
) -> subprocess.CompletedProcess[str]:
    """:func:`run_child` for a child whose progress matters as it comes (a rebuild's
    ``uv pip sync``, the packages ``uv pip compile`` picks).

    Each line the child writes to stderr goes to ``on_line`` as it comes (from a
    reader thread) and is kept as the result's ``stderr``; stdout is discarded.
    A failing ``on_line`` only stops the progress, never the child.
    """
    child = _start(
        command, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.DEVNULL, errors="replace"
    )
    lines: list[str] = []
    threads = [threading.Thread(target=_pump, args=(child, lines, on_line), daemon=True)]
    if stdin is not None:  # written by a thread: a child that does not read cannot block lockd
        threads.append(threading.Thread(target=_feed, args=(child, stdin), daemon=True))
    for thread in threads:
        thread.start()
    try:
        with _supervised(child, deadline, child.wait):  # the threads read the pipes
            child.wait(timeout=deadline.seconds if deadline else None)
    finally:
        for thread in threads:
            thread.join()
    return subprocess.CompletedProcess(list(command), child.returncode, "", "".join(lines))


@contextlib.contextmanager
def piped_child(
    command: Sequence[str], *, pass_fds: Sequence[int] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """A child whose binary stdout and stderr the block reads, supervised as :func:`run_child`'s.

    ``pass_fds`` stay open in the child. Start it in a thread that outlives the
    block (the child dies with that thread on Linux). The child is killed if the
    block raises and always reaped at its end.
    """
    child: subprocess.Popen[bytes] = _start(
        command, stdin=None, stdout=subprocess.PIPE, text=False, pass_fds=pass_fds
    )
    with _supervised(child, None, child.wait):
        try:
            yield child
        finally:
            if child.poll() is None:
                _kill(child)
            child.wait()
            for pipe in (child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()


def _start(
    command: Sequence[str],
    *,
    stdin: str | None,
    stdout: int,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    errors: str | None = None,
    text: bool = True,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[Any]:
    """Start ``command`` in a process group of its own that dies with this thread."""
    with _lock:  # against other threads; a signal handler takes no lock (stop_children)
        if _stopping.is_set():
            raise KeyboardInterrupt
        child = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=text,
            errors=errors,
            process_group=0,
            pass_fds=pass_fds,
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 - async-signal-safe: one prctl call
        )
        _running.add(child)
    if _stopping.is_set():  # a stop that came while it started did not see it
        _kill(child)
        raise KeyboardInterrupt
    return child


@contextlib.contextmanager
def _supervised(
    child: subprocess.Popen[Any], deadline: Deadline | None, reap: Callable[[], object]
) -> Iterator[None]:
    """Past the deadline, or at an interrupt in this thread, the child's group is killed
    (and ``reap`` collects it)."""
    try:
        yield
    except BaseException as exc:
        _kill(child)
        reap()
        if isinstance(exc, subprocess.TimeoutExpired) and deadline is not None:
            raise _overran(deadline) from None
        raise
    finally:
        with _lock:
            _running.discard(child)


def _pump(
    child: subprocess.Popen[str], lines: list[str], on_line: Callable[[str], None] | None
) -> None:
    assert child.stderr is not None  # noqa: S101 - opened with stderr=PIPE
    with child.stderr:  # closed at the end of the output: the child is gone
        for line in child.stderr:
            lines.append(line)
            if on_line is not None:
                try:
                    on_line(line.rstrip("\n"))
                except Exception:
                    on_line = None


def _feed(child: subprocess.Popen[str], text: str) -> None:
    assert child.stdin is not None  # noqa: S101 - opened with stdin=PIPE
    with contextlib.suppress(BrokenPipeError, OSError):
        child.stdin.write(text)
        child.stdin.close()


def _overran(deadline: Deadline) -> ResolutionError:
    where = f"Target {deadline.target}: " if deadline.target else ""
    return ResolutionError(
        f"{where}{deadline.what} did not finish within {deadline.seconds:g} s and was stopped "
        "(an index that answers too slowly, or trickles its answer).",
        target=deadline.target,
        hint="Check the indexes, or allow more time with LOCKD_UV_DEADLINE.",
    )


GIVE_WAY_NICENESS = 10  # how much lower a background thread runs than its children


def give_way() -> None:
    """Lower the calling thread's scheduling priority (Linux; elsewhere nothing).

    For background work that overlaps the children: a compile imports and opens
    its store (≈ 0.4 s of CPU) while uv resolves, and on busy cores uv's runs
    should come first (benchmarks/RESULTS.md, issue 14). On Linux a thread is a
    task of its own, so only this thread gives way; elsewhere ``setpriority``
    would name a process, so nothing is done.
    """
    if not sys.platform.startswith("linux"):
        return
    task = threading.get_native_id()
    with contextlib.suppress(OSError):
        now = os.getpriority(os.PRIO_PROCESS, task)
        os.setpriority(os.PRIO_PROCESS, task, min(19, now + GIVE_WAY_NICENESS))


def stop_children() -> None:
    """Kill every running child's process group now; start no new one.

    It takes no lock: it runs in the signal handler, which may interrupt this
    thread inside ``_start``'s critical section (a lock taken there again would
    never be released). A child started meanwhile sees ``_stopping`` and dies.
    """
    _stopping.set()
    for child in list(_running):  # copied in one step (the GIL): threads may add or remove
        _kill(child)


def stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the children at once, then interrupt the main thread."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        _signals.append(signum)
        stop_children()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)


def interrupted_by() -> int | None:
    """The signal that interrupted lockd, if one did."""
    return _signals[0] if _signals else None


def _kill(child: subprocess.Popen[Any]) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when lockd's thread dies."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # lockd died before the request took effect
            os._exit(1)

    return preexec


@cache
def _prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function
