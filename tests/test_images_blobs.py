"""Blob streams and ELF sections read from streams, at the unit level."""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard

from lockd.errors import ImageError, RegistryError
from lockd.images import RegistryClient, RegistryOptions
from lockd.images._blobs import LayerStream
from lockd.images._elf import read_dynamic_stream
from lockd.snapshot.elf import read_dynamic
from lockd.snapshot.filesystem import HOST


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_layer_streams_decompress_and_check_both_digests(kind: str) -> None:
    plain = os.urandom(3 << 20) + b"\0" * 5000
    blob = {"gzip": gzip.compress, "zstd": zstandard.ZstdCompressor().compress}.get(
        kind, lambda b: b
    )(plain)
    chunks = [blob[i : i + 70_000] for i in range(0, len(blob), 70_000)]
    with LayerStream(iter(chunks), digest(blob), digest(plain), "layer") as stream:
        assert stream.read(10) == plain[:10]
    assert stream.compression == kind
    assert (stream.size, stream.compressed_size) == (len(plain), len(blob))

    with pytest.raises(ImageError, match="does not match its digest"):  # noqa: SIM117
        with LayerStream(iter(chunks), digest(b"other"), None, "layer") as stream:
            stream.read()
    with pytest.raises(ImageError, match="diff_id"):  # noqa: SIM117
        with LayerStream(iter(chunks), digest(blob), digest(b"other"), "layer") as stream:
            stream.read(1)


def test_a_truncated_gzip_blob_is_an_image_error() -> None:
    blob = gzip.compress(os.urandom(100_000))[:-2000]
    with pytest.raises(ImageError, match="not a readable gzip stream"):  # noqa: SIM117
        with LayerStream(iter([blob]), None, None, "layer") as stream:
            stream.read()


def test_an_abandoned_stream_stops_its_threads() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"\0" * 65536

    stream = LayerStream(endless(), None, None, "layer")
    assert stream.read(5) == b"\0" * 5
    stream.close()  # returns: the stages notice and end
    assert not any(t.is_alive() for t in stream._threads)


def _shared_objects() -> list[Path]:
    roots = [Path(sys.prefix) / "lib", Path("/usr/lib/x86_64-linux-gnu")]
    found = [
        p
        for root in roots
        if root.is_dir()
        for p in sorted(root.rglob("*.so*"))
        if p.is_file() and not p.is_symlink()
    ]
    return found[:400]


def test_the_stream_reader_agrees_with_pyelftools_on_real_objects() -> None:
    objects = _shared_objects()
    assert len(objects) > 20
    for path in objects:
        expected = read_dynamic(HOST, str(path))
        with path.open("rb") as handle:
            got = read_dynamic_stream(handle, path.stat().st_size)
        assert isinstance(got, str) == isinstance(expected, str), path
        if not isinstance(expected, str):
            assert got == expected, path


def test_the_stream_reader_on_libtorch_when_a_real_torch_wheel_is_at_hand(tmp_path: Path) -> None:
    wheels = sorted(Path("/opt/wheels").glob("torch-*.whl")) if Path("/opt/wheels").is_dir() else []
    if not wheels:
        pytest.skip("no real torch wheel on this machine (pip's find-links)")
    with zipfile.ZipFile(wheels[0]) as archive:
        info = archive.getinfo("torch/lib/libtorch_cpu.so")
        target = tmp_path / "libtorch_cpu.so"
        with archive.open(info) as source, target.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        expected = read_dynamic(HOST, str(target))
        with archive.open(info) as source:  # a forward-only stream, as a layer is
            got = read_dynamic_stream(source, info.file_size)
    assert got == expected
    assert not isinstance(got, str) and "libc10.so" in got.needed


