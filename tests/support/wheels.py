"""Build tiny but real wheels: valid zip, METADATA, WHEEL and RECORD; install them with uv."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class WheelSpec:
    """One wheel to build. ``tag`` is the ``py-abi-platform`` part of the file name."""

    name: str
    version: str
    tag: str = "py3-none-any"
    requires: tuple[str, ...] = ()
    requires_python: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    # Files whose bytes matter (compiled .so, deliberately broken ELF, …).
    binary_files: Mapping[str, bytes] = field(default_factory=dict)
    extras: tuple[str, ...] = ()  # Provides-Extra

    @property
    def dist_name(self) -> str:
        return canonicalize_name(self.name).replace("-", "_")

    @property
    def filename(self) -> str:
        return f"{self.dist_name}-{self.version}-{self.tag}.whl"

    def metadata(self) -> str:
        lines = ["Metadata-Version: 2.1", f"Name: {self.name}", f"Version: {self.version}"]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines += [f"Provides-Extra: {extra}" for extra in self.extras]
        lines += [f"Requires-Dist: {req}" for req in self.requires]
        return "\n".join(lines) + "\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(spec: WheelSpec) -> bytes:
    """Return the bytes of a wheel that pip and uv install."""
    info = f"{spec.dist_name}-{spec.version}.dist-info"
    root_is_purelib = spec.tag.endswith("-any")
    contents: dict[str, bytes] = {path: text.encode() for path, text in spec.files.items()}
    contents.update(spec.binary_files)
    if not contents:
        contents[f"{spec.dist_name}/__init__.py"] = f'__version__ = "{spec.version}"\n'.encode()
    contents[f"{info}/METADATA"] = spec.metadata().encode()
    contents[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: lockd-tests\n"
        f"Root-Is-Purelib: {'true' if root_is_purelib else 'false'}\n"
        + "".join(f"Tag: {t}\n" for t in _expand_tags(spec.tag))
    ).encode()
    record = [_record_line(path, data) for path, data in contents.items()]
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            info_entry = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info_entry, data)
    return buffer.getvalue()


def _expand_tags(tag: str) -> Iterable[str]:
    pythons, abis, platforms = tag.split("-")
    for py in pythons.split("."):
        for abi in abis.split("."):
            for plat in platforms.split("."):
                yield f"{py}-{abi}-{plat}"


def write_wheels(directory: Path, specs: Iterable[WheelSpec]) -> list[Path]:
    """Build each wheel into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs:
        path = directory / spec.filename
        path.write_bytes(build_wheel(spec))
        paths.append(path)
    return paths


def make_venv(
    path: Path,
    specs: Sequence[WheelSpec] = (),
    *,
    env: Mapping[str, str],
    requirements: Sequence[str] | None = None,
    python: str = sys.executable,
) -> Path:
    """Create a venv at ``path`` with uv and install ``specs`` offline; return its python.

    The wheels are served by ``--find-links`` (no index, no cache), so the result is the
    same on every machine; ``env`` must be hermetic (no inherited PIP_*/UV_* settings).
    ``requirements`` defaults to ``name==version`` of every spec.
    """
    from uv import find_uv_bin

    uv = find_uv_bin()
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(path)], env=env, check=True)
    interpreter = path / "bin" / "python"
    if specs:
        wheels = path.with_name(f"{path.name}-wheels")
        write_wheels(wheels, specs)
        reqs = requirements or [f"{spec.name}=={spec.version}" for spec in specs]
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--no-cache",
                "--find-links",
                str(wheels),
                "--python",
                str(interpreter),
                *reqs,
            ],
            env=env,
            check=True,
        )
    return interpreter
