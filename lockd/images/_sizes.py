"""Where an image's bytes go, and which of them it need not ship (pure).

Per layer: compressed and uncompressed size, files written, and the bytes of
lower layers' files it deleted or replaced ("wasted": still downloaded, never
visible). The largest directories of the final file system. Findings: a build
toolchain in the final image (compilers, ``cmake``, ``nvcc``, ``-dev``
packages), pip/uv/apt caches left behind, CUDA static libraries and headers
(a runtime image needs neither), CUDA libraries present twice (the system's
CUDA and the ``nvidia-*`` wheels), and the wasted bytes.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lockd.snapshot.model import Available, DebPackage, RpmPackage, Snapshot

from ._facts import cuda_library
from ._rootfs import Entry, RootFs

LARGEST = 12
_TOOLS = re.compile(
    r"^(?:usr/(?:local/)?bin/(?:gcc|g\+\+|c\+\+|cc|clang|clang\+\+|cmake|make|ninja|ld|as)"
    r"(?:-[\d.]+)?|usr/local/cuda[^/]*/bin/nvcc|.*/site-packages/nvidia/cuda_nvcc/bin/nvcc)$"
)
_TOOL_PACKAGES = re.compile(
    r"^(?:gcc|g\+\+|gcc-c\+\+|cpp|clang|cmake|make|ninja-build|build-essential|binutils)"
    r"(?:-[\d.]+)?$"
)
_DEV_PACKAGE = re.compile(r"-dev(?:el)?$")  # Debian's -dev, RPM's -devel
_CACHES = (
    ("pip cache", re.compile(r"^(?:root|home/[^/]+)/\.cache/pip(?:/|$)")),
    ("uv cache", re.compile(r"^(?:root|home/[^/]+)/\.cache/uv(?:/|$)")),
    ("apt archives", re.compile(r"^var/cache/apt/archives/.*\.deb$")),
    ("apt lists", re.compile(r"^var/lib/apt/lists/[^/]+_(?:Packages|Sources|InRelease|Release)")),
    ("conda packages", re.compile(r"^opt/conda/pkgs/")),
)
_CACHE_ROOTS = ("root/", "home/", "var/", "opt/conda/")  # where every _CACHES pattern starts
_CUDA_DIR = re.compile(r"(?:^|/)(?:cuda[^/]*|nvidia)/")


@dataclass(frozen=True, slots=True)
class SizeFinding:
    kind: str  # toolchain | cache | cuda-static | cuda-headers | cuda-twice | wasted
    subject: str  # a path, package or library
    bytes: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "bytes": self.bytes,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class LayerSize:
    index: int
    digest: str | None
    compressed_size: int
    size: int
    files: int
    added_bytes: int
    removed_bytes: int
    created_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "digest": self.digest,
            "compressed_size": self.compressed_size,
            "size": self.size,
            "files": self.files,
            "added_bytes": self.added_bytes,
            "removed_bytes": self.removed_bytes,
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class SizeReport:
    compressed_size: int  # what a pull downloads
    size: int  # the uncompressed layers
    files_size: int  # the final file system
    files: int
    wasted: int
    layers: tuple[LayerSize, ...]
    largest: tuple[tuple[str, int], ...]  # (directory, bytes)
    findings: tuple[SizeFinding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "compressed_size": self.compressed_size,
            "size": self.size,
            "files_size": self.files_size,
            "files": self.files,
            "wasted": self.wasted,
            "layers": [layer.to_dict() for layer in self.layers],
            "largest": [{"path": "/" + path, "bytes": size} for path, size in self.largest],
            "findings": [f.to_dict() for f in self.findings],
        }


def size_report(rootfs: RootFs, snapshot: Snapshot) -> SizeReport:
    """The size report of an image read into ``rootfs`` (``snapshot`` gives its packages)."""
    facts = snapshot.image
    created = [layer.created_by for layer in facts.layers] if facts else []
    layers = tuple(
        LayerSize(
            index=stats.index,
            digest=stats.digest,
            compressed_size=stats.compressed_size,
            size=stats.size,
            files=stats.files,
            added_bytes=stats.added_bytes,
            removed_bytes=stats.removed_bytes,
            created_by=created[stats.index] if stats.index < len(created) else None,
        )
        for stats in rootfs.layers
    )
    files = list(rootfs.files())
    wasted = sum(layer.removed_bytes for layer in layers)
    findings = [
        *_toolchain(files, snapshot),
        *_caches(files),
        *_cuda_extras(files),
        *_cuda_twice(files, snapshot.python.site_packages),
    ]
    if wasted:
        worst = max(layers, key=lambda layer: layer.removed_bytes)
        findings.append(
            SizeFinding(
                "wasted",
                f"layer {worst.index}",
                wasted,
                "bytes shipped by lower layers and deleted or replaced by later ones; most by "
                f"layer {worst.index} ({worst.created_by or 'unknown step'}): delete in the "
                "step that creates them",
            )
        )
    return SizeReport(
        compressed_size=sum(layer.compressed_size for layer in layers),
        size=sum(layer.size for layer in layers),
        files_size=sum(entry.size for _, entry in files),
        files=len(files),
        wasted=wasted,
        layers=layers,
        largest=largest_directories(files),
        findings=tuple(findings),
    )


def largest_directories(
    files: Iterable[tuple[str, Entry]], count: int = LARGEST
) -> tuple[tuple[str, int], ...]:
    """The directories holding the most bytes, each split further while one child dominates.

    A directory whose largest subdirectory holds more than half of it is replaced
    by its subdirectories, so ``usr`` gives way to ``usr/local/cuda-12.4/lib64``.
    """
    own: dict[str, int] = {}  # bytes of the files directly in each directory
    for path, entry in files:
        directory = path.rpartition("/")[0]
        own[directory] = own.get(directory, 0) + entry.size
    totals: dict[str, int] = {}
    subdirs: dict[str, set[str]] = {}
    for start, size in own.items():  # then up the tree, once per directory
        directory = start
        while True:
            totals[directory] = totals.get(directory, 0) + size
            if not directory:
                break
            parent = directory.rpartition("/")[0]
            subdirs.setdefault(parent, set()).add(directory)
            directory = parent
    heap = [(-totals[d], d) for d in subdirs.get("", ())]
    heapq.heapify(heap)
    chosen: list[tuple[str, int]] = []
    while heap and len(chosen) < count:
        size, directory = heapq.heappop(heap)
        children = subdirs.get(directory, set())
        if children and max(totals[c] for c in children) * 2 > -size:
            for child in children:
                heapq.heappush(heap, (-totals[child], child))
            continue
        if -size:
            chosen.append((directory, -size))
    return tuple(chosen)


def _toolchain(files: list[tuple[str, Entry]], snapshot: Snapshot) -> list[SizeFinding]:
    found = [
        SizeFinding("toolchain", "/" + path, entry.size, "a build tool in the final image")
        for path, entry in files
        if _TOOLS.match(path)
    ]
    info = snapshot.system_info
    if info is None:
        return found
    for kind, probe in (("deb", info.dpkg), ("rpm", info.rpm)):
        packages: Sequence[DebPackage | RpmPackage] = (
            probe.value if isinstance(probe, Available) else ()
        )
        names = sorted(
            {
                p.name
                for p in packages
                if _TOOL_PACKAGES.match(p.name.split(":")[0])
                or _DEV_PACKAGE.search(p.name.split(":")[0])
            }
        )
        if names:
            found.append(
                SizeFinding(
                    "toolchain",
                    f"{kind}: "
                    + ", ".join(names[:8])
                    + (f" and {len(names) - 8} more" if len(names) > 8 else ""),
                    0,
                    f"{len(names)} build or -dev packages: build in an earlier stage, "
                    "copy the result",
                )
            )
    return found


def _caches(files: list[tuple[str, Entry]]) -> list[SizeFinding]:
    totals: dict[str, int] = {}
    for path, entry in files:
        if not path.startswith(_CACHE_ROOTS):
            continue
        for name, pattern in _CACHES:
            if pattern.match(path):
                totals[name] = totals.get(name, 0) + entry.size
    return [
        SizeFinding("cache", name, size, "left behind by an install step")
        for name, size in sorted(totals.items())
        if size
    ]


def _cuda_extras(files: list[tuple[str, Entry]]) -> list[SizeFinding]:
    static = headers = 0
    for path, entry in files:
        if ("cuda" not in path and "nvidia/" not in path) or not _CUDA_DIR.search(path):
            continue
        if path.endswith(".a"):
            static += entry.size
        elif path.endswith((".h", ".hpp", ".cuh")) and "/include/" in path:
            headers += entry.size
    found = []
    if static:
        found.append(
            SizeFinding("cuda-static", "CUDA static libraries (*.a)", static, _RUNTIME_NEEDS_NONE)
        )
    if headers:
        found.append(SizeFinding("cuda-headers", "CUDA headers", headers, _RUNTIME_NEEDS_NONE))
    return found


_RUNTIME_NEEDS_NONE = "a runtime image needs none: use a -runtime base or drop them"


def _cuda_twice(files: list[tuple[str, Entry]], site_packages: Iterable[str]) -> list[SizeFinding]:
    roots = tuple(s.strip("/") + "/" for s in site_packages)
    system: dict[str, int] = {}
    wheels: dict[str, int] = {}
    for path, entry in files:
        library = cuda_library(path)
        if not library or not entry.size:
            continue
        side = wheels if path.startswith(roots) or "/site-packages/nvidia/" in path else system
        side[library] = side.get(library, 0) + entry.size
    return [
        SizeFinding(
            "cuda-twice",
            library,
            min(system[library], wheels[library]),
            f"in the system CUDA ({system[library]} bytes) and in nvidia-* wheels "
            f"({wheels[library]} bytes): keep one",
        )
        for library in sorted(set(system) & set(wheels))
    ]
