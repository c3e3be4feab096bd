"""The index client against a real server on 127.0.0.1: pages, metadata, hashes."""

from __future__ import annotations

import hashlib
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
        fetched = sum(
            int(r.split("-")[1]) - int(r.split("=")[1].split("-")[0]) + 1 for r in server.ranges
        )
        assert server.ranges and fetched < len(entry.data) / 2  # not the whole wheel
        # cached by sha256: the next answer needs no request at all
        before = len(server.requests)
        assert client.core_metadata(url, entry.sha256) == text
        assert len(server.requests) == before
        client.close()


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
