"""Pure parsers for what the probes read: text in, values out. No I/O here.

Each function is tested on strings copied from real machines (os-release, dpkg,
``ldconfig -p``, the NVIDIA driver files in both formats, ``nvidia-smi``,
``torch/version.py`` variants).
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lockd.errors import FormatError
from lockd.fields import Fields

from ._probe import MARKER, PROBE_VERSION
from .model import (
    CudaToolkit,
    DebPackage,
    Dist,
    Interpreter,
    LdCacheEntry,
    RpmPackage,
    TorchFlavour,
    TorchKind,
)

# --- operating system -------------------------------------------------------------------------

_OS_RELEASE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release``: shell-style ``KEY=value`` lines, values optionally quoted."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not _OS_RELEASE_KEY.match(key):
            continue
        try:
            values[key] = " ".join(shlex.split(value))
        except ValueError:  # unbalanced quote: keep what is there rather than drop the key
            values[key] = value.strip("\"'")
    return values


def parse_glibc(confstr: str | None) -> str | None:
    """``os.confstr('CS_GNU_LIBC_VERSION')`` (``'glibc 2.36'``) -> ``'2.36'``."""
    if not confstr:
        return None
    name, _, version = confstr.strip().partition(" ")
    return version if name == "glibc" and version else None


# ``dpkg-query -W -f=DPKG_FORMAT``. The status column drops packages that are
# removed but keep their configuration files ("rc"), which ``-W`` still lists.
DPKG_FORMAT = "${db:Status-Abbrev}\t${binary:Package}\t${Version}\t${Architecture}\n"


def parse_dpkg_query(text: str) -> tuple[DebPackage, ...]:
    """Installed packages from ``dpkg-query -W -f=DPKG_FORMAT`` output, sorted by name.

    Lines without the status column (the plain ``${binary:Package}\\t${Version}\\t${Architecture}``
    format) are read as installed.
    """
    packages: list[DebPackage] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 4:
            status, *fields = fields
            # Second letter is the current state: n(ot-installed) and c(onfig-files) mean gone.
            if len(status) < 2 or status[1] in "nc":
                continue
        if len(fields) != 3 or not fields[0]:
            continue
        name, version, arch = (f.strip() for f in fields)
        packages.append(DebPackage(name, version, arch))
    return tuple(sorted(packages, key=lambda p: p.name))


_LDCONFIG_LINE = re.compile(r"^\s+(?P<soname>\S+) \((?P<flags>[^)]*)\) => (?P<path>.+)$")


def parse_ldconfig(text: str) -> tuple[LdCacheEntry, ...]:
    """``ldconfig -p``: a count header, then ``\\tlibz.so.1 (libc6,x86-64) => /path`` lines."""
    entries = []
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match:
            entries.append(
                LdCacheEntry(match["soname"], match["flags"].strip(), match["path"].strip())
            )
    return tuple(entries)


# ldconfig's architecture flag for 64-bit objects of each ELF machine (glibc's ldconfig).
LDCONFIG_ARCH = {
    "EM_X86_64": "x86-64",
    "EM_AARCH64": "AArch64",
    "EM_PPC64": "64bit",
    "EM_S390": "64bit",
}


def ld_cache_matches(entry: LdCacheEntry, machine: str, elfclass: int) -> bool:
    """Whether ``entry`` is usable by an ELF object of this machine and class."""
    tokens = {t.strip() for t in entry.flags.split(",")}
    if elfclass == 64:
        wanted = LDCONFIG_ARCH.get(machine)
        return wanted is None or wanted in tokens  # a machine we do not know: cannot tell
    return not tokens & set(LDCONFIG_ARCH.values())  # 32-bit: no 64-bit flag


# --- NVIDIA driver and CUDA -------------------------------------------------------------------

_DRIVER_VERSION = re.compile(r"^\d+(?:\.\d+)+$")
_PROC_DRIVER = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)")


def parse_sys_module_version(text: str) -> str | None:
    """``/sys/module/nvidia/version``: the bare version (``550.54.14``)."""
    version = text.strip()
    return version if _DRIVER_VERSION.match(version) else None


def parse_proc_driver_version(text: str) -> str | None:
    """``/proc/driver/nvidia/version``, proprietary and open kernel module formats.

    ``NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 …`` and
    ``NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build …``.
    """
    match = _PROC_DRIVER.search(text)
    return match[1] if match else None


def parse_nvidia_smi(text: str) -> str | None:
    """``nvidia-smi --query-gpu=driver_version --format=csv,noheader``: one line per GPU."""
    for line in text.splitlines():
        version = line.strip()
        if version:
            return version if _DRIVER_VERSION.match(version) else None
    return None


def parse_cuda_version_json(text: str) -> str | None:
    """``/usr/local/cuda/version.json``: ``{"cuda": {"version": "12.4.1"}, …}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    cuda = data.get("cuda") if isinstance(data, dict) else None
    version = cuda.get("version") if isinstance(cuda, dict) else None
    return version if isinstance(version, str) and version else None


