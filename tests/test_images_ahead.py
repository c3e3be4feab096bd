"""Blob digests of file-backed layers checked ahead by a child process (``images/_ahead``)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from lockd import processes
from lockd.errors import ImageError
from lockd.images import InspectRequest, RegistryOptions, VerifiedLayers, _ahead, inspect_image
from lockd.images._ahead import digests_ahead
from lockd.images._blobs import LayerStream
from lockd.images._facts import classify
from lockd.images._inspect import read_rootfs
from lockd.images._sources import open_source
from lockd.snapshot import Available
from tests.support.images import Image, Layer, write_oci_layout


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layout(tmp_path: Path, *salts: bytes) -> tuple[Path, list[bytes], list[str]]:
    layers = [Layer().file("etc/os-release", "ID=debian\n").file("big.bin", os.urandom(3 << 20))]
    layers += [Layer().file(f"opt/{i}.txt", salt) for i, salt in enumerate(salts)]
    parts = Image(layers).parts()
    write_oci_layout(tmp_path / "layout", parts, "v1")
    diff_ids = json.loads(parts.config)["rootfs"]["diff_ids"]
    return tmp_path / "layout", [blob for blob, _ in parts.layers], diff_ids


def _blob_file(layout: Path, blob: bytes) -> Path:
    return layout / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()


class _Spy:
    """Counts the digests the child hands over."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[int] = []
        real = _ahead.DigestsAhead.result

        def result(ahead: _ahead.DigestsAhead, index: int, what: str) -> tuple[str, int]:
            self.asked.append(index)
            return real(ahead, index, what)

        monkeypatch.setattr(_ahead.DigestsAhead, "result", result)


def test_layout_blobs_are_hashed_by_a_child_and_no_pair_is_taken_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, _, _ = _layout(tmp_path, b"one", b"two")
    spy = _Spy(monkeypatch)
    verified = VerifiedLayers(tmp_path / "layers")
    request = InspectRequest(f"oci:{layout}:v1", None, RegistryOptions(), verified)
    snap = inspect_image(request).snapshot
    assert snap.system_info is not None
    assert snap.system_info.os_release == Available({"ID": "debian"})
    assert spy.asked == [0, 1, 2]  # every layer's digest came from the child
    # The child read the files apart from the bytes parsed here: no pair is proven by it.
    assert not verified.root.exists()
    assert not processes._running  # the child was reaped


def test_a_tampered_layout_blob_fails_the_read_with_the_digest_error(tmp_path: Path) -> None:
    layout, blobs, _ = _layout(tmp_path, b"one")
    path = _blob_file(layout, blobs[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the deflate stream: the digest speaks first
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"layer 1/2 .* does not match its digest"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))
    assert not processes._running


def test_a_failed_read_stops_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout, blobs, _ = _layout(tmp_path, b"one", b"two")
    _blob_file(layout, blobs[1]).write_bytes(gzip.compress(b"not a tar" * 1000))
    started: list[int] = []
    real = processes.piped_child

    def spied(command: list[str], **kwargs: object) -> object:
        context = real(command, **kwargs)  # type: ignore[arg-type]
        started.append(1)
        return context

    monkeypatch.setattr(processes, "piped_child", spied)
    with pytest.raises(ImageError, match="layer 2/3"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))
    assert started and not processes._running


def test_without_a_child_the_blobs_are_hashed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, blobs, diff_ids = _layout(tmp_path, b"one")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    verified = VerifiedLayers(tmp_path / "layers")
    inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions(), verified))
    pairs = {f"{_digest(b)[7:]}.{d[7:]}" for b, d in zip(blobs, diff_ids, strict=True)}
    assert {p.name for p in verified.root.iterdir()} == pairs  # hashed here: pairs proven

    path = _blob_file(layout, blobs[1])
    path.write_bytes(path.read_bytes() + b"\0")  # trailing bytes: still a readable gzip
    with pytest.raises(ImageError, match="does not match its digest"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))


