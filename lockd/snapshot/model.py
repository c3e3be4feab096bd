"""What one environment contains, as frozen values with a versioned JSON form.

Every probe that can fail is a ``Probe[T]``: ``Available(value)`` or
``Unavailable(reason)``. An empty value (no Debian packages, no unresolved
library) therefore always means "looked, found none", never "could not look".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

from packaging.utils import canonicalize_name

from lockd.errors import FormatError, excerpt
from lockd.fields import Fields

from .image import ImageFacts

SNAPSHOT_VERSION = "lockd.snapshot/2"
# /1 had no "plugin" library status and counted every .so as loaded; its documents still read.
READABLE_VERSIONS = ("lockd.snapshot/1", SNAPSHOT_VERSION)
# What a message may repeat of an unknown "version": a format name this lockd might not know yet.
_VERSION_SHAPE = re.compile(r"(?:lockd\.snapshot/)?[0-9]{1,4}")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Available(Generic[T]):
    """A probe that answered."""

    value: T
    ok: ClassVar[Literal[True]] = True

    def or_none(self) -> T:
        return self.value


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A probe that could not answer, and why (``"dpkg-query not on PATH"``)."""

    reason: str
    ok: ClassVar[Literal[False]] = False

    def or_none(self) -> None:
        return None


Probe: TypeAlias = Available[T] | Unavailable


def probe_to_dict(probe: Probe[T], encode: Callable[[T], Any]) -> dict[str, Any]:
    if isinstance(probe, Available):
        return {"status": "available", "value": encode(probe.value)}
    return {"status": "unavailable", "reason": probe.reason}


def probe_from_dict(fields: Fields, decode: Callable[[Fields], T]) -> Probe[T]:
    """A probe's answer; ``decode`` reads the value from the probe's fields (``"value"``)."""
    if fields.choice("status", ("available", "unavailable")) == "available":
        return Available(decode(fields))
    return Unavailable(fields.text("reason"))