CUDA_ENV_VARS = ("CUDA_VERSION", "NV_CUDA_CUDART_VERSION", "NVIDIA_REQUIRE_CUDA")
_REQUIRE_CUDA = re.compile(r"cuda>=(\d+(?:\.\d+)*)")


def cuda_toolkit(version_json: str | None, environ: Mapping[str, str]) -> CudaToolkit | None:
    """The image's CUDA toolkit from ``version.json`` text, else from ``nvidia/cuda`` variables."""
    env = {name: environ[name] for name in CUDA_ENV_VARS if environ.get(name)}
    from_json = parse_cuda_version_json(version_json) if version_json is not None else None
    if from_json:
        return CudaToolkit(from_json, "/usr/local/cuda/version.json", env)
    if "CUDA_VERSION" in env:
        return CudaToolkit(env["CUDA_VERSION"], "CUDA_VERSION", env)
    if "NV_CUDA_CUDART_VERSION" in env:  # "12.4.127-1": the cudart package version
        cudart = env["NV_CUDA_CUDART_VERSION"].split("-")[0]
        return CudaToolkit(cudart, "NV_CUDA_CUDART_VERSION", env)
    match = _REQUIRE_CUDA.search(env.get("NVIDIA_REQUIRE_CUDA", ""))
    if match:
        return CudaToolkit(match[1], "NVIDIA_REQUIRE_CUDA", env)
    return None


# Libraries of the NVIDIA *driver*: never in an image, mounted by the container toolkit.
_DRIVER_LIBRARY = re.compile(
    r"^(?:libcuda|libnvidia-[\w.+-]+|libnvcuvid|libnvoptix|libcudadebugger"
    r"|lib(?:GLX|EGL|GLESv1_CM|GLESv2)_nvidia)\.so(?:\.[\w.]+)?$"
)


def is_driver_library(soname: str) -> bool:
    """``libcuda.so.1``, ``libnvidia-ml.so.1``, ``libnvidia-*.so*``, … (not ``libcudart``)."""
    return _DRIVER_LIBRARY.match(soname) is not None


def expand_search_path(value: str, origin: str) -> tuple[str, ...]:
    """A ``DT_RUNPATH``/``DT_RPATH`` value as directories, ``$ORIGIN`` expanded.

    Entries with other dynamic string tokens (``$LIB``, ``$PLATFORM``) are kept as
    written: they will not resolve, which is the conservative answer.
    """
    dirs = []
    for entry in value.split(":"):
        if entry:
            dirs.append(entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
    return tuple(dirs)


# --- torch ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionPy:
    """Constant assignments of ``torch/version.py``; a missing key was not in the file."""

    values: Mapping[str, str | None]

    @property
    def version(self) -> str | None:
        return self.values.get("__version__")


def parse_version_py(text: str) -> VersionPy | None:
    """Read ``torch/version.py`` with ``ast`` (never exec). ``None`` when it is not Python.

    Handles ``cuda: Optional[str] = '12.4'`` and the older unannotated ``cuda = None``.
    A real one is under a kilobyte; a huge one (posted to the server) is not read.
    """
    if len(text) > 65536:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    values: dict[str, str | None] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Constant)
            and (value.value is None or isinstance(value.value, str))
        ):
            values[target.id] = value.value
    return VersionPy(values)


