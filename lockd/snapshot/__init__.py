"""Snapshot: what one environment really contains.

Python dists (read by a stdlib-only probe run in the target interpreter), the
torch build flavour (decided from files, torch is never imported), and the
system around it: OS release, glibc, Debian packages, the ``ld.so`` cache, the
NVIDIA driver, the CUDA toolkit and the shared libraries the wheels need but
the system lacks.

::

    snap = take_snapshot(Path("/opt/venv/bin/python"), system=True)
    snap.dist("torch").version, snap.torch_flavour.kind, snap.missing_libraries
    write_snapshot(snap, Path("snap.json")); read_snapshot(Path("snap.json"))
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from lockd import __version__
from lockd.errors import FormatError, UsageError, excerpt

from . import parse
from . import system as system_probe
from ._probe import PROBE_VERSION
from .closure import scan_libraries
from .filesystem import DirectoryFileSystem, FileSystem
from .image import ImageFacts, ImageLayer, PythonEnvironment
from .model import (
    SNAPSHOT_VERSION,
    Available,
    CudaToolkit,
    DebPackage,
    Dist,
    DriverVersion,
    Interpreter,
    LdCacheEntry,
    LibraryScan,
    LibraryStatus,
    NeededLibrary,
    Probe,
    RpmPackage,
    SkippedFile,
    Snapshot,
    SystemInfo,
    TorchFlavour,
    TorchKind,
    Unavailable,
)

__all__ = [
    "SNAPSHOT_VERSION",
    "Available",
    "CudaToolkit",
    "DebPackage",
    "DirectoryFileSystem",
    "Dist",
    "DriverVersion",
    "FileSystem",
    "ImageFacts",
    "ImageLayer",
    "Interpreter",
    "LdCacheEntry",
    "LibraryScan",
    "LibraryStatus",
    "NeededLibrary",
    "Probe",
    "PythonEnvironment",
    "RpmPackage",
    "SkippedFile",
    "Snapshot",
    "SystemInfo",
    "TorchFlavour",
    "TorchKind",
    "Unavailable",
    "read_snapshot",
    "resolve_python",
    "scan_libraries",
    "snapshot_from_document",
    "snapshot_to_json",
    "summary_rows",
    "take_snapshot",
    "write_snapshot",
]

PROBE_TIMEOUT_S = 120
T = TypeVar("T")


def take_snapshot(
    python: Path | None = None,
    *,
    system: bool = True,
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
) -> Snapshot:
    """Snapshot the environment of ``python`` (see :func:`resolve_python` for the default).

    ``system=False`` skips the operating-system probes (``--no-system``). ``root`` and
    ``environ`` exist for tests: files such as ``/sys/module/nvidia/version`` are read
    below ``root``, commands are found on ``environ["PATH"]``.
    """
    env = os.environ if environ is None else environ
    executable = resolve_python(python, env)
    probed = _run_probe(executable, env)
    system_info: Probe[SystemInfo] = (
        Available(system_probe.probe(probed.python.site_packages, root=root, environ=env))
        if system
        else Unavailable("not probed (--no-system)")
    )
    return _assemble(probed, system_info, __version__)


def _assemble(probed: parse.ProbeResult, system: Probe[SystemInfo], version: str) -> Snapshot:
    torch: Probe[TorchFlavour] = (
        Available(probed.torch)
        if probed.torch is not None
        else Unavailable(f"torch is not installed in {probed.python.prefix}")
    )
    return Snapshot(
        taken_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        lockd_version=version,
        python=probed.python,
        dists=probed.dists,
        shadowed=probed.shadowed,
        torch=torch,
        system=system,
    )


def snapshot_from_document(data: Any, *, source: str = "the snapshot") -> Snapshot:
    """A snapshot from decoded JSON: what ``lockd snapshot`` writes, or the object the
    stdlib probe prints (``python3 _probe.py --json``, ``--post``), which knows the Python
    environment only: its system facts are recorded as not probed."""
    if isinstance(data, Mapping) and "probe" in data and "version" not in data:
        try:
            probed = parse.parse_probe_data(data)
        except FormatError as exc:
            raise FormatError(
                f"{source} looks like the stdlib probe's output but is malformed: {exc}",
                hint="Post what the probe printed, unchanged.",
            ) from None
        reason = "not probed: the stdlib probe reads the Python environment only"
        return _assemble(probed, Unavailable(reason), f"probe/{PROBE_VERSION}")
    return Snapshot.from_dict(data, source=source)


def resolve_python(python: Path | None, environ: Mapping[str, str]) -> Path:
    """The interpreter to snapshot.

    ``python`` when given (a venv directory stands for its ``bin/python``); else the
    active virtual environment (``$VIRTUAL_ENV``); else the interpreter running lockd.
    A path that is not an executable file raises ``UsageError``.
    """
    if python is None:
        venv = environ.get("VIRTUAL_ENV")
        candidate = Path(venv) / "bin" / "python" if venv else None
        return candidate if candidate and candidate.is_file() else Path(sys.executable)
    path = python.expanduser()
    if path.is_dir() and (path / "bin" / "python").is_file():
        path = path / "bin" / "python"
    hint = "Pass a Python interpreter, for example --python /opt/venv/bin/python."
    if not path.exists():
        raise UsageError(f"--python {python}: no such file.", hint=hint)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UsageError(f"--python {python}: not an executable file.", hint=hint)
    return path


# A program that only a Python interpreter answers with its version: the marker line has
# numbers where the source has ``%d``, so a program that echoes its arguments does not
# pass. ``-I`` (isolated: no PYTHONPATH, no user site) is an option shells refuse, so
# ``--python /bin/sh`` runs nothing of it.
_IDENTIFY = "import sys; print('lockd-python %d %d' % sys.version_info[:2])"
_IDENTIFIED = re.compile(r"^lockd-python (\d+) (\d+)$", re.MULTILINE)
IDENTIFY_TIMEOUT_S = 30


def _check_python(executable: Path, environ: Mapping[str, str], hint: str) -> None:
    """``UsageError`` unless ``executable`` is a CPython 3.8+ (before the probe runs in it)."""
    completed = _run(executable, ["-I", "-c", _IDENTIFY], environ, IDENTIFY_TIMEOUT_S, hint)
    found = _IDENTIFIED.search(completed.stdout)
    if found is None:  # what it printed is its own business: not echoed
        raise UsageError(
            f"{executable} is not a Python interpreter: it did not run a one-line Python "
            f"program (exit code {completed.returncode}).",
            hint=hint,
        )
    version = int(found.group(1)), int(found.group(2))
    if version < (3, 8):
        raise UsageError(
            f"{executable} is Python {version[0]}.{version[1]}; lockd's probe needs 3.8 or newer.",
            hint=hint,
        )


def _run(
    executable: Path, args: list[str], environ: Mapping[str, str], timeout: float, hint: str
) -> subprocess.CompletedProcess[str]:
    """Run ``executable`` with ``args``; a message that never shows ``args`` (the probe)."""
    try:
        return subprocess.run(
            [str(executable), *args],
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=dict(environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"{executable} did not finish lockd's probe within {timeout:.0f} s.", hint=hint
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{executable} could not be run: {exc.strerror or type(exc).__name__}.", hint=hint
        ) from None


def _run_probe(executable: Path, environ: Mapping[str, str]) -> parse.ProbeResult:
    source = resources.files(__package__).joinpath("_probe.py").read_text(encoding="utf-8")
    hint = "--python must name a Python 3.8 or newer interpreter."
    _check_python(executable, environ, hint)
    completed = _run(executable, ["-c", source], environ, PROBE_TIMEOUT_S, hint)
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        last = lines[-1] if lines else "no output"
        raise UsageError(
            f"{executable} failed to run lockd's probe (exit code {completed.returncode}): "
            f"{excerpt(last, 200)}.",
            hint=hint,
        )
    try:
        return parse.parse_probe_output(completed.stdout)
    except (ValueError, FormatError) as exc:
        raise UsageError(
            f"{executable} printed something lockd's probe did not write "
            f"({excerpt(str(exc), 200)}).",
            hint=hint,
        ) from None


def snapshot_to_json(snapshot: Snapshot) -> str:
    """The snapshot as indented JSON text with a final newline."""
    return json.dumps(snapshot.to_dict(), indent=2, ensure_ascii=False) + "\n"


def write_snapshot(snapshot: Snapshot, path: Path) -> None:
    """Write atomically: readers see the old file or the whole new one, never a part."""
    from lockd.lockfiles.files import write_atomic

    try:
        write_atomic(path, snapshot_to_json(snapshot).encode())
    except OSError as exc:
        raise UsageError(f"Cannot write the snapshot to {path}: {exc.strerror or exc}.") from None


MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024  # a snapshot lists dists and libraries, not files


def read_snapshot(path: Path) -> Snapshot:
    """Read a snapshot file; an unknown format version raises ``FormatError``."""
    from lockd.inputs.files import read_input_bytes

    raw = read_input_bytes(path, None, limit=MAX_SNAPSHOT_BYTES, kind="The snapshot").data
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise FormatError(f"{path} is not a lockd snapshot: not JSON ({exc}).") from None
    return Snapshot.from_dict(data, source=str(path))


def summary_rows(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(label, value) pairs for a short human summary (``--format table``)."""
    python = snapshot.python
    if python.executable:
        shown = f"{python.version} ({python.implementation}) {python.executable}"
    elif python.site_packages:
        shown = "no interpreter (site-packages " + ", ".join(python.site_packages) + ")"
    else:
        shown = "none found"
    rows = [
        ("Python", shown),
        ("Dists", f"{len(snapshot.dists)}" + _shadowed(snapshot)),
    ]
    torch = snapshot.torch
    if isinstance(torch, Available):
        flavour = torch.value
        detail = f"cuda {flavour.cuda}" if flavour.cuda else flavour.kind.value
        rows.append(("torch", f"{flavour.module_version or flavour.dist_version}: {detail}"))
    else:
        rows.append(("torch", torch.reason))
    info = snapshot.system
    if isinstance(info, Unavailable):
        rows.append(("System", info.reason))
        return rows
    system = info.value
    rows += [
        ("OS", _show(system.os_release, lambda v: v.get("PRETTY_NAME", v.get("ID", "?")))),
        ("glibc", _show(system.glibc, str)),
        ("Debian packages", _show(system.dpkg, lambda v: str(len(v)))),
        *(
            [("RPM packages", _show(system.rpm, lambda v: str(len(v))))]
            if isinstance(system.rpm, Available) or not isinstance(system.dpkg, Available)
            else []
        ),
        ("NVIDIA driver", _show(system.driver, lambda d: f"{d.version} (from {d.source})")),
        ("CUDA toolkit", _show(system.cuda, lambda c: f"{c.version} (from {c.source})")),
        ("Shared libraries", _show(system.libraries, _libraries)),
    ]
    return rows


def _shadowed(snapshot: Snapshot) -> str:
    return f" ({len(snapshot.shadowed)} shadowed)" if snapshot.shadowed else ""


def _show(probe: Probe[T], render: Callable[[T], str]) -> str:
    return render(probe.value) if isinstance(probe, Available) else f"unavailable: {probe.reason}"


def _libraries(scan: LibraryScan) -> str:
    parts = [f"{scan.scanned} ELF files scanned"]
    if scan.extension_modules is not None:
        parts[0] += f", {scan.extension_modules} extension modules loading {scan.loaded} objects"
    missing = scan.missing
    parts.append(
        f"{len(missing)} missing: " + ", ".join(lib.soname for lib in missing)
        if missing
        else "none missing"
    )
    plugin = scan.with_status(LibraryStatus.plugin)
    if plugin:
        parts.append(f"{len(plugin)} needed only by plugins no import loads")
    driver = scan.with_status(LibraryStatus.driver)
    if driver:
        parts.append(f"{len(driver)} driver libraries (provided by the NVIDIA container toolkit)")
    if scan.skipped:
        parts.append(f"{len(scan.skipped)} files skipped")
    return "; ".join(parts)