def test_a_blob_download_that_breaks_is_resumed_with_a_range_request() -> None:
    blob = os.urandom(300_000)
    ranges: list[str | None] = []

    class Flaky(httpx.BaseTransport):
        """Every answer breaks off after 50,000 bytes (a connection reset, a deadline)."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            ranges.append(request.headers.get("Range"))
            start = int((request.headers.get("Range") or "bytes=0-")[6:].rstrip("-"))

            def broken() -> Iterator[bytes]:
                yield blob[start : start + 50_000]
                if start + 50_000 < len(blob):
                    raise httpx.ReadTimeout("LOCKD_HTTP_DEADLINE reached")

            return httpx.Response(206 if start else 200, stream=_Stream(broken()))

    options = RegistryOptions(transport=Flaky(), sleep=lambda _s: None)
    with (
        RegistryClient(options) as client,
        client.blob_chunks("127.0.0.1:5000/app", digest(blob), len(blob)) as chunks,
    ):
        assert b"".join(chunks) == blob  # six requests: more than `attempts`, each one progressing
    assert ranges == [None, *(f"bytes={n}-" for n in range(50_000, 300_000, 50_000))]

    def stalled(_request: httpx.Request) -> httpx.Response:
        def nothing() -> Iterator[bytes]:
            raise httpx.ReadTimeout("LOCKD_HTTP_DEADLINE reached")
            yield b""  # pragma: no cover

        return httpx.Response(200, stream=_Stream(nothing()))

    stuck = RegistryOptions(transport=httpx.MockTransport(stalled), sleep=lambda _s: None)
    with (
        pytest.raises(RegistryError, match="broke off after 0 bytes, 4 times"),
        RegistryClient(stuck) as client,
        client.blob_chunks("127.0.0.1:5000/app", digest(blob), len(blob)) as chunks,
    ):
        b"".join(chunks)

    too_long = RegistryOptions(
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, content=blob)),
        sleep=lambda _s: None,
    )
    with (
        pytest.raises(RegistryError, match="longer than the 1000 bytes"),
        RegistryClient(too_long) as client,
        client.blob_chunks("127.0.0.1:5000/app", digest(blob), 1000) as chunks,
    ):
        b"".join(chunks)


class _Stream(httpx.SyncByteStream):
    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts


def _tar(entries: list[tuple[str, bytes, bytes]], fmt: int) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` as a layer stream hands it over: pieces of any size, across header borders."""
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("piece", [1, 100, 511, 513, 1 << 20])
@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_the_tar_reader_reads_what_tarfile_writes(fmt: str, piece: int) -> None:
    import tarfile

    from lockd.images._tar import SYMLINK, TarStream

    long = "d/" + "x" * 150 + "/file.txt" if fmt != "ustar" else "d/" + "x" * 120 + "/f"
    target = "../" + "t" * 120 if fmt != "ustar" else "t"
    data = _tar(
        [
            (long, tarfile.REGTYPE, b"hello"),
            ("d/link", tarfile.SYMTYPE, target.encode()),
            ("d/empty", tarfile.REGTYPE, b""),
        ],
        {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}[fmt],
    )
    tar = TarStream(_pieces(data, piece), "layer")
    seen = [
        (m.name, m.type, m.size, m.linkname, tar.read() if m.is_file else b"")
        for m in tar.members()
    ]
    assert seen == [
        (long, ord("0"), 5, "", b"hello"),
        ("d/link", SYMLINK, 0, target, b""),
        ("d/empty", ord("0"), 0, "", b""),
    ]


def test_the_tar_reader_refuses_a_broken_header_and_a_huge_long_name() -> None:
    import tarfile

    from lockd.images._tar import MAX_HEADER, TarStream

    data = bytearray(_tar([("a", tarfile.REGTYPE, b"x")], tarfile.USTAR_FORMAT))
    data[0] = ord("b")  # the checksum no longer matches
    with pytest.raises(ImageError, match="wrong checksum"):
        list(TarStream(iter([bytes(data)]), "layer").members())
    huge = _tar([("y" * (MAX_HEADER + 10), tarfile.REGTYPE, b"x")], tarfile.GNU_FORMAT)
    with pytest.raises(ImageError, match="tar header"):
        list(TarStream(iter([huge]), "layer").members())