def cuda_from_tag(tag: str) -> str | None:
    """``cu124`` -> ``12.4``, ``cu118`` -> ``11.8``, ``cu130`` -> ``13.0``."""
    digits = tag[2:]
    if not tag.startswith("cu") or not digits.isdigit() or len(digits) < 2:
        return None
    return f"{int(digits[:-1])}.{digits[-1]}"


def _local_tag(version: str) -> str | None:
    try:
        return Version(version).local
    except InvalidVersion:
        return None


def _kind_of_tag(tag: str) -> tuple[TorchKind, str | None] | None:
    if tag == "cpu":
        return TorchKind.cpu, None
    if tag == "xpu":
        return TorchKind.xpu, None
    if tag.startswith("rocm"):
        return TorchKind.rocm, tag[4:] or None
    cuda = cuda_from_tag(tag)
    return (TorchKind.cuda, cuda) if cuda else None


_CUDA_RUNTIME = re.compile(r"^nvidia-cuda-runtime(?:-cu\d+)?$")
_CUDA_DIST = re.compile(r"^(?:nvidia-.+-cu\d+|nvidia-cuda-.+|cuda-toolkit)$")
_LIB_KIND = (
    ("libtorch_cuda", TorchKind.cuda),
    ("libc10_cuda", TorchKind.cuda),
    ("libtorch_hip", TorchKind.rocm),
    ("libc10_hip", TorchKind.rocm),
    ("libtorch_xpu", TorchKind.xpu),
    ("libc10_xpu", TorchKind.xpu),
)


@dataclass
class _Findings:
    """What the sources said so far: evidence lines, votes for a kind, versions seen."""

    evidence: list[str] = field(default_factory=list)
    votes: list[tuple[TorchKind, str]] = field(default_factory=list)  # (kind, source)
    cuda: str | None = None
    hip: str | None = None

    def vote(self, kind: TorchKind, source: str, version: str | None = None) -> None:
        self.votes.append((kind, source))
        if kind is TorchKind.cuda:
            self.cuda = self.cuda or version
        elif kind is TorchKind.rocm:
            self.hip = self.hip or version


