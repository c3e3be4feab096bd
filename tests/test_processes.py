"""Child processes past their deadline: the whole process group goes, lockd says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockd.errors import ResolutionError
from lockd.processes import Deadline, run_child, stream_child

# A child that starts a grandchild and would outlive any test; the grandchild writes its pid.
SCRIPT = "sleep 60 & echo $! > {pidfile}; echo started >&2; wait"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("runner", ["run_child", "stream_child"])
def test_a_child_past_its_deadline_is_killed_with_its_group(runner: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    command = ["sh", "-c", SCRIPT.format(pidfile=pidfile)]
    lines: list[str] = []
    limit = Deadline(1.0, "test child")
    started = time.monotonic()
    with pytest.raises(ResolutionError, match="test child"):
        if runner == "run_child":
            run_child(command, deadline=limit)
        else:
            stream_child(command, deadline=limit, on_line=lines.append)
    assert time.monotonic() - started < 10
    assert _gone(int(pidfile.read_text()))
    if runner == "stream_child":
        assert lines == ["started"]


def test_a_child_within_its_deadline_returns_its_output() -> None:
    done = run_child(["sh", "-c", "echo out; echo err >&2"], deadline=Deadline(30, "test"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    lines: list[str] = []
    streamed = stream_child(["sh", "-c", "echo a >&2; echo b >&2"], on_line=lines.append)
    assert (streamed.returncode, streamed.stderr, lines) == (0, "a\nb\n", ["a", "b"])


# Run in a fresh interpreter: the module's stop is for good (no child starts after it).
STOP_WHILE_STARTING = """
import subprocess, sys
from lockd import processes

real = subprocess.Popen
started = []

def popen(*args, **kwargs):  # a signal arriving right after the fork, before _start returns
    child = real(*args, **kwargs)
    started.append(child)
    processes.stop_children()  # what the handler does, in the thread that holds the lock
    return child

processes.subprocess.Popen = popen
try:
    processes.run_child(["sleep", "60"])
except KeyboardInterrupt:
    print("interrupted", started[0].wait(timeout=10), flush=True)
"""


def test_a_stop_while_a_child_starts_neither_hangs_nor_misses_the_child() -> None:
    """Ctrl-C's handler runs in the thread it interrupts, possibly inside ``_start``: it
    must not wait for the lock that thread holds, and the child then starting must die."""
    done = subprocess.run(
        [sys.executable, "-c", STOP_WHILE_STARTING],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "interrupted -9\n"), done.stderr


def test_a_piped_child_reads_a_passed_descriptor_and_dies_with_its_block(tmp_path: Path) -> None:
    from lockd import processes

    data = tmp_path / "data"
    data.write_bytes(b"\x00\xffbinary")
    with data.open("rb") as handle:
        fd = handle.fileno()
        script = f"import os, sys; os.write(1, os.read({fd}, 100)); sys.stderr.write('said\\n')"
        command = [sys.executable, "-c", script]
        with processes.piped_child(command, pass_fds=(fd,)) as child:
            assert child.stdout is not None and child.stderr is not None
            assert child.stdout.read() == b"\x00\xffbinary"
            assert child.stderr.read() == b"said\n"
    assert child.returncode == 0 and child.stdout.closed

    pidfile = tmp_path / "grandchild.pid"
    with (
        pytest.raises(RuntimeError),
        processes.piped_child(["sh", "-c", SCRIPT.format(pidfile=pidfile)]) as child,
    ):
        assert child.stderr is not None
        assert child.stderr.readline() == b"started\n"
        raise RuntimeError("the reader failed")
    assert child.returncode is not None and child not in processes._running
    assert _gone(int(pidfile.read_text()))  # its whole group went