def test_an_image_too_large_to_hold_stops_the_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import tarfile

    from lockd.images import _rootfs
    from lockd.images._facts import classify

    metadata = [
        (f"site-packages/p{i}-1.dist-info/METADATA", tarfile.REGTYPE, b"m" * 100) for i in range(20)
    ]
    data = _tar(metadata, tarfile.PAX_FORMAT)

    def apply() -> None:
        stats = _rootfs.LayerStats(0, None, None, "tar")
        rootfs = _rootfs.RootFs(layers=[stats])
        with LayerStream(iter([data]), None, None, "layer") as stream:
            rootfs.apply(stream, stats, classify)

    apply()  # within the limits
    monkeypatch.setattr(_rootfs, "MAX_KEPT", 1000)
    with pytest.raises(ImageError, match="bytes of package metadata"):
        apply()
    monkeypatch.setattr(_rootfs, "MAX_ENTRIES", 10)
    with pytest.raises(ImageError, match="more than 10 files"):
        apply()


def _checksummed(block: bytearray) -> bytes:
    """``block`` with its checksum field set as tar writers set it (unsigned bytes summed)."""
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def test_tar_header_checksums_hold_for_the_largest_byte_sums() -> None:
    import tarfile

    from lockd.images._tar import TarStream

    header = bytearray(tarfile.TarInfo("x").tobuf(tarfile.USTAR_FORMAT))
    header[0:100] = b"\xff" * 100  # every byte that is free text at its maximum: the
    header[157:257] = b"\xff" * 100  # Adler-32 halves must still sum exactly
    header[265:329] = b"\xff" * 64
    header[345:500] = b"\xfe" * 155
    good = _checksummed(header)
    member = next(TarStream(iter([good, bytes(1024)]), "layer").members())
    assert member.name == ("\udcfe" * 155) + "/" + ("\udcff" * 100)
    assert member.linkname == "\udcff" * 100
    for delta in (1, -1, 65521):
        stored = int(good[148:154], 8) + delta
        bad = good[:148] + b"%06o\0 " % (stored % 0o1000000) + good[156:]
        with pytest.raises(ImageError, match="wrong checksum"):
            list(TarStream(iter([bad]), "layer").members())


def test_the_tar_reader_knows_where_a_cut_archive_ends() -> None:
    import tarfile

    from lockd.images._tar import TarStream

    data = _tar(
        [("a", tarfile.REGTYPE, b"x" * 1000), ("b", tarfile.REGTYPE, b"y" * 24)],
        tarfile.USTAR_FORMAT,
    )
    for piece in (1, 512, 700, 1 << 20):
        # Without its end marker: tolerated, as tar does, even where a piece ends with a file.
        tar = TarStream(_pieces(data[:2560], piece), "layer")
        assert [(m.name, m.size) for m in tar.members()] == [("a", 1000), ("b", 24)]
        tar = TarStream(_pieces(data[:1200], piece), "layer")  # inside a's data
        with pytest.raises(ImageError, match="ends inside a file"):
            list(tar.members())
        tar = TarStream(_pieces(data[:1700], piece), "layer")  # inside b's header
        with pytest.raises(ImageError, match="ends inside a header"):
            list(tar.members())
        tar = TarStream(_pieces(data[:1100], piece), "layer")
        first = next(tar.members())
        with pytest.raises(ImageError, match="ends inside a file"):
            tar.read(first.size)


def test_a_layer_hands_its_pieces_over_uncopied_and_checks_its_digests_at_the_end() -> None:
    plain = os.urandom(5 << 20)
    blob = gzip.compress(plain, compresslevel=1)
    chunks = [blob[i : i + 300_000] for i in range(0, len(blob), 300_000)]
    with LayerStream(iter(chunks), digest(blob), digest(plain), "layer") as stream:
        head = stream.read(100)
        pieces = list(stream.chunks())
    assert head + b"".join(pieces) == plain
    assert max(len(p) for p in pieces) <= 1 << 20  # a bomb never sits in memory whole

    stream = LayerStream(iter(chunks), digest(blob), digest(b"other"), "layer")
    with pytest.raises(ImageError, match="diff_id"):
        for _ in stream.chunks():
            pass
    stream.close()
