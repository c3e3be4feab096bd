"""System probes against fake /sys, /proc and /etc trees and fake commands on PATH."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lockd.errors import ConfigError
from lockd.snapshot import Available, DriverVersion, Unavailable, system

PROC_OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Wed May 21 22:10:39 UTC 2025\n"
)
PROC_PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
)


def put(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def command(bin_dir: Path, name: str, script: str) -> None:
    """A fake command: a shell script on the PATH given to the probe."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


@pytest.fixture
def env(bin_dir: Path) -> dict[str, str]:
    """Only the fake commands are on the PATH (they use shell builtins); no override set."""
    return {"PATH": str(bin_dir)}


def test_override_variable_comes_first(tmp_path: Path, env: dict[str, str]) -> None:
    put(tmp_path, "sys/module/nvidia/version", "550.54.14\n")
    found = system.probe_driver(tmp_path, {**env, "LOCKD_CUDA_DRIVER_VERSION": "535.104.05"})
    assert found == Available(DriverVersion("535.104.05", "LOCKD_CUDA_DRIVER_VERSION"))


def test_a_bad_override_is_a_configuration_error(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="LOCKD_CUDA_DRIVER_VERSION='latest'"):
        system.probe_driver(tmp_path, {**env, "LOCKD_CUDA_DRIVER_VERSION": "latest"})


def test_sys_module_before_proc(tmp_path: Path, env: dict[str, str]) -> None:
    put(tmp_path, "sys/module/nvidia/version", "550.54.14\n")
    put(tmp_path, "proc/driver/nvidia/version", PROC_OPEN)
    found = system.probe_driver(tmp_path, env)
    assert found == Available(DriverVersion("550.54.14", "/sys/module/nvidia/version"))


@pytest.mark.parametrize(
    ("text", "version"), [(PROC_OPEN, "575.57.08"), (PROC_PROPRIETARY, "550.54.14")]
)
def test_proc_in_both_formats(tmp_path: Path, env: dict[str, str], text: str, version: str) -> None:
    put(tmp_path, "sys/module/nvidia/version", "garbage\n")  # unreadable: fall through
    put(tmp_path, "proc/driver/nvidia/version", text)
    found = system.probe_driver(tmp_path, env)
    assert found == Available(DriverVersion(version, "/proc/driver/nvidia/version"))


def test_nvidia_smi_last(tmp_path: Path, env: dict[str, str], bin_dir: Path) -> None:
    command(
        bin_dir,
        "nvidia-smi",
        '[ "$1" = "--query-gpu=driver_version" ] && [ "$2" = "--format=csv,noheader" ] || exit 9\n'
        "echo 560.35.03\necho 560.35.03\n",
    )
    found = system.probe_driver(tmp_path, env)
    assert found == Available(DriverVersion("560.35.03", "nvidia-smi"))


def test_no_driver_says_what_was_tried(tmp_path: Path, env: dict[str, str], bin_dir: Path) -> None:
    found = system.probe_driver(tmp_path, env)
    assert isinstance(found, Unavailable)
    assert "/sys/module/nvidia/version absent" in found.reason
    assert "/proc/driver/nvidia/version absent" in found.reason
    assert "nvidia-smi not on PATH" in found.reason

    command(bin_dir, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    failed = system.probe_driver(tmp_path, env)
    assert isinstance(failed, Unavailable)
    assert "nvidia-smi failed with exit code 9: NVIDIA-SMI has failed" in failed.reason


def test_cuda_toolkit_from_version_json_then_variables(tmp_path: Path) -> None:
    assert isinstance(system.probe_cuda(tmp_path, {}), Unavailable)
    from_env = system.probe_cuda(tmp_path, {"CUDA_VERSION": "12.4.1"})
    assert isinstance(from_env, Available)
    assert (from_env.value.version, from_env.value.source) == ("12.4.1", "CUDA_VERSION")
    put(tmp_path, "usr/local/cuda/version.json", json.dumps({"cuda": {"version": "12.6.3"}}))
    from_file = system.probe_cuda(tmp_path, {"CUDA_VERSION": "12.4.1"})
    assert isinstance(from_file, Available)
    assert from_file.value.version == "12.6.3"
    assert from_file.value.env == {"CUDA_VERSION": "12.4.1"}


def test_os_release_with_fallback(tmp_path: Path) -> None:
    assert isinstance(system.probe_os_release(tmp_path), Unavailable)
    put(tmp_path, "usr/lib/os-release", "ID=alpine\n")
    assert system.probe_os_release(tmp_path) == Available({"ID": "alpine"})
    put(tmp_path, "etc/os-release", "ID=debian\n")
    assert system.probe_os_release(tmp_path) == Available({"ID": "debian"})


def test_dpkg_through_a_fake_dpkg_query(env: dict[str, str], bin_dir: Path) -> None:
    assert system.probe_dpkg(env) == Unavailable("dpkg-query not on PATH")
    command(
        bin_dir,
        "dpkg-query",
        "printf 'ii \\tlibc6:amd64\\t2.36-9\\tamd64\\nrc \\tgone\\t1\\tamd64\\n'\n",
    )
    packages = system.probe_dpkg(env)
    assert isinstance(packages, Available)
    assert [(p.name, p.version) for p in packages.value] == [("libc6:amd64", "2.36-9")]


def test_probe_with_nothing_available_records_every_reason(
    tmp_path: Path, env: dict[str, str]
) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    info = system.probe([str(site)], root=tmp_path / "root", environ=env)
    assert isinstance(info.dpkg, Unavailable)
    assert isinstance(info.driver, Unavailable)
    assert isinstance(info.cuda, Unavailable)
    assert isinstance(info.os_release, Unavailable)
    assert isinstance(info.libraries, Available)
    assert info.libraries.value.scanned == 0
    without_site = system.probe([], root=tmp_path, environ=env)
    assert isinstance(without_site.libraries, Unavailable)


@pytest.mark.skipif(not hasattr(os, "confstr"), reason="POSIX only")
def test_the_real_host(tmp_path: Path) -> None:
    """Smoke test on this machine: probes answer or say why, and never raise."""
    info = system.probe([str(tmp_path)])
    glibc = info.glibc
    if isinstance(glibc, Available):
        assert glibc.value[0].isdigit()
    if Path("/etc/os-release").exists():
        assert isinstance(info.os_release, Available)
