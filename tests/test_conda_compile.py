"""`lockd compile environment.yml`: conda locks per platform × CUDA, recorded with the pip side."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.channel import ChannelServer, pytorch_channel, serve_channels, unused_port
from tests.support.pyindex import IndexServer


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    root = tmp_path_factory.mktemp("channels")
    pytorch_channel().write(root / "conda-forge")
    with serve_channels(root) as server:
        yield server


def environment(tmp_path: Path, pip: str = "") -> Path:
    text = (
        "name: model\nchannels: [conda-forge]\n"
        "dependencies:\n  - python=3.11\n  - pytorch\n  - numpy\n"
    )
    if pip:
        text += f"  - pip:\n    - {pip}\n"
    path = tmp_path / "environment.yml"
    path.write_text(text)
    return path


def test_conda_targets_are_locked_verified_and_recorded(
    lockd, tmp_path: Path, channel: ChannelServer, world: IndexServer
) -> None:
    environment(tmp_path, pip="requests")
    run = lockd(
        "compile",
        "environment.yml",
        "--cuda",
        "12.4",
        "--cuda",
        "cpu",
        "--platform",
        "linux-x86_64",
        "--format",
        "json",
        env={"LOCKD_CONDA_CHANNEL": channel.url},
    )
    assert run.returncode == 0, run.output
    result = json.loads(run.stdout)
    flavours = {t["target"]: t["flavour"] for t in result["targets"]}
    assert flavours == {
        "linux-x86_64-cu124": "cuda 12.4",
        "linux-x86_64-cpu": "cpu",
        # the pip: section, locked for the Python the conda solution chose
        "linux-x86_64-py311-cu124": None,
        "linux-x86_64-py311-cpu": None,
    }
    locks = tmp_path / "locks"
    cuda_lock = (locks / "conda-lock.linux-x86_64-cu124.yml").read_text()
    assert "cuda124_generic" in cuda_lock and "md5:" in cuda_lock and "sha256:" in cuda_lock
    assert "cpu_generic" in (locks / "conda-lock.linux-x86_64-cpu.yml").read_text()
    assert (locks / "pylock.linux-x86_64-py311-cu124.toml").exists()
    doc = json.loads((locks / "lockd.json").read_text())
    assert doc["extra"]["conda"]["specs"] == ["python=3.11", "pytorch", "numpy"]
    conda_lock = next(lock for lock in doc["locks"] if lock["target"] == "linux-x86_64-cu124")
    assert all(
        a["kind"] == "conda" and len(a["sha256"]) == 64 and a["md5"]
        for a in conda_lock["artifacts"]
    )
    # The graph from the solver's records: roots from environment.yml, edges from depends
    # (__cuda is virtual, never locked: no edge).
    graph = conda_lock["graph"]
    assert {r["package"]: r["requirement"] for r in graph["roots"]} == {
        "python": "python=3.11",
        "pytorch": "pytorch",
        "numpy": "numpy",
    }
    assert {r["source"] for r in graph["roots"]} == {"environment.yml"}
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {
        ("numpy", "python"),
        ("pytorch", "python"),
        ("pytorch", "cuda-version"),
    }
    pip_lock = next(lock for lock in doc["locks"] if lock["target"] == "linux-x86_64-py311-cu124")
    assert [r["source"] for r in pip_lock["graph"]["roots"]] == ["environment.yml (pip:)"]
    shown = json.loads(lockd("show", result["lockset"], "--format", "json").stdout)
    assert set(shown["targets"]) == set(flavours)
    # unchanged inputs: a no-op
    again = lockd(
        "compile",
        "environment.yml",
        "--cuda",
        "12.4",
        "--cuda",
        "cpu",
        "--platform",
        "linux-x86_64",
        env={"LOCKD_CONDA_CHANNEL": channel.url},
    )
    assert "Nothing changed" in again.stdout
    # drift: conda locks are checked against the channel's repodata, the pip side rebuilt
    drift = lockd(
        "drift",
        "--no-creep",
        "--target",
        "linux-x86_64-cu124",
        "--format",
        "json",
        env={"LOCKD_CONDA_CHANNEL": channel.url},
    )
    assert drift.returncode == 0, drift.output
    assert json.loads(drift.stdout)["checks"] == ["conda:linux-x86_64-cu124"]


def test_cuda_version_without_builds_fails_with_what_exists(
    lockd, tmp_path: Path, channel: ChannelServer
) -> None:
    environment(tmp_path)
    run = lockd(
        "compile",
        "environment.yml",
        "--cuda",
        "cu126",
        "--platform",
        "linux-x86_64",
        env={"LOCKD_CONDA_CHANNEL": channel.url},
    )
    assert run.returncode == 3, run.output
    assert "Traceback" not in run.output
    assert "11.8" in run.stderr and "12.4" in run.stderr
    assert not (tmp_path / "locks").exists()


def test_pip_section_and_pip_inputs_together_are_refused(
    lockd, tmp_path: Path, channel: ChannelServer
) -> None:
    environment(tmp_path, pip="requests")
    (tmp_path / "requirements.in").write_text("idna\n")
    run = lockd(
        "compile", "environment.yml", "requirements.in", env={"LOCKD_CONDA_CHANNEL": channel.url}
    )
    assert run.returncode == 2, run.output
    assert "pip: section" in run.stderr


def test_channel_credentials_never_reach_the_record(
    lockd, tmp_path: Path, channel: ChannelServer
) -> None:
    environment(tmp_path)
    host = channel.url.removeprefix("http://")
    run = lockd(
        "compile",
        "environment.yml",
        "--cuda",
        "cpu",
        "--platform",
        "linux-x86_64",
        "--format",
        "json",
        env={"LOCKD_CONDA_CHANNEL": f"http://conda-user:s3cret-tok@{host}"},
    )
    assert run.returncode == 0, run.output
    blobs = [run.output] + [p.read_text() for p in (tmp_path / "locks").iterdir()]
    blobs.append((tmp_path / "lockd-home" / "lockd.db").read_bytes().decode("latin-1"))
    assert not [b for b in blobs if "s3cret-tok" in b or "conda-user" in b]


# conda-lock's vendored code warns about itself at import (its frozendict, and an
# importlib.resources call); neither is lockd's.
@pytest.mark.filterwarnings(
    "ignore:conda_lock._vendor.conda._vendor.frozendict:PendingDeprecationWarning"
)
@pytest.mark.filterwarnings("ignore:path is deprecated. Use files\\(\\) instead:DeprecationWarning")
def test_conda_lock_itself_reads_the_lock_files(
    lockd, tmp_path: Path, channel: ChannelServer
) -> None:
    from conda_lock.lockfile import parse_conda_lock_file

    environment(tmp_path)
    run = lockd(
        "compile",
        "environment.yml",
        "--cuda",
        "12.4",
        "--platform",
        "linux-x86_64",
        env={"LOCKD_CONDA_CHANNEL": channel.url},
    )
    assert run.returncode == 0, run.output
    path = tmp_path / "locks" / "conda-lock.linux-x86_64-cu124.yml"
    parsed = parse_conda_lock_file(path)
    by_name = {p.name: p for p in parsed.package}
    assert {"python", "pytorch", "numpy", "cuda-version"} <= set(by_name)
    assert "cuda124" in by_name["pytorch"].url
    recorded = json.loads((tmp_path / "locks" / "lockd.json").read_text())
    lock = next(lock for lock in recorded["locks"] if lock["target"] == "linux-x86_64-cu124")
    for artifact in lock["artifacts"]:
        assert by_name[artifact["name"]].hash.sha256 == artifact["sha256"]
        assert by_name[artifact["name"]].hash.md5 == artifact["md5"]


def test_conda_drift_finds_creep_and_replaced_archives(lockd, tmp_path: Path) -> None:
    from tests.support.channel import CondaPkg

    root = tmp_path / "channels"
    channel_data = pytorch_channel()
    channel_data.write(root / "conda-forge")
    environment(tmp_path)
    with serve_channels(root) as server:
        env = {"LOCKD_CONDA_CHANNEL": server.url}
        args = ["compile", "environment.yml", "--cuda", "12.4", "--platform", "linux-x86_64"]
        assert lockd(*args, env=env).returncode == 0
        clean = lockd("drift", "--format", "json", env=env)
        assert clean.returncode == 0, clean.output
        assert json.loads(clean.stdout)["checks"] == [
            "conda:linux-x86_64-cu124",
            "creep:linux-x86_64-cu124",
        ]
        # upstream publishes a newer numpy: a solve today would take it
        pin = "python >=3.11,<3.12.0a0"
        channel_data.add(CondaPkg("numpy", "2.1.0", "py311h0000000_0", "linux-64", depends=(pin,)))
        channel_data.write(root / "conda-forge")
        crept = json.loads(lockd("drift", "--format", "json", env=env).stdout)
        assert [
            (f["kind"], f["package"], f["expected"], f["actual"]) for f in crept["findings"]
        ] == [("version-creep", "numpy", "2.0.1", "2.1.0")]
        # a locked archive replaced under the same name: its sha256 changed in repodata
        repodata = root / "conda-forge" / "noarch" / "repodata.json"
        data = json.loads(repodata.read_text())
        data["packages"]["tzdata-2024a-h0c530f3_0.tar.bz2"]["sha256"] = "0" * 64
        entry = next(k for k in data["packages"] if k.startswith("cuda-version-12.4"))
        data["packages"][entry]["sha256"] = "f" * 64
        repodata.write_text(json.dumps(data))
        changed = lockd("drift", "--no-creep", "--format", "json", env=env)
        assert changed.returncode == 1, changed.output
        kinds = {(f["kind"], f["package"]) for f in json.loads(changed.stdout)["findings"]}
        assert ("artifact-changed", "cuda-version") in kinds


def test_a_trickling_channel_stops_at_the_deadline(lockd, tmp_path: Path) -> None:
    """rattler's own timeouts never fire on a byte per 100 ms: the whole solve has a deadline."""
    from tests.support.trickle import trickle_server

    environment(tmp_path)
    with trickle_server("body") as server:
        started = time.monotonic()
        run = lockd(
            "compile", "environment.yml", "--cuda", "cpu", "--platform", "linux-x86_64",
            env={"LOCKD_CONDA_CHANNEL": server.url, "LOCKD_UV_DEADLINE": "2"},
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert run.returncode == 3, run.output
    assert "The conda solve did not finish within 2 s" in run.stderr
    assert "LOCKD_UV_DEADLINE" in run.stderr and "Traceback" not in run.output
    assert elapsed < 30, elapsed


def test_a_failing_credentialed_channel_keeps_its_credentials(lockd, tmp_path: Path) -> None:
    environment(tmp_path)
    run = lockd(
        "compile", "environment.yml", "--cuda", "cpu", "--platform", "linux-x86_64",
        env={"LOCKD_CONDA_CHANNEL": f"http://conda-user:s3cret-tok@127.0.0.1:{unused_port()}"},
    )  # fmt: skip
    assert run.returncode == 3, run.output
    assert "could not be read" in run.stderr and "127.0.0.1" in run.stderr
    assert "s3cret-tok" not in run.output and "conda-user" not in run.output
