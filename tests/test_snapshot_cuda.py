"""The real torch 2.14.1 + CUDA 13.0 wheels: `import torch` works, and drift agrees.

Optional: runs where pip's configuration names local folders holding the
wheels (see ``tests/support/localwheels.py``), skips elsewhere. The stack is
installed hermetically into a fresh uv venv (about 7 GB, removed afterwards).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lockd.drift import compare_snapshot
from lockd.lockset import Lock
from lockd.snapshot import LibraryStatus, take_snapshot
from lockd.targets import parse_target_id
from tests.conftest import hermetic_env
from tests.support.localwheels import has_release, local_sources, uv_source_args

INDEXES, LINKS = local_sources()
PY = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform != "linux" or not has_release(INDEXES, LINKS, "torch", "2.14.1"),
        reason="the torch 2.14.1 CUDA 13.0 wheels are not in pip's local folders here",
    ),
]


def test_real_cuda13_stack_imports_and_has_no_error_findings(tmp_path: Path) -> None:
    from lockd.resolvers.uv import uv_binary

    env = hermetic_env(tmp_path, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    # cuda-bindings (torch imports it only on demand) is not among the local wheels
    overrides = tmp_path / "overrides.txt"
    overrides.write_text('cuda-bindings ; python_version < "3"\n')
    try:
        subprocess.run(
            [uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True
        )
        installed = subprocess.run(
            [uv_binary(), "pip", "install", "-q", "--python", str(python),
             *uv_source_args(INDEXES, LINKS), "--override", str(overrides), "torch==2.14.1"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr
        imported = subprocess.run(
            [str(python), "-W", "ignore", "-c", "import torch; print(torch.version.cuda)"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.strip() == "13.0"

        snap = take_snapshot(python, environ=env)

        assert snap.missing_libraries == ()
        scan = snap.library_scan
        assert scan is not None and scan.extension_modules and scan.loaded
        plugins = {lib.soname: lib.needed_by for lib in scan.with_status(LibraryStatus.plugin)}
        for soname, users in plugins.items():  # what this host lacks of the plugins' needs
            assert all("/nvshmem/" in u or "cufile_rdma" in u for u in users), (soname, users)
        target = parse_target_id(f"linux-x86_64-py{PY.replace('.', '')}-cu130")
        findings = compare_snapshot(Lock(target.id, ()), target, snap)
        assert [f for f in findings if f.severity == "error"] == []
        libs = [f for f in findings if f.kind == "system-lib-missing"]
        assert len(libs) == len(plugins) and all(f.severity == "info" for f in libs)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)  # gigabytes: never left for pytest to keep
