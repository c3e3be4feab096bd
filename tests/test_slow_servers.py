"""Servers that trickle one byte per 100 ms hit an overall deadline, not only a read timeout.

lockd's own HTTP clients (index pages and downloads, registries) give every
request ``LOCKD_HTTP_DEADLINE`` seconds, headers and body together; uv gets
``LOCKD_UV_DEADLINE`` of wall-clock time. Messages echo bounded references.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lockd.errors import PackageIndexError, RegistryError
from tests.support.pyindex import IndexServer
from tests.support.trickle import trickle_server

MATRIX = ["--platform", "linux-x86_64", "--python", "3.11"]


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_index_client_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    from lockd.indexes import IndexClient

    monkeypatch.setenv("LOCKD_HTTP_DEADLINE", "1")
    with trickle_server(mode) as server:
        client = IndexClient()
        started = time.monotonic()
        try:
            with pytest.raises(PackageIndexError) as caught:
                client.project_links(f"{server.url}/simple", "torch")
        finally:
            client.close()
        elapsed = time.monotonic() - started
    # a read timeout (30 s) never fires: a byte arrives every 100 ms
    assert 0.9 < elapsed < 3, elapsed
    assert "LOCKD_HTTP_DEADLINE" in caught.value.render()


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_registry_client_gives_up_at_the_deadline_without_retrying(mode: str) -> None:
    from lockd.images import RegistryClient, RegistryOptions

    with trickle_server(mode) as server:
        options = RegistryOptions(deadline=1.0, attempts=4, sleep=lambda _: None)
        started = time.monotonic()
        with RegistryClient(options) as client, pytest.raises(RegistryError) as caught:
            client.resolve(f"{server.host}/app:1")
        elapsed = time.monotonic() - started
        assert len(server.requests) == 1  # a trickle trickles again: no retries
    assert 0.9 < elapsed < 3, elapsed
    assert "LOCKD_HTTP_DEADLINE" in caught.value.render()


def test_images_resolve_stops_at_the_deadline(lockd) -> None:
    with trickle_server("body") as server:
        started = time.monotonic()
        run = lockd("images", "resolve", f"{server.host}/app:1", env={"LOCKD_HTTP_DEADLINE": "1"})
        elapsed = time.monotonic() - started
    assert run.returncode == 3, run.output
    assert "Traceback" not in run.output
    assert "LOCKD_HTTP_DEADLINE" in run.stderr
    assert elapsed < 10, elapsed


def test_drift_stops_a_trickled_index_page_at_the_deadline(
    lockd, tmp_path: Path, world: IndexServer
) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    assert lockd("compile", *MATRIX, "--cuda", "cpu").returncode == 0
    world.trickle.add("/simple/filelock/")
    started = time.monotonic()
    try:
        # Only lockd's own client reads the index here: is every locked file still served?
        run = lockd(
            "drift",
            "--no-rebuild",
            "--no-creep",
            "--no-images",
            "--format",
            "json",
            env={"LOCKD_HTTP_DEADLINE": "2"},
        )
    finally:
        world.trickle.discard("/simple/filelock/")
    elapsed = time.monotonic() - started
    assert run.returncode == 3, run.output
    assert "Traceback" not in run.output
    assert "LOCKD_HTTP_DEADLINE" in run.stdout
    assert elapsed < 20, elapsed  # the trickled page alone takes a minute


def test_uv_is_stopped_at_its_deadline(lockd, tmp_path: Path, world: IndexServer) -> None:
    (tmp_path / "requirements.in").write_text("requests\n")
    world.trickle.add("/simple/requests/")
    started = time.monotonic()
    try:
        run = lockd("compile", *MATRIX, "--refresh", env={"LOCKD_UV_DEADLINE": "3"})
    finally:
        world.trickle.discard("/simple/requests/")
    elapsed = time.monotonic() - started
    assert run.returncode == 3, run.output
    assert "Traceback" not in run.output
    assert "did not finish within 3 s" in run.stderr and "LOCKD_UV_DEADLINE" in run.stderr
    assert elapsed < 20, elapsed  # the trickled page alone takes a minute


@pytest.mark.parametrize("variable", ["LOCKD_HTTP_DEADLINE", "LOCKD_UV_DEADLINE"])
@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf"])
def test_a_bad_deadline_is_a_configuration_error(
    lockd, tmp_path: Path, variable: str, value: str
) -> None:
    (tmp_path / "requirements.in").write_text("requests\n")
    run = lockd("compile", *MATRIX, env={variable: value})
    assert run.returncode == 2, run.output
    assert run.stderr.startswith(f"error: {variable}=")


@pytest.mark.parametrize(
    "reference",
    [
        "a" * 100_000,
        "127.0.0.1:5000/app:" + "t" * 100_000,
        "ghcr.io/" + "Bad" * 30_000,
        "x" * 300 + ".example/app:1",
    ],
)
def test_references_echoed_in_errors_are_bounded(lockd, reference: str) -> None:
    run = lockd("images", "resolve", reference, "--format", "json")
    assert run.returncode == 2, run.output
    assert "Traceback" not in run.output
    assert len(run.stderr) < 600, run.stderr


def test_dockerfile_lines_echoed_in_errors_are_bounded(lockd, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM " + "a b " * 50_000 + "\n")
    run = lockd("images", "pin", "Dockerfile")
    assert run.returncode == 1, run.stderr[:300]  # a FROM images pin cannot pin
    assert "Traceback" not in run.stderr
    assert len(run.stderr) < 600, run.stderr[:300]