def test_known_layers_are_not_handed_to_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, blobs, diff_ids = _layout(tmp_path, b"one", b"two")
    verified = VerifiedLayers(tmp_path / "layers")
    verified.remember(_digest(blobs[1]), diff_ids[1])  # as a registry read of it would
    spy = _Spy(monkeypatch)
    with open_source(f"oci:{layout}:v1") as source:
        read_rootfs(source, source.manifest(None), classify, None, verified)
    assert spy.asked == [0, 1]  # layers 1 and 3, in the child's order; layer 2 hashed here


def test_the_child_reports_each_file_in_order(tmp_path: Path) -> None:
    first, second, fifo = tmp_path / "a", tmp_path / "b", tmp_path / "fifo"
    first.write_bytes(b"a" * 3_000_000)
    second.write_bytes(b"")
    os.mkfifo(fifo)
    files = [(first, 3_000_000), (tmp_path / "missing", 1), (second, 0), (fifo, 1), (first, 10)]
    with digests_ahead(files) as ahead:
        assert ahead is not None
        assert ahead.result(0, "a") == (_digest(b"a" * 3_000_000), 3_000_000)
        with pytest.raises(ImageError, match="b could not be read to check its digest: 'No such"):
            ahead.result(1, "b")
        assert ahead.result(2, "c") == (_digest(b""), 0)
        with pytest.raises(ImageError, match="'not a regular file'"):  # never waited on
            ahead.result(3, "d")
        assert ahead.result(4, "e") == (_digest(b"a" * 11), 11)  # no further than size + 1
        with pytest.raises(ImageError, match="the hasher stopped"):
            ahead.result(5, "f")
    with digests_ahead([]) as nothing:
        assert nothing is None


def test_a_layout_blob_that_is_no_regular_file_or_too_long_is_refused(tmp_path: Path) -> None:
    layout, blobs, _ = _layout(tmp_path, b"one")
    path = _blob_file(layout, blobs[1])
    path.unlink()
    os.mkfifo(path)  # opened by both readers: neither may wait for a writer
    with pytest.raises(ImageError, match=r"no readable layer .*: not a regular file"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))
    path.unlink()
    path.symlink_to("/dev/zero")  # endless
    with pytest.raises(ImageError, match="not a regular file"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))
    path.unlink()
    path.write_bytes(blobs[1] + b"\0" * (8 << 20))  # read no further than its size + 1
    with pytest.raises(ImageError, match=f"its {len(blobs[1]) + 1} bytes hash to"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))


def test_a_digest_from_elsewhere_is_checked_and_speaks_before_a_broken_stream() -> None:
    plain = os.urandom(1 << 20)
    blob = gzip.compress(plain)
    chunks = [blob[i : i + 70_000] for i in range(0, len(blob), 70_000)]
    right = (_digest(blob), len(blob))
    with LayerStream(
        iter(chunks), right[0], _digest(plain), "layer", digest_elsewhere=lambda: right
    ) as stream:
        assert b"".join(stream.chunks()) == plain
    assert (stream.size, stream.compressed_size, stream.compression) == (
        len(plain),
        len(blob),
        "gzip",
    )
    wrong = (_digest(b"other"), 5)
    with pytest.raises(ImageError, match="its 5 bytes hash to"):  # noqa: SIM117
        with LayerStream(iter(chunks), right[0], None, "layer", digest_elsewhere=lambda: wrong):
            pass
    broken = [blob[:-9]]
    with pytest.raises(ImageError, match="does not match its digest"):  # noqa: SIM117
        with LayerStream(iter(broken), right[0], None, "layer", digest_elsewhere=lambda: wrong):
            pass
    with pytest.raises(ImageError, match="not a readable gzip stream"):  # noqa: SIM117
        with LayerStream(iter(broken), right[0], None, "layer", digest_elsewhere=lambda: right):
            pass


def test_a_layout_whose_index_is_not_json_is_named_as_such(tmp_path: Path) -> None:
    layout, _, _ = _layout(tmp_path, b"one")
    (layout / "index.json").write_text("[[[")
    with pytest.raises(ImageError, match=r"^The index.json of the OCI layout .* is not a JSON"):
        inspect_image(InspectRequest(f"oci:{layout}:v1", None, RegistryOptions()))