@dataclass(frozen=True, slots=True)
class Interpreter:
    """The Python interpreter of the environment, as it describes itself."""

    executable: str
    version: str  # "3.11.7"
    implementation: str  # "cpython"
    implementation_version: str
    prefix: str
    base_prefix: str
    platform: str  # sysconfig.get_platform(): "linux-x86_64"
    machine: str  # platform.machine(): "x86_64"
    soabi: str | None
    pointer_bits: int
    site_packages: tuple[str, ...]
    sys_path: tuple[str, ...]

    @property
    def minor(self) -> str:
        """``"3.11"``."""
        return ".".join(self.version.split(".")[:2])

    @property
    def is_venv(self) -> bool:
        return self.prefix != self.base_prefix

    def to_dict(self) -> dict[str, Any]:
        return {
            "executable": self.executable,
            "version": self.version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "prefix": self.prefix,
            "base_prefix": self.base_prefix,
            "platform": self.platform,
            "machine": self.machine,
            "soabi": self.soabi,
            "pointer_bits": self.pointer_bits,
            "site_packages": list(self.site_packages),
            "sys_path": list(self.sys_path),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interpreter:
        return cls.read(Fields(data, "python"))

    @classmethod
    def read(cls, fields: Fields) -> Interpreter:
        """From an untrusted document: every field checked (``FormatError``)."""
        return cls(
            executable=fields.text("executable"),
            version=fields.text("version"),
            implementation=fields.text("implementation"),
            implementation_version=fields.text("implementation_version"),
            prefix=fields.text("prefix"),
            base_prefix=fields.text("base_prefix"),
            platform=fields.text("platform"),
            machine=fields.text("machine"),
            soabi=fields.optional_text("soabi"),
            pointer_bits=fields.integer("pointer_bits"),
            site_packages=fields.texts("site_packages"),
            sys_path=fields.texts("sys_path"),
        )


@dataclass(frozen=True, slots=True)
class Dist:
    """One installed distribution.

    ``record_sha256`` digests the RECORD entries that came from the wheel (sorted
    ``path,hash`` lines; installer files, byte code and scripts left out): a wheel
    swapped for another build with the same version string changes it, installing
    the same wheel again (with pip or uv) does not. ``None`` only when the dist has
    no RECORD (legacy ``.egg-info`` installs).
    """

    name: str
    version: str
    installer: str | None
    direct_url: Mapping[str, Any] | None  # PEP 610 direct_url.json, as written
    record_sha256: str | None
    location: str  # the sys.path entry it was found in
    metadata_dir: str  # "torch-2.4.0+cu124.dist-info"

    @property
    def canonical_name(self) -> str:
        return canonicalize_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "installer": self.installer,
            "direct_url": dict(self.direct_url) if self.direct_url is not None else None,
            "record_sha256": self.record_sha256,
            "location": self.location,
            "metadata_dir": self.metadata_dir,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dist:
        return cls.read(Fields(data, "dist"))

    @classmethod
    def read(cls, fields: Fields) -> Dist:
        """From an untrusted document: every field checked (``FormatError``)."""
        return cls(
            name=fields.text("name"),
            version=fields.text("version"),
            installer=fields.optional_text("installer"),
            direct_url=_direct_url(fields),
            record_sha256=fields.optional_text("record_sha256"),
            location=fields.text("location"),
            metadata_dir=fields.text("metadata_dir"),
        )


def _direct_url(dist: Fields) -> Mapping[str, Any] | None:
    """PEP 610's object, kept whole; the parts drift reads (``url``, ``archive_info``'s
    hashes, ``dir_info``) are checked for their types here."""
    raw = dist.optional_raw_object("direct_url")
    if raw is None:
        return None
    fields = Fields(raw, f"{dist.where}.direct_url")
    fields.optional_text("url")
    if raw.get("archive_info") is not None:
        archive = fields.object("archive_info")
        archive.optional_text("hash")
        archive.text_map("hashes", required=False)
    if raw.get("dir_info") is not None:
        fields.object("dir_info")
    return raw


class TorchKind(StrEnum):
    cpu = "cpu"
    cuda = "cuda"
    rocm = "rocm"
    xpu = "xpu"
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class TorchFlavour:
    """Which build of torch is installed, decided from files (torch is never imported).

    ``dist_version`` is the dist-info version (``2.6.0`` for PyPI's default CUDA
    build); ``module_version`` is ``torch.__version__`` read from ``torch/version.py``
    (``2.6.0+cu124``). ``evidence`` says what each source showed, in the order
    they were consulted.
    """

    kind: TorchKind
    cuda: str | None  # "12.4"
    evidence: tuple[str, ...]
    dist_version: str
    module_version: str | None
    hip: str | None = None  # ROCm builds: torch.version.hip

    @property
    def accelerator(self) -> str | None:
        """The accelerator as lockd's targets name it (``cu124``, ``cpu``, ``rocm6.1``, ``xpu``)."""
        if self.kind is TorchKind.cpu or self.kind is TorchKind.xpu:
            return self.kind.value
        if self.kind is TorchKind.cuda and self.cuda:
            return "cu" + "".join(self.cuda.split(".")[:2])
        if self.kind is TorchKind.rocm and self.hip:
            return "rocm" + ".".join(self.hip.split("-")[0].split(".")[:2])
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "cuda": self.cuda,
            "hip": self.hip,
            "dist_version": self.dist_version,
            "module_version": self.module_version,
            "evidence": list(self.evidence),
        }

    @classmethod
    def read(cls, fields: Fields) -> TorchFlavour:
        """From an untrusted document: every field checked (``FormatError``)."""
        return cls(
            kind=TorchKind(fields.choice("kind", tuple(TorchKind))),
            cuda=fields.optional_text("cuda"),
            evidence=fields.texts("evidence"),
            dist_version=fields.text("dist_version"),
            module_version=fields.optional_text("module_version"),
            hip=fields.optional_text("hip"),
        )


@dataclass(frozen=True, slots=True)
class DebPackage:
    name: str  # "libc6:amd64" for Multi-Arch: same packages, as dpkg prints it
    version: str
    architecture: str


@dataclass(frozen=True, slots=True)
class RpmPackage:
    name: str
    version: str  # "[EPOCH:]VERSION-RELEASE", as ``rpm -q`` prints it
    architecture: str  # "" for gpg-pubkey entries, which have none


@dataclass(frozen=True, slots=True)
class LdCacheEntry:
    """One line of ``ldconfig -p``: ``libz.so.1 (libc6,x86-64) => /lib/…/libz.so.1``."""

    soname: str
    flags: str  # "libc6,x86-64" (may carry ", OS ABI: Linux 3.2.0" or hwcap)
    path: str


