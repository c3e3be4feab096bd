"""Blob digests checked ahead, in a child process, for layer blobs that are files.

A first read of an image hashes every byte twice: each blob against its
digest, each uncompressed tar against its ``diff_id``. In one process both
passes compete with the tar parsing for the GIL at every 1 MiB hand-off.
Where the blobs are files (an OCI layout), their digests need not be taken
from the bytes this process decompresses: a small stdlib-only child process
(:data:`_HASHER`) opens the files itself, one after the other, and hashes them
on a CPU of its own, ahead of the layer being parsed (while the many small
files of a base layer are parsed, it hashes the large layers after it). The
bytes this process parses stay bound to the image by their ``diff_id``, hashed
here over exactly those bytes. Because the child and this process read the
file separately, such a digest never proves a (digest, ``diff_id``) pair for
:class:`~lockd.images._verified.VerifiedLayers`.

The child is started like every other (``lockd.processes``: its own process
group, killed with lockd, reaped at the end); when it cannot be started, the
blobs are hashed in this process as before.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from subprocess import Popen

from lockd.errors import ImageError, excerpt

# One line per file, in order: "sha256:HEX SIZE", or "error REASON" for a file it cannot read.
# Arguments: SIZE PATH pairs; a file is read to at most SIZE + 1 bytes (past its size the
# digest cannot match), and only if it is a regular file (a FIFO is never waited on).
_HASHER = """
import hashlib, os, stat, sys
buffer = memoryview(bytearray(1 << 20))
for size, path in zip(sys.argv[1::2], sys.argv[2::2]):
    hasher, read, left = hashlib.sha256(), 0, int(size) + 1
    try:
        nonblocking = getattr(os, "O_NONBLOCK", 0)
        with open(os.open(path, os.O_RDONLY | nonblocking), "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise OSError(0, "not a regular file")
            if nonblocking:
                os.set_blocking(handle.fileno(), True)
            while left and (n := handle.readinto(buffer[: min(len(buffer), left)])):
                hasher.update(buffer[:n])
                read += n
                left -= n
    except OSError as exc:
        print("error", exc.strerror or exc, flush=True)
        continue
    print(f"sha256:{hasher.hexdigest()}", read, flush=True)
"""
_LINE = re.compile(rb"(sha256:[0-9a-f]{64}) ([0-9]+)\n")


class DigestsAhead:
    """The digests of a list of files, computed by a child process in that order."""

    def __init__(self, child: Popen[bytes]) -> None:
        self._child = child
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    def result(self, index: int, what: str) -> tuple[str, int]:
        """The digest and size of file ``index`` (waits for the child to reach it)."""
        with self._lock:
            while len(self._lines) <= index:
                line = self._child.stdout.readline(4096) if self._child.stdout else b""
                if not line:
                    break
                self._lines.append(line)
        line = self._lines[index] if index < len(self._lines) else b"error the hasher stopped"
        found = _LINE.fullmatch(line)
        if found is None:
            reason = line.decode(errors="replace").strip().removeprefix("error ")
            raise ImageError(
                f"The blob of {what} could not be read to check its digest: {excerpt(reason)}.",
                hint="Check that the image's files are readable and complete.",
            )
        return found[1].decode(), int(found[2])


@contextlib.contextmanager
def digests_ahead(files: Sequence[tuple[Path, int]]) -> Iterator[DigestsAhead | None]:
    """A child hashing ``files`` (path, size the manifest gives) for the block (``None``:
    none to hash, or no child)."""
    from lockd.processes import piped_child

    arguments = [str(part) for path, size in files for part in (size, path)]
    command = [sys.executable, "-I", "-S", "-c", _HASHER, *arguments]
    with contextlib.ExitStack() as stack:
        child = None
        if files:
            with contextlib.suppress(OSError):
                child = stack.enter_context(piped_child(command))
        yield DigestsAhead(child) if child is not None else None