def classify_torch(
    dist_version: str,
    version_py: str | None,
    record_libs: Sequence[str] | None,
    installed: Mapping[str, str],
) -> TorchFlavour:
    """Decide the torch build from files, in the field notes' order.

    1. ``torch/version.py`` (``cuda``, ``hip``/``rocm``, ``xpu``);
    2. the RECORD: ``torch/lib/libtorch_cuda.so`` (or the hip/xpu libraries) or none;
    3. the local tag of the dist version, then of ``__version__`` (absent proves nothing);
    4. ``nvidia-*-cuXX`` / ``cuda-toolkit`` dists, used only when nothing above decided
       (a CPU torch next to left-over CUDA dists is common and is still a CPU torch).

    When decisive sources disagree the kind is ``unknown`` and the evidence says why.
    ``record_libs`` are the RECORD's files under ``torch/lib/`` (``None``: no RECORD);
    ``installed`` maps canonical names of the environment's dists to their versions.
    """
    found = _Findings()
    parsed = parse_version_py(version_py) if version_py is not None else None
    module_version = parsed.version if parsed else None
    if version_py is None:
        found.evidence.append("torch/version.py: not found")
    elif parsed is None:
        found.evidence.append("torch/version.py: not valid Python, ignored")
    else:
        _read_version_py(parsed, found)
    _read_record(record_libs, found)
    for label, version in (("dist version", dist_version), ("torch.__version__", module_version)):
        _read_local_tag(label, version, found)

    cuda_dists = sorted(name for name in installed if _CUDA_DIST.match(name))
    if cuda_dists:
        listed = ", ".join(f"{n} {installed[n]}" for n in cuda_dists)
        found.evidence.append(f"CUDA dists installed: {listed}")
    else:
        found.evidence.append("no nvidia-*-cuXX or cuda-toolkit dists installed")

    kinds = list(dict.fromkeys(kind for kind, _ in found.votes))
    if len(kinds) > 1:
        said = "; ".join(f"{source} says {kind.value}" for kind, source in found.votes)
        found.evidence.append(f"conflict: {said}")
        kind = TorchKind.unknown
    elif kinds:
        kind = kinds[0]
    elif cuda_dists:
        kind = TorchKind.cuda
        found.evidence.append("decided by the installed CUDA dists alone")
    else:
        kind = TorchKind.unknown

    runtime = next((n for n in cuda_dists if _CUDA_RUNTIME.match(n)), None)
    runtime = runtime or ("cuda-toolkit" if "cuda-toolkit" in installed else None)
    if kind is TorchKind.cuda and found.cuda is None and runtime is not None:
        found.cuda = ".".join(installed[runtime].split(".")[:2])
    if kind is TorchKind.cpu and cuda_dists:
        found.evidence.append("note: CUDA dists are installed next to a CPU-only torch")
    return TorchFlavour(
        kind=kind,
        cuda=found.cuda if kind is TorchKind.cuda else None,
        evidence=tuple(found.evidence),
        dist_version=dist_version,
        module_version=module_version,
        hip=found.hip if kind is TorchKind.rocm else None,
    )


def _read_version_py(parsed: VersionPy, found: _Findings) -> None:
    values = parsed.values
    keys = [k for k in ("cuda", "hip", "rocm", "xpu") if k in values]
    shown = ", ".join(f"{k} = {values[k]!r}" for k in keys) or "no cuda/hip/xpu attributes"
    found.evidence.append(f"torch/version.py: {shown}")
    source = "torch/version.py"
    if values.get("cuda"):
        found.vote(TorchKind.cuda, source, values["cuda"])
    elif values.get("hip") or values.get("rocm"):
        found.vote(TorchKind.rocm, source, values.get("hip") or values.get("rocm"))
    elif values.get("xpu"):
        found.vote(TorchKind.xpu, source)
    elif "cuda" in values:  # cuda = None: built without CUDA
        found.vote(TorchKind.cpu, source)


def _read_record(record_libs: Sequence[str] | None, found: _Findings) -> None:
    if record_libs is None:
        found.evidence.append("RECORD: missing")
        return
    hits = {
        (lib, kind) for lib in record_libs for prefix, kind in _LIB_KIND if lib.startswith(prefix)
    }
    if not hits:
        found.evidence.append("RECORD lists no libtorch_cuda/hip/xpu library")
        found.vote(TorchKind.cpu, "RECORD")
        return
    found.evidence.append(
        "RECORD lists " + ", ".join(f"torch/lib/{lib}" for lib, _ in sorted(hits))
    )
    for kind in dict.fromkeys(kind for _, kind in sorted(hits)):
        found.vote(kind, "RECORD")


def _read_local_tag(label: str, version: str | None, found: _Findings) -> None:
    if version is None:
        return
    tag = _local_tag(version)
    decided = _kind_of_tag(tag) if tag else None
    if tag is None:
        found.evidence.append(f"{label} {version}: no local tag")
    elif decided is None:
        found.evidence.append(f"{label} {version}: local tag +{tag} names no accelerator")
    else:
        found.evidence.append(f"{label} {version}: local tag +{tag}")
        found.vote(decided[0], f"local tag +{tag}", decided[1])


# --- the probe's output -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The probe script's output, read into values."""

    python: Interpreter
    dists: tuple[Dist, ...]
    shadowed: tuple[Dist, ...]
    torch: TorchFlavour | None  # None: torch is not installed