@dataclass(frozen=True, slots=True)
class DriverVersion:
    version: str  # "550.54.14"
    source: str  # "LOCKD_CUDA_DRIVER_VERSION", "/sys/module/nvidia/version", …, "nvidia-smi"


@dataclass(frozen=True, slots=True)
class CudaToolkit:
    """The CUDA toolkit of the image (not the driver's "CUDA Version")."""

    version: str  # "12.4.1"
    source: str  # "/usr/local/cuda/version.json" or "CUDA_VERSION"
    env: Mapping[str, str] = field(default_factory=dict)  # CUDA_VERSION, NV_CUDA_CUDART_VERSION, …


class LibraryStatus(StrEnum):
    missing = "missing"  # nothing on the search path provides it: the import will fail
    driver = "driver"  # an NVIDIA driver library: mounted by the container toolkit at run time
    bundled = "bundled"  # only inside site-packages, off the search path: loaded by its package
    plugin = "plugin"  # needed only by objects no import loads (dlopen'ed plugins): information


@dataclass(frozen=True, slots=True)
class NeededLibrary:
    """A ``DT_NEEDED`` entry the dynamic loader's search path does not resolve."""

    soname: str
    status: LibraryStatus
    needed_by: tuple[str, ...]  # the .so files needing it, relative to their site-packages

    def to_dict(self) -> dict[str, Any]:
        return {
            "soname": self.soname,
            "status": self.status.value,
            "needed_by": list(self.needed_by),
        }

    @classmethod
    def read(cls, fields: Fields) -> NeededLibrary:
        return cls(
            soname=fields.text("soname"),
            status=LibraryStatus(fields.choice("status", tuple(LibraryStatus))),
            needed_by=fields.texts("needed_by"),
        )


@dataclass(frozen=True, slots=True)
class SkippedFile:
    path: str
    reason: str  # "not an ELF file", "truncated ELF header", …


@dataclass(frozen=True, slots=True)
class LibraryScan:
    """The closure of the extension modules under site-packages, and what it cannot resolve.

    ``unresolved`` holds every ``DT_NEEDED`` no search path resolves, with its
    status: only ``missing`` ones break an import. ``system`` maps the sonames
    the closure loads from outside site-packages to their paths.
    """

    roots: tuple[str, ...]
    scanned: int  # ELF files parsed under the roots
    unresolved: tuple[NeededLibrary, ...]
    system: Mapping[str, str]
    skipped: tuple[SkippedFile, ...]
    extension_modules: int | None = None  # None: a lockd.snapshot/1 scan (every .so counted)
    loaded: int | None = None  # objects the extension modules load, themselves included

    def with_status(self, status: LibraryStatus) -> tuple[NeededLibrary, ...]:
        return tuple(lib for lib in self.unresolved if lib.status is status)

    @property
    def missing(self) -> tuple[NeededLibrary, ...]:
        """Libraries an import needs and nothing provides (driver libraries excluded)."""
        return self.with_status(LibraryStatus.missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": list(self.roots),
            "scanned": self.scanned,
            "extension_modules": self.extension_modules,
            "loaded": self.loaded,
            "unresolved": [lib.to_dict() for lib in self.unresolved],
            "system": dict(self.system),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }

    @classmethod
    def read(cls, fields: Fields) -> LibraryScan:
        return cls(
            roots=fields.texts("roots"),
            scanned=fields.integer("scanned"),
            unresolved=tuple(NeededLibrary.read(lib) for lib in fields.objects("unresolved")),
            system=fields.text_map("system"),
            skipped=tuple(
                SkippedFile(s.text("path"), s.text("reason")) for s in fields.objects("skipped")
            ),
            extension_modules=fields.optional_integer("extension_modules"),
            loaded=fields.optional_integer("loaded"),
        )


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """The operating system around the interpreter; each part probed on its own."""

    os_release: Probe[Mapping[str, str]]
    glibc: Probe[str]  # "2.36"
    dpkg: Probe[tuple[DebPackage, ...]]
    rpm: Probe[tuple[RpmPackage, ...]]
    ld_cache: Probe[tuple[LdCacheEntry, ...]]
    driver: Probe[DriverVersion]
    cuda: Probe[CudaToolkit]
    libraries: Probe[LibraryScan]

    def to_dict(self) -> dict[str, Any]:
        return {
            "os_release": probe_to_dict(self.os_release, dict),
            "glibc": probe_to_dict(self.glibc, str),
            "dpkg": probe_to_dict(self.dpkg, _package_rows),
            "rpm": probe_to_dict(self.rpm, _package_rows),
            "ld_cache": probe_to_dict(
                self.ld_cache, lambda entries: [[e.soname, e.flags, e.path] for e in entries]
            ),
            "driver": probe_to_dict(
                self.driver, lambda d: {"version": d.version, "source": d.source}
            ),
            "cuda": probe_to_dict(
                self.cuda, lambda c: {"version": c.version, "source": c.source, "env": dict(c.env)}
            ),
            "libraries": probe_to_dict(self.libraries, LibraryScan.to_dict),
        }

    @classmethod
    def read(cls, fields: Fields) -> SystemInfo:
        """From an untrusted document: every field checked (``FormatError``)."""

        def probe(key: str, decode: Callable[[Fields], T]) -> Probe[T]:
            return probe_from_dict(fields.object(key), decode)

        return cls(
            os_release=probe("os_release", lambda v: v.text_map("value")),
            glibc=probe("glibc", lambda v: v.text("value")),
            dpkg=probe("dpkg", lambda v: tuple(DebPackage(*r) for r in v.text_rows("value", 3))),
            rpm=probe("rpm", lambda v: tuple(RpmPackage(*r) for r in v.text_rows("value", 3)))
            if "rpm" in fields
            else Unavailable("not probed by the lockd that took this snapshot"),
            ld_cache=probe(
                "ld_cache", lambda v: tuple(LdCacheEntry(*r) for r in v.text_rows("value", 3))
            ),
            driver=probe(
                "driver",
                lambda v: DriverVersion(
                    v.object("value").text("version"), v.object("value").text("source")
                ),
            ),
            cuda=probe("cuda", _cuda_toolkit),
            libraries=probe("libraries", lambda v: LibraryScan.read(v.object("value"))),
        )


