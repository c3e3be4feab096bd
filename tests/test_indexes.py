"""The index client against a real server on 127.0.0.1: pages, metadata, hashes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lockd.errors import PackageIndexError
from lockd.indexes import IndexClient, files_of_version, listed_versions, requires_dist
from tests.support.pyindex import serve
from tests.support.wheels import WheelSpec

BIG = {f"big/data{i}.bin": "x" * 40_000 + str(i) for i in range(40)}  # a wheel of ~1.6 MB


def test_metadata_without_pep_658_is_read_by_byte_ranges(tmp_path: Path) -> None:
    with serve() as server:
        index = server.pytorch("cu124")
        spec = WheelSpec(
            "torch",
            "2.6.0",
            "cp311-cp311-manylinux_2_28_aarch64",
            requires=(
                "filelock",
                'nvidia-cuda-runtime-cu12==12.4.127; platform_machine == "x86_64"',
            ),
            files=BIG,
        )
        entry = index.add(spec, upload_time=None, serve_metadata=False)
        client = IndexClient(metadata_cache=tmp_path)
        url = f"{server.url}{index.file_path(entry)}"
        text = client.core_metadata(url, entry.sha256)
        assert requires_dist(text)[1].startswith("nvidia-cuda-runtime-cu12==12.4.127")
        fetched = sum(last - first + 1 for first, last in server.served)
        assert server.ranges and fetched < len(entry.data) / 2  # not the whole wheel
        # no HEAD: the first range asks for the tail, whose answer tells the size too
        assert server.heads == []
        assert server.ranges[0] == f"bytes=-{256 * 1024}"
        # cached by sha256: the next answer needs no request at all
        before = len(server.requests)
        assert client.core_metadata(url, entry.sha256) == text
        assert len(server.requests) == before
        client.close()


@pytest.mark.parametrize("answers_ranges", [True, False])
def test_metadata_of_a_small_wheel_or_from_a_server_without_ranges(answers_ranges: bool) -> None:
    """A wheel smaller than one block is read whole by the first range request; a server
    that ignores ranges sends the whole file, which then is the only way."""
    with serve() as server:
        server.answers_ranges = answers_ranges
        index = server.pypi()
        spec = WheelSpec("demo", "1.0", requires=("filelock>=3",))
        entry = index.add(spec, serve_metadata=False)
        client = IndexClient()
        text = client.core_metadata(f"{server.url}{index.file_path(entry)}")
        client.close()
    assert requires_dist(text) == ["filelock>=3"]
    assert server.served == ([(0, len(entry.data) - 1)] if answers_ranges else [])
    assert server.heads == []


def test_a_file_that_is_not_a_wheel_is_a_clear_error() -> None:
    with serve() as server:
        index = server.pytorch("cpu")
        entry = index.add(WheelSpec("torch", "2.6.0"), upload_time=None, serve_metadata=False)
        object.__setattr__(entry, "data", b"not a zip at all" * 100)
        client = IndexClient()
        with pytest.raises(PackageIndexError, match="Cannot read the metadata"):
            client.core_metadata(f"{server.url}{index.file_path(entry)}")
        client.close()


def test_project_pages_list_versions_and_hashes() -> None:
    with serve() as server:
        variant = server.pytorch("cu124")
        tagged = variant.add(
            WheelSpec("torch", "2.6.0+cu124", "cp311-cp311-linux_x86_64"), upload_time=None
        )
        variant.add(
            WheelSpec("torch", "2.5.1+cu124", "cp311-cp311-linux_x86_64"),
            upload_time=None,
            publish_hash=False,
        )
        client = IndexClient()
        links = client.project_links(f"{server.url}/whl/cu124", "torch")
        client.close()
    assert listed_versions(links) == ("2.6.0+cu124", "2.5.1+cu124")
    assert files_of_version(links, "2.6.0+cu124") == {tagged.spec.filename: tagged.sha256}
    assert files_of_version(links, "2.5.1+cu124") == {
        "torch-2.5.1+cu124-cp311-cp311-linux_x86_64.whl": None
    }
    assert tagged.sha256 == hashlib.sha256(tagged.data).hexdigest()


def test_a_client_imports_httpx_on_its_first_request_only() -> None:
    """A compile makes its client before it starts uv, and asks nothing until a uv run
    is done: httpx's imports happen then (or in the store's thread), not before uv."""
    probe = (
        "import sys\n"
        "from lockd.indexes import IndexClient\n"
        "client = IndexClient()\n"
        "print('httpx' in sys.modules)\n"
        "client.close()\n"
        "print('httpx' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_a_cached_metadata_file_is_used_only_when_its_hash_line_matches(tmp_path: Path) -> None:
    """The cache is written without fsync: a file a crash left short, one edited, or
    one from an older lockd (no hash line) is asked for again and replaced; a hash
    that is not one never names a file."""
    cache = tmp_path / "cache"
    with serve() as server:
        index = server.pypi()
        entry = index.add(WheelSpec("demo", "1.0", requires=("filelock>=3",)))
        url = f"{server.url}{index.file_path(entry)}"
        client = IndexClient(metadata_cache=cache)
        text = client.core_metadata(url, entry.sha256)
        cached = cache / f"{entry.sha256}.METADATA"
        good = cached.read_bytes()
        assert good.endswith(text.encode()) and good.startswith(b"lockd-metadata sha256=")
        for damaged in (good[: len(good) // 2], text.encode(), good.replace(b"filelock", b"fi")):
            cached.write_bytes(damaged)
            before = len(server.requests)
            assert client.core_metadata(url, entry.sha256) == text
            assert len(server.requests) == before + 1  # asked again
            assert cached.read_bytes() == good  # and replaced
        before = len(server.requests)
        assert client.core_metadata(url, entry.sha256) == text
        assert len(server.requests) == before  # the good file answers
        assert client.core_metadata(url, "../../escape") == text
        client.close()
    assert sorted(p.name for p in cache.iterdir()) == [cached.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_a_ranged_file_reads_every_span_as_the_file_has_it() -> None:
    """Reads before, across and inside the tail fetched first: the bytes of the file,
    each block asked for once, nothing past the tail's start asked again."""
    from lockd.indexes import _HttpRangeFile

    data = hashlib.shake_256(b"issue 14").digest(3 * _HttpRangeFile.BLOCK + 12_345)
    with serve() as server:
        index = server.pypi()
        entry = index.add(WheelSpec("blob", "1.0"), serve_metadata=False)
        object.__setattr__(entry, "data", data)
        url = f"{server.url}{index.file_path(entry)}"
        client = IndexClient()
        tail = data[-_HttpRangeFile.BLOCK :]
        remote = _HttpRangeFile(client._client, url, len(data), tail)
        tail_start = len(data) - len(tail)
        spans = [(0, 10), (tail_start - 7, 20), (tail_start, 5), (len(data) - 3, 10)]
        spans += [(_HttpRangeFile.BLOCK - 1, _HttpRangeFile.BLOCK + 2), (5, len(data))]
        for start, length in spans:
            remote.seek(start)
            assert remote.read(length) == data[start : start + length], (start, length)
        client.close()
    assert all(last < tail_start for _, last in server.served)  # the tail is never asked
    assert len(server.served) == len(set(server.served))  # each block once


def test_a_json_page_of_any_shape_is_an_index_error_or_its_valid_files() -> None:
    # pages come from any server (a forged lockd.json names its own): never a traceback
    good = {"filename": "x-1.0-py3-none-any.whl", "url": "x-1.0-py3-none-any.whl"}
    bodies = {
        "/broken/x/": b"{not json",
        "/list/x/": b"[]",
        "/odd/x/": json.dumps(
            {"files": [{}, {"filename": 1, "url": "u"}, "text", {**good, "hashes": []}]}
        ).encode(),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    client = IndexClient()
    try:
        with pytest.raises(PackageIndexError, match="is not valid JSON"):
            client.project_links(f"{base}/broken", "x")
        assert client.project_links(f"{base}/list", "x") == []
        (link,) = client.project_links(f"{base}/odd", "x")
        assert link.filename == good["filename"] and link.sha256 is None
        with pytest.raises(PackageIndexError):
            client.project_links(f"{base}/\x1b[31m", "x")  # a URL httpx refuses
    finally:
        client.close()
        server.shutdown()
        server.server_close()
