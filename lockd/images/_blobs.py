"""Layer blobs as verified, decompressed streams, read once.

A blob is read as raw chunks from its source (an HTTP body, a file, a tar
member). Two stages run in threads beside the reader, joined by small bounded
queues, so hashing, decompression and the reader's parsing overlap on several
cores (``hashlib``, ``isal`` and ``zstandard`` release the GIL):

1. the raw chunks are hashed against the blob's digest;
2. they are decompressed (gzip with ISA-L's inflate, ``isal``, about twice as
   fast as zlib's; zstd with ``zstandard``; the format is sniffed from the
   magic bytes, a media type can lie), in bounded pieces so a decompression
   bomb never sits in memory, and each piece is hashed against the layer's
   ``diff_id`` while it is still in the cache;
3. the reader takes the pieces as they are (:meth:`LayerStream.chunks`: no copy).

Where the blob's digest is checked elsewhere (``digest_elsewhere``: an OCI
layout's blob files, by a child process, see ``_ahead``) or there is none (a
``docker-archive:`` layer), stage 1 decompresses and stage 2 only hashes the
``diff_id``: the sha256 pass and the inflate then run on different cores.

A digest that does not match raises :class:`~lockd.errors.ImageError` at the
end of the stream, before the caller can take the layer for good: callers
treat everything read from a layer as provisional until :meth:`LayerStream.close`
returned. At most a few megabytes are buffered at any time.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, cast

from isal import isal_zlib

from lockd.errors import ImageError, LockdError

CHUNK = 1 << 20
_DEPTH = 4  # chunks per queue: memory stays at a few CHUNKs
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_POLL_S = 0.1  # how often a blocked stage checks that the pipeline was not abandoned
BlobDigest = Callable[[], tuple[str, int]]  # a blob's (digest, size), computed elsewhere


class _AbandonedError(Exception):
    """The consumer stopped reading; the producing stage ends quietly."""


class _Channel:
    """A bounded queue between two stages, with an error slot and an abandon flag."""

    def __init__(self, stop: threading.Event) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(_DEPTH)
        self._stop = stop

    def put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self._stop.is_set():
                raise _AbandonedError
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> bytes | None:
        while True:
            if self._stop.is_set():
                raise _AbandonedError
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item


def _run_stage(work: Callable[[], None], out: _Channel) -> threading.Thread:
    def run() -> None:
        try:
            work()
            out.put(None)
        except _AbandonedError:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            try:
                out.put(exc)
            except _AbandonedError:
                return

    thread = threading.Thread(target=run, name="lockd-layer", daemon=True)
    thread.start()
    return thread


def _pass_on(pieces: Iterable[bytes], out: _Channel, *, hashed: bool) -> tuple[str, int]:
    """Hand each piece on, hashed as it goes: the digest of them all (when ``hashed``) and
    their size."""
    hasher = hashlib.sha256()
    size = 0
    for piece in pieces:
        if piece:
            if hashed:
                hasher.update(piece)
            size += len(piece)
            out.put(piece)
    return "sha256:" + hasher.hexdigest() if hashed else "", size


def _drain(chunks: Iterator[bytes]) -> None:
    for _ in chunks:
        pass


def compression_of(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` from a blob's first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """gzip members (concatenated ones too), decompressed in pieces of at most CHUNK bytes.

    The inflate object directly: ``GzipFile`` reads its input 8 KiB at a time through
    Python code. Zero bytes after the last member are tolerated, as ``gzip -d`` does.
    """
    inflate = isal_zlib.decompressobj(31)
    for chunk in chunks:
        data = chunk
        while data:
            if inflate.eof:
                rest = inflate.unused_data + data
                if not rest.strip(b"\0"):
                    break  # padding after the last member
                inflate = isal_zlib.decompressobj(31)
                data = rest
            piece = inflate.decompress(data, CHUNK)
            if piece:
                yield piece
            data = inflate.unconsumed_tail
    if not inflate.eof:
        raise EOFError("the gzip stream ends before its end marker")


def _unzstd(chunks: Iterator[bytes]) -> Iterator[bytes]:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(
        cast("IO[bytes]", _IterReader(chunks)), read_size=CHUNK, read_across_frames=True
    )
    while piece := reader.read(CHUNK):
        yield piece


class _IterReader(io.RawIOBase):
    """Chunks as a readable file (zstandard's stream reader wants one)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data


class LayerStream(io.RawIOBase):
    """The uncompressed bytes of one layer blob, both digests checked at the end.

    ``digest`` is the blob's digest (of the bytes as stored), ``diff_id`` the
    digest of the uncompressed tar (``None`` when the source does not say, or when
    it is known already: the tar is then not hashed). ``digest_elsewhere``, when
    given, returns the blob's (digest, size) as computed by someone else over the
    same file (see ``_ahead``): the chunks are then not hashed here, and its
    answer is checked at the end of the stream instead.
    ``what`` names the layer in messages. Use as a context manager; reading to
    the end (:meth:`chunks`, ``read``, or :meth:`verify`) then :meth:`close`
    performs the checks.
    """

    def __init__(
        self,
        chunks: Iterable[bytes],
        digest: str | None,
        diff_id: str | None,
        what: str,
        *,
        digest_elsewhere: BlobDigest | None = None,
    ) -> None:
        super().__init__()
        self.what = what
        self.compression = "none"
        self.compressed_size = 0
        self.size = 0
        self._digest = digest
        self._diff_id = diff_id
        self._elsewhere = digest_elsewhere if digest is not None else None
        # Stage 1 hashes the blob when this process must; else it decompresses, and
        # stage 2 only hashes the diff_id: the two sha256 passes never share a thread.
        self._hash_here = digest is not None and self._elsewhere is None
        self._stop = threading.Event()
        raw = _Channel(self._stop)
        self._plain = _Channel(self._stop)
        self._threads = [
            _run_stage(lambda: self._first(iter(chunks), raw), raw),
            _run_stage(lambda: self._second(raw, self._plain), self._plain),
        ]
        self._pending = memoryview(b"")  # what ``readinto`` has not handed out of a piece
        self._eof = False

    # -- the stages ------------------------------------------------------------------

    def _first(self, chunks: Iterator[bytes], out: _Channel) -> None:
        if self._hash_here:
            actual, self.compressed_size = _pass_on(chunks, out, hashed=True)
            self._check_digest(actual, self.compressed_size)
            return
        self._decompress(self._counted(chunks), out, hashed=False, first=self._check_elsewhere)
        self._check_elsewhere()

    def _second(self, raw: _Channel, out: _Channel) -> None:
        chunks = iter(raw.get, None)
        hashed = self._diff_id is not None
        if self._hash_here:
            # The blob's digest is known once stage 1 has hashed every byte: on an unreadable
            # stream, reading the rest lets a mismatch (raised by ``raw.get``) speak first.
            actual, self.size = self._decompress(
                chunks, out, hashed=hashed, first=lambda: _drain(chunks)
            )
        else:  # stage 1 decompressed
            actual, self.size = _pass_on(chunks, out, hashed=hashed)
        if self._diff_id is not None and actual != self._diff_id:
            raise ImageError(
                f"The uncompressed content of {self.what} does not match its diff_id: the "
                f"image config says {self._diff_id}, the {self.size} bytes hash to {actual}.",
                hint="The image config and its layers disagree (an altered image); nothing "
                "from it was used.",
            )

    def _decompress(
        self, chunks: Iterator[bytes], out: _Channel, *, hashed: bool, first: Callable[[], object]
    ) -> tuple[str, int]:
        """Decompress ``chunks`` into ``out`` (see ``_pass_on``), then read the bytes after
        the compressed stream (they count for the blob). An unreadable stream raises
        ``ImageError`` after ``first`` ran: an altered blob says so by its digest first."""
        try:
            passed = _pass_on(self._inflate(chunks), out, hashed=hashed)
            _drain(chunks)
        except (_AbandonedError, LockdError):
            raise
        except Exception as exc:  # zlib.error, zstandard.ZstdError, EOFError, OSError, …
            unreadable = ImageError(
                f"{self.what} is not a readable {self.compression} stream: {exc}.",
                hint="The blob is corrupt or truncated; push or save the image again.",
            )
            first()
            raise unreadable from None
        return passed

    def _check_elsewhere(self) -> None:
        if self._elsewhere is not None:
            self._check_digest(*self._elsewhere())

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.compressed_size += len(chunk)
            yield chunk

    def _inflate(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The blob's bytes decompressed, in pieces of at most CHUNK bytes (the format
        sniffed from its first bytes into ``compression``)."""
        head = b""
        while len(head) < len(_ZSTD_MAGIC) and (chunk := next(chunks, None)) is not None:
            head += chunk
        self.compression = compression_of(head)
        source = itertools.chain([head], chunks)
        yield from {"gzip": _gunzip, "zstd": _unzstd}.get(self.compression, iter)(source)

    def _check_digest(self, actual: str, size: int) -> None:
        if self._digest is not None and actual != self._digest:
            raise ImageError(
                f"The blob of {self.what} does not match its digest: expected "
                f"{self._digest}, its {size} bytes hash to {actual}.",
                hint="The image was altered in the registry, on disk or in transit; nothing "
                "from it was used. Push or save the image again.",
            )

    # -- reading ---------------------------------------------------------------------

    def chunks(self) -> Iterator[bytes]:
        """The uncompressed bytes as the pieces the decompressor made (none copied).

        The pieces end after both digests were checked: a mismatch raises instead.
        """
        if self._pending:
            yield bytes(self._pending)
            self._pending = memoryview(b"")
        while not self._eof:
            piece = self._plain.get()
            if piece is None:
                self._eof = True
            else:
                yield piece

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            piece = self._plain.get()
            if piece is None:
                self._eof = True
            else:
                self._pending = memoryview(piece)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def verify(self) -> None:
        """Read what is left (a tar's padding after its end marker counts for ``diff_id``):
        both digests are checked; raise ``ImageError`` on a mismatch."""
        for _ in self.chunks():
            pass

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self.verify()
        finally:
            self.close()