def _package_rows(packages: tuple[DebPackage | RpmPackage, ...]) -> list[list[str]]:
    """OS packages as ``[name, version, architecture]`` rows (dpkg and rpm alike)."""
    return [[p.name, p.version, p.architecture] for p in packages]


def _cuda_toolkit(probe: Fields) -> CudaToolkit:
    value = probe.object("value")
    return CudaToolkit(value.text("version"), value.text("source"), value.text_map("env"))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one environment really contains; JSON via :meth:`to_dict` / :meth:`from_dict`.

    ``dists`` are the distributions Python imports (the first of each name along
    ``sys.path``); ``shadowed`` are further copies of a name that lie behind them.
    ``image`` is set when the environment was read from a container image.
    """

    taken_at: str  # ISO 8601, UTC
    lockd_version: str
    python: Interpreter
    dists: tuple[Dist, ...]
    shadowed: tuple[Dist, ...]
    torch: Probe[TorchFlavour]
    system: Probe[SystemInfo]
    image: ImageFacts | None = None

    # --- lookups for the drift detector -----------------------------------------------------

    @property
    def dists_by_name(self) -> dict[str, Dist]:
        """Effective dists keyed by canonical name (``typing-extensions``)."""
        return {dist.canonical_name: dist for dist in self.dists}

    def dist(self, name: str) -> Dist | None:
        """The dist Python would import for ``name`` (any spelling), or ``None``."""
        wanted = canonicalize_name(name)
        return next((d for d in self.dists if d.canonical_name == wanted), None)

    @property
    def python_version(self) -> str:
        return self.python.version

    @property
    def torch_flavour(self) -> TorchFlavour | None:
        """``None`` when torch is not installed (``torch.reason`` says so)."""
        return self.torch.or_none()

    @property
    def system_info(self) -> SystemInfo | None:
        """``None`` when the system was not probed (``--no-system``)."""
        return self.system.or_none()

    @property
    def glibc_version(self) -> str | None:
        info = self.system_info
        return info.glibc.or_none() if info else None

    @property
    def driver_version(self) -> str | None:
        info = self.system_info
        driver = info.driver.or_none() if info else None
        return driver.version if driver else None

    @property
    def cuda_toolkit_version(self) -> str | None:
        info = self.system_info
        cuda = info.cuda.or_none() if info else None
        return cuda.version if cuda else None

    @property
    def dpkg_packages(self) -> dict[str, DebPackage] | None:
        """Debian packages by name; ``None`` when dpkg was not (or could not be) queried."""
        info = self.system_info
        packages = info.dpkg.or_none() if info else None
        return {p.name: p for p in packages} if packages is not None else None

    @property
    def rpm_packages(self) -> dict[str, RpmPackage] | None:
        """RPM packages by name (a multilib name once per architecture, ``name.arch``)."""
        info = self.system_info
        packages = info.rpm.or_none() if info else None
        if packages is None:
            return None
        copies = Counter(p.name for p in packages)
        return {f"{p.name}.{p.architecture}" if copies[p.name] > 1 else p.name: p for p in packages}

    @property
    def library_scan(self) -> LibraryScan | None:
        info = self.system_info
        return info.libraries.or_none() if info else None

    @property
    def unresolved_libraries(self) -> tuple[NeededLibrary, ...] | None:
        """Every unresolved ``DT_NEEDED`` (see ``status``); ``None`` when not scanned."""
        scan = self.library_scan
        return scan.unresolved if scan else None

    @property
    def missing_libraries(self) -> tuple[NeededLibrary, ...] | None:
        """Unresolved libraries, driver and bundled ones excepted; ``None`` when not scanned."""
        scan = self.library_scan
        return scan.missing if scan else None

    # --- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {
            "version": SNAPSHOT_VERSION,
            "taken_at": self.taken_at,
            "lockd_version": self.lockd_version,
            "python": self.python.to_dict(),
            "torch": probe_to_dict(self.torch, TorchFlavour.to_dict),
            "system": probe_to_dict(self.system, SystemInfo.to_dict),
            "dists": [d.to_dict() for d in self.dists],
            "shadowed": [d.to_dict() for d in self.shadowed],
        }
        if self.image is not None:  # absent, not null, for an environment: old readers agree
            data["image"] = self.image.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "the snapshot") -> Snapshot:
        """Read a snapshot; an unknown ``version`` or a broken shape raises ``FormatError``."""
        if not isinstance(data, Mapping):
            raise FormatError(f"{source} is not a lockd snapshot (not a JSON object).")
        version = data.get("version")
        if "version" not in data:
            raise FormatError(
                f'{source} has no "version" key: a lockd snapshot names its format there '
                f'("version": "{SNAPSHOT_VERSION}").',
                hint="Send what `lockd snapshot` writes, unchanged.",
            )
        if version not in READABLE_VERSIONS:
            # Only a version-shaped value is repeated: a posted document's fields are never
            # echoed (the server answers with this message).
            said = str(version) if isinstance(version, str | int) else ""
            what = (
                f"snapshot format version {said}"
                if _VERSION_SHAPE.fullmatch(said) and not isinstance(version, bool)
                else 'a "version" that is not a snapshot format version'
            )
            raise FormatError(
                f"{source} has {what}; this lockd reads "
                + " and ".join(repr(v) for v in READABLE_VERSIONS)
                + " only.",
                hint="Take the snapshot again with this lockd, or use the lockd that wrote it.",
            )
        fields = Fields(data, "")
        try:
            return cls(
                taken_at=fields.text("taken_at"),
                lockd_version=fields.text("lockd_version"),
                python=Interpreter.read(fields.object("python")),
                dists=tuple(Dist.read(d) for d in fields.objects("dists")),
                shadowed=tuple(Dist.read(d) for d in fields.objects("shadowed")),
                torch=probe_from_dict(
                    fields.object("torch"), lambda v: TorchFlavour.read(v.object("value"))
                ),
                system=probe_from_dict(
                    fields.object("system"), lambda v: SystemInfo.read(v.object("value"))
                ),
                image=ImageFacts.read(fields.object("image")) if data.get("image") else None,
            )
        except FormatError as exc:
            raise FormatError(
                f"{source} claims {excerpt(str(version))} but its content is malformed: {exc}",
                hint="Take the snapshot again; snapshots are not meant to be edited by hand.",
            ) from None
