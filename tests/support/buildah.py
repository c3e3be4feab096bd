"""Real images built with buildah (Debian's package), and a Python base image made in code.

* ``Buildah`` runs ``buildah`` as root with the ``vfs`` storage driver and
  ``chroot`` isolation (no daemon, no overlay mounts), its storage and run
  roots in a temporary directory of the test, so nothing touches the
  machine's own image store.
* ``python_rootfs`` lays out a minimal root file system around the Python
  that runs the tests: the interpreter under ``/usr/local`` (as the official
  ``python`` images have it), its standard library without tests, its
  extension modules and every shared library they load (found with ``ldd``),
  and ``/bin/sh`` for ``RUN``. Pulling a real ``python:3.11-slim`` needs the
  internet; this base needs nothing but the machine, and pip and ``venv``
  work in it as in the real one.
* ``push_base`` commits that root file system as an image with
  ``PYTHON_VERSION`` in its config and pushes it to a registry on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

BUILD_TIMEOUT_S = 900
_SKIPPED = {"test", "idlelib", "tkinter", "turtledemo", "__pycache__", "site-packages"}


def buildah_binary() -> str:
    binary = shutil.which("buildah")
    if binary is None:
        # Not a skip: scripts/test installs it, and a silent skip would hide the build tests.
        raise RuntimeError("buildah is not installed; run `apt-get install buildah`.")
    return binary


@dataclass(frozen=True)
class Buildah:
    """``buildah`` with private storage under ``workdir``."""

    workdir: Path

    def run(self, *args: str, timeout: float = BUILD_TIMEOUT_S) -> str:
        """Run one buildah command; its stdout, or an AssertionError with its output."""
        command = [
            buildah_binary(),
            "--root",
            str(self.workdir / "root"),
            "--runroot",
            str(self.workdir / "runroot"),
            "--storage-driver",
            "vfs",
            *args,
        ]
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        assert proc.returncode == 0, f"{' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


def _ldd(path: Path) -> set[Path]:
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    found = set()
    for line in proc.stdout.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            found.add(Path(match[1]))
    return found


def python_rootfs(dest: Path) -> str:
    """A root file system with this machine's Python in ``/usr/local``; its version."""
    version = "{}.{}".format(*sys.version_info[:2])
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix}))
    binary = prefix / "bin" / f"python{version}"
    local = dest / "usr" / "local"
    (local / "bin").mkdir(parents=True)
    shutil.copy2(binary, local / "bin" / f"python{version}")
    for alias in ("python3", "python"):
        (local / "bin" / alias).symlink_to(f"python{version}")
    shutil.copytree(
        stdlib,
        local / "lib" / f"python{version}",
        ignore=lambda _d, names: [
            n for n in names if n in _SKIPPED or n.startswith(("config-", "_test"))
        ],
        symlinks=True,
    )
    (local / "lib" / f"python{version}" / "site-packages").mkdir()
    elves = [binary, Path("/bin/sh"), *(stdlib / "lib-dynload").glob("*.so")]
    libraries: set[Path] = set()
    for elf in elves:
        libraries |= _ldd(elf)
    for library in libraries:
        if library.name.startswith("ld-linux"):
            target = dest / str(library).lstrip("/")  # PT_INTERP names this exact path
        else:
            target = local / "lib" / library.name  # found through LD_LIBRARY_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library.resolve(), target)
    (dest / "bin").mkdir()
    shutil.copy2(Path("/bin/sh").resolve(), dest / "bin" / "sh")
    for directory in ("tmp", "root", "etc"):
        (dest / directory).mkdir(exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return sys.version.split()[0]


def push_base(buildah: Buildah, rootfs: Path, python_version: str, reference: str) -> None:
    """Commit ``rootfs`` as ``reference`` (config like the official images') and push it."""
    container = buildah.run("from", "scratch").strip()
    buildah.run("copy", container, str(rootfs), "/")
    buildah.run(
        "config",
        "--env",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "--env",
        "LD_LIBRARY_PATH=/usr/local/lib",
        "--env",
        f"PYTHON_VERSION={python_version}",
        "--cmd",
        "python3",
        "--os",
        "linux",
        "--arch",
        "amd64" if os.uname().machine == "x86_64" else "arm64",
        container,
    )
    buildah.run("commit", "--format", "docker", container, reference)
    buildah.run("rm", container)
    buildah.run("push", "--tls-verify=false", reference, f"docker://{reference}")