def parse_probe_output(text: str) -> ProbeResult:
    """Read the JSON the probe printed. Raises ``ValueError`` (not JSON, no marker) or
    ``FormatError`` (a field of the wrong type) on anything unexpected."""
    _, marker, payload = text.rpartition(MARKER)
    if not marker:
        raise ValueError("no probe output found")
    return parse_probe_data(json.loads(payload))


def parse_probe_data(data: Any) -> ProbeResult:
    """The probe's JSON object, already decoded: every field checked for its type and size.

    Raises ``FormatError`` naming the field that is wrong (the probe's output may come
    from anywhere: a posted snapshot, an interpreter lockd does not control).
    """
    fields = Fields(data, "")
    if fields.optional_integer("probe") != PROBE_VERSION:
        raise FormatError(f"unexpected probe output (not probe version {PROBE_VERSION}).")
    python = Interpreter.read(fields.object("python"))
    dists, shadowed = split_shadowed(Dist.read(d) for d in fields.objects("dists"))
    torch: TorchFlavour | None = None
    raw_torch = fields.optional_raw_object("torch")
    torch_dist = next((d for d in dists if d.canonical_name == "torch"), None)
    if raw_torch is not None and torch_dist is not None:
        files = Fields(raw_torch, "torch")
        torch = classify_torch(
            torch_dist.version,
            files.optional_text("version_py"),
            files.optional_texts("record_libs"),
            {d.canonical_name: d.version for d in dists},
        )
    return ProbeResult(python, dists, shadowed, torch)


def split_shadowed(dists: Iterable[Dist]) -> tuple[tuple[Dist, ...], tuple[Dist, ...]]:
    """(effective, shadowed): the first dist of each name along sys.path wins, like import."""
    effective: dict[str, Dist] = {}
    shadowed: list[Dist] = []
    for dist in dists:
        name = canonicalize_name(dist.name)
        if name in effective:
            shadowed.append(dist)
        else:
            effective[name] = dist
    return (
        tuple(sorted(effective.values(), key=_by_name)),
        tuple(sorted(shadowed, key=_by_name)),
    )


def _by_name(dist: Dist) -> str:
    return canonicalize_name(dist.name)


# --- files of an image's root file system -----------------------------------------------------

_GONE_STATES = frozenset({"not-installed", "config-files"})


def parse_dpkg_status(text: str) -> tuple[DebPackage, ...]:
    """``/var/lib/dpkg/status`` (or a distroless ``status.d`` file), as ``dpkg-query -W`` lists it.

    Names carry ``:arch`` for ``Multi-Arch: same`` packages, as ``${binary:Package}``
    prints them; removed packages that keep their configuration are left out.
    """
    packages: list[DebPackage] = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # a continuation line (descriptions, conffiles)
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        name, version = fields.get("package"), fields.get("version")
        status = fields.get("status", "install ok installed").split()
        if not name or not version or (status and status[-1] in _GONE_STATES):
            continue
        arch = fields.get("architecture", "")
        if fields.get("multi-arch") == "same" and arch:
            name = f"{name}:{arch}"
        packages.append(DebPackage(name, version, arch))
    return tuple(sorted(packages, key=lambda p: p.name))


def glibc_from_packages(
    packages: Iterable[DebPackage | RpmPackage], name: str = "libc6"
) -> str | None:
    """The glibc release from its package's version: Debian's ``libc6`` (``2.36-9+deb12u4``
    -> ``2.36``), RPM's ``glibc`` (``2.34-100.el9`` -> ``2.34``)."""
    for package in packages:
        if package.name.split(":")[0] == name:
            match = re.match(r"(\d+\.\d+)", package.version.split(":")[-1])
            if match:
                return match[1]
    return None


_GLIBC_BANNER = re.compile(rb"GNU C Library [^\n]*?(?:release )?version (\d+\.\d+)")


def glibc_from_libc(data: bytes) -> str | None:
    """The release from ``libc.so.6``'s banner (``GNU C Library … release version 2.36``)."""
    match = _GLIBC_BANNER.search(data)
    return match[1].decode() if match else None
