"""Snapshots of real virtual environments built by uv from wheels built in code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockd.errors import UsageError
from lockd.snapshot import (
    Available,
    LibraryStatus,
    Snapshot,
    TorchKind,
    Unavailable,
    resolve_python,
    take_snapshot,
)
from tests.conftest import hermetic_env
from tests.support.wheels import WheelSpec, make_venv, write_wheels

ROOT = Path(__file__).resolve().parent.parent

CUDA_VERSION_PY = """\
from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'xpu']
__version__ = '2.4.0+cu124'
debug = False
cuda: Optional[str] = '12.4'
git_version = 'ee1b6804381c57161c477caa380a840a84167676'
hip: Optional[str] = None
xpu: Optional[str] = None
"""
CPU_VERSION_PY = """\
__version__ = '2.4.0+cpu'
debug = False
cuda = None
git_version = 'ee1b6804381c57161c477caa380a840a84167676'
hip = None
"""

# PyPI's default Linux torch: no local tag on the dist, a CUDA build inside.
CUDA_TORCH = WheelSpec(
    "torch",
    "2.4.0",
    requires=("nvidia-cuda-runtime-cu12==12.4.127",),
    files={"torch/__init__.py": "", "torch/version.py": CUDA_VERSION_PY},
    binary_files={"torch/lib/libtorch_cuda.so": b"\x7fELF", "torch/lib/libc10.so": b"\x7fELF"},
)
CUDA_RUNTIME = WheelSpec(
    "nvidia-cuda-runtime-cu12", "12.4.127", files={"nvidia/cuda_runtime/__init__.py": ""}
)
CPU_TORCH = WheelSpec(
    "torch",
    "2.4.0+cpu",
    files={"torch/__init__.py": "", "torch/version.py": CPU_VERSION_PY},
    binary_files={"torch/lib/libtorch_cpu.so": b"\x7fELF"},
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return hermetic_env(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def cuda_venv(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    return make_venv(tmp_path_factory.mktemp("cuda") / "venv", [CUDA_TORCH, CUDA_RUNTIME], env=env)


def test_cuda_torch_from_pypi_is_seen_as_cuda(cuda_venv: Path, env: dict[str, str]) -> None:
    snap = take_snapshot(cuda_venv, system=False, environ=env)

    assert snap.python.prefix == str(cuda_venv.parent.parent)
    assert snap.python.is_venv
    assert snap.python_version == ".".join(map(str, sys.version_info[:3]))
    assert set(snap.dists_by_name) == {"torch", "nvidia-cuda-runtime-cu12"}
    torch = snap.dist("torch")
    assert torch is not None
    assert (torch.version, torch.installer) == ("2.4.0", "uv")
    assert torch.record_sha256 is not None
    assert len(torch.record_sha256) == 64
    assert torch.direct_url is None  # installed from an index, not from a URL
    flavour = snap.torch_flavour
    assert flavour is not None
    assert (flavour.kind, flavour.cuda, flavour.accelerator) == (TorchKind.cuda, "12.4", "cu124")
    assert (flavour.dist_version, flavour.module_version) == ("2.4.0", "2.4.0+cu124")
    assert "RECORD lists torch/lib/libtorch_cuda.so" in flavour.evidence
    assert snap.system == Unavailable("not probed (--no-system)")


def test_cpu_torch_and_no_torch(tmp_path: Path, env: dict[str, str]) -> None:
    cpu = take_snapshot(
        make_venv(tmp_path / "cpu", [CPU_TORCH], env=env), system=False, environ=env
    )
    flavour = cpu.torch_flavour
    assert flavour is not None
    assert (flavour.kind, flavour.cuda, flavour.module_version) == (
        TorchKind.cpu,
        None,
        "2.4.0+cpu",
    )

    bare = make_venv(tmp_path / "empty", env=env)
    # Start-up code that prints (a .pth file, a sitecustomize) must not break the probe.
    [site] = (tmp_path / "empty").glob("lib/python3*/site-packages")
    (site / "noisy.pth").write_text("import sys; sys.stdout.write('hello from a .pth\\n')\n")
    empty = take_snapshot(bare, system=False, environ=env)
    assert empty.dists == ()
    assert isinstance(empty.torch, Unavailable)
    assert "torch is not installed" in empty.torch.reason


def test_a_swapped_wheel_with_the_same_version_is_caught(
    tmp_path: Path, env: dict[str, str]
) -> None:
    original = WheelSpec("demo", "1.0", files={"demo/__init__.py": "x = 1\n"})
    swapped = WheelSpec("demo", "1.0", files={"demo/__init__.py": "x = 2\n"})

    def digest(venv: Path) -> str | None:
        found = take_snapshot(venv, system=False, environ=env).dist("demo")
        assert found is not None
        assert found.version == "1.0"
        return found.record_sha256

    first = digest(make_venv(tmp_path / "a", [original], env=env))
    again = digest(make_venv(tmp_path / "b", [original], env=env))
    other = digest(make_venv(tmp_path / "c", [swapped], env=env))
    assert first == again  # uv_cache.json, INSTALLER & co. differ: they are left out
    assert first != other

    # The same wheel installed by pip (which also records byte code) digests the same.
    by_pip = make_venv(tmp_path / "d", env=env)
    wheels = write_wheels(tmp_path / "pip-wheels", [original])
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(by_pip), "install", "-q", "--no-index",
         "--find-links", str(wheels[0].parent), "demo==1.0"],
        env=env,
        check=True,
    )  # fmt: skip
    assert digest(by_pip) == first


def test_direct_url_and_shadowing_through_pythonpath(tmp_path: Path, env: dict[str, str]) -> None:
    spec = WheelSpec("six", "1.16.0", files={"six.py": ""})
    (wheel,) = write_wheels(tmp_path / "wheels", [spec])
    python = make_venv(tmp_path / "venv", [spec], env=env, requirements=[str(wheel)])
    extra = tmp_path / "extra" / "six-1.0.0.dist-info"
    extra.mkdir(parents=True)
    (extra / "METADATA").write_text("Metadata-Version: 2.1\nName: six\nVersion: 1.0.0\n\nBody\n")

    snap = take_snapshot(python, system=False, environ={**env, "PYTHONPATH": str(extra.parent)})

    [effective] = snap.dists
    [shadowed] = snap.shadowed
    assert (effective.version, effective.location) == ("1.0.0", str(extra.parent))
    assert (effective.installer, effective.record_sha256) == (None, None)
    assert shadowed.version == "1.16.0"
    assert shadowed.direct_url is not None
    assert shadowed.direct_url["url"] == wheel.as_uri()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (.ci/run installs it)")
def test_system_probe_finds_the_missing_library_of_an_installed_wheel(
    tmp_path: Path, env: dict[str, str]
) -> None:
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    source = "int f(void) { return 0; }\n"
    gcc = ["gcc", "-shared", "-fPIC", "-x", "c", "-"]
    for soname in ("libGLfake.so.1", "libcuda.so.1"):
        subprocess.run(
            [*gcc, "-o", str(stubs / soname), f"-Wl,-soname,{soname}"],
            input=source,
            text=True,
            check=True,
        )
    ext = tmp_path / "ext.so"
    subprocess.run(
        [*gcc, "-o", str(ext), "-Wl,--no-as-needed", f"-L{stubs}", "-l:libGLfake.so.1",
         "-l:libcuda.so.1"],
        input=source + "void *PyInit__cv2(void) { return 0; }\n",  # an importable module
        text=True,
        check=True,
    )  # fmt: skip
    shutil.rmtree(stubs)
    spec = WheelSpec(
        "cv2fake",
        "4.10.0",
        files={"cv2fake/__init__.py": ""},
        binary_files={"cv2fake/_cv2.so": ext.read_bytes(), "cv2fake/x.so": b"INPUT(-lfoo)\n"},
    )
    python = make_venv(tmp_path / "venv", [spec], env=env)
    root = tmp_path / "root"
    (root / "sys/module/nvidia").mkdir(parents=True)
    (root / "sys/module/nvidia/version").write_text("550.54.14\n")

    snap = take_snapshot(python, system=True, root=root, environ=env)

    assert snap.driver_version == "550.54.14"
    assert [lib.soname for lib in snap.missing_libraries or ()] == ["libGLfake.so.1"]
    statuses = {lib.soname: lib.status for lib in snap.unresolved_libraries or ()}
    assert statuses == {
        "libGLfake.so.1": LibraryStatus.missing,
        "libcuda.so.1": LibraryStatus.driver,
    }
    scan = snap.library_scan
    assert scan is not None
    assert [(s.path, s.reason) for s in scan.skipped] == [("cv2fake/x.so", "not an ELF file")]
    assert Snapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


def test_default_interpreter_is_the_active_venv(cuda_venv: Path) -> None:
    venv = cuda_venv.parent.parent
    assert resolve_python(None, {"VIRTUAL_ENV": str(venv)}) == venv / "bin" / "python"
    assert resolve_python(None, {}) == Path(sys.executable)
    assert resolve_python(venv, {}) == venv / "bin" / "python"  # a venv directory is accepted
    with pytest.raises(UsageError, match="no such file"):
        resolve_python(Path("/no/such/python"), {})


# --- the CLI ----------------------------------------------------------------------------------


def lockd(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockd", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_to_stdout(cuda_venv: Path, env: dict[str, str], tmp_path: Path) -> None:
    run = lockd("snapshot", "--python", str(cuda_venv), "--no-system", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    snap = Snapshot.from_dict(json.loads(run.stdout))
    assert snap.torch_flavour is not None
    assert snap.torch_flavour.kind is TorchKind.cuda


def test_cli_file_and_table(cuda_venv: Path, env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "snap.json"
    run = lockd(
        "snapshot", "--python", str(cuda_venv), "--no-system", "-o", str(out), "--format", "table",
        env={**env, "COLUMNS": "200"}, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2.4.0+cu124: cuda 12.4" in run.stdout
    assert "not probed (--no-system)" in run.stdout
    assert isinstance(Snapshot.from_dict(json.loads(out.read_text())).torch, Available)


@pytest.mark.parametrize(
    ("python", "message"),
    [
        ("/no/such/python", "no such file"),
        ("/bin/sh", "/bin/sh is not a Python interpreter"),
        ("/bin/ls", "/bin/ls is not a Python interpreter"),
        ("echo", "echo is not a Python interpreter"),  # prints its arguments back
    ],
)
def test_cli_bad_python_is_a_usage_error(
    python: str, message: str, env: dict[str, str], tmp_path: Path
) -> None:
    if python == "echo":
        python = str(tmp_path / "echo")
        Path(python).write_text('#!/bin/sh\necho "$@"\necho "$@" >&2\n')
        Path(python).chmod(0o755)
        message = f"{python} is not a Python interpreter"
    run = lockd(
        "snapshot", "--python", python, "--no-system", "-o", os.devnull, env=env, cwd=tmp_path
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    # One short paragraph: neither the probe's source nor the program's output in it.
    assert len(run.stderr.splitlines()) == 1 and len(run.stderr) < 300, run.stderr
    assert "sys.version_info" not in run.stderr and "Stdlib-only" not in run.stderr


def test_drift_with_a_mistyped_python_fails_before_any_work(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Nothing resolved, no database created, no error report recorded for a typo."""
    db = tmp_path / "record" / "lockd.db"
    run = lockd(
        "drift", "--python", "/no/such/python", "--db", f"sqlite:///{db}", env=env, cwd=tmp_path
    )
    assert run.returncode == 2, run.output
    assert "--python /no/such/python: no such file." in run.stderr
    assert not db.parent.exists()


def test_drift_with_a_program_that_is_not_python_fails_once_before_any_work(
    env: dict[str, str], tmp_path: Path
) -> None:
    """As `lockd snapshot --python /bin/ls`: exit 2, said once, nothing resolved or recorded."""
    db = tmp_path / "record" / "lockd.db"
    run = lockd("drift", "--python", "/bin/ls", "--db", f"sqlite:///{db}", env=env, cwd=tmp_path)
    assert run.returncode == 2, run.output
    assert run.stderr.count("/bin/ls is not a Python interpreter") == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert not db.parent.exists()


def test_a_snapshot_of_lockd_s_own_interpreter_says_so(env: dict[str, str], tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if k != "VIRTUAL_ENV"}
    run = lockd("snapshot", "--no-system", "--format", "json", env=bare, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "note: no --python and no $VIRTUAL_ENV" in run.stderr
    assert json.loads(run.stdout)["python"]["executable"]  # still taken, stdout still JSON
    named = lockd("snapshot", "--no-system", "--python", sys.executable, env=bare, cwd=tmp_path)
    assert named.returncode == 0 and "note:" not in named.stderr
