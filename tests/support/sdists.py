"""Source distributions whose build leaves a mark: proof of whether lockd ran their code.

The sdist carries its own PEP 517 backend (``backend-path = ["."]``, no build
requirements, so a build needs no index), in a file named ``setup.py``: like a
real setup.py, its module-level code runs as soon as any build starts, and it
appends a line to ``marker``. PKG-INFO says Metadata-Version 2.1 and the
pyproject has no ``[project]`` table, so a resolver cannot learn the metadata
without building.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

from packaging.utils import canonicalize_name

_BACKEND = """
import base64, hashlib, os, zipfile

with open({marker!r}, "a") as mark:
    mark.write("built {name} {version}\\n")

DIST = "{dist}-{version}"
METADATA = "Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    info = os.path.join(directory, DIST + ".dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as handle:
        handle.write(METADATA)
    return DIST + ".dist-info"


def build_wheel(directory, config_settings=None, metadata_directory=None):
    name = DIST + "-py3-none-any.whl"
    files = {{
        "{dist}/__init__.py": b"",
        DIST + ".dist-info/METADATA": METADATA.encode(),
        DIST + ".dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
    }}
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{{path}},sha256={{digest.decode()}},{{len(data)}}")
        record.append(DIST + ".dist-info/RECORD,,")
        archive.writestr(DIST + ".dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""


@dataclass(frozen=True)
class SdistSpec:
    """An sdist-only release whose build appends a line to ``marker``."""

    name: str
    version: str
    marker: str
    requires_python: str | None = None

    @property
    def dist_name(self) -> str:
        return canonicalize_name(self.name).replace("-", "_")

    @property
    def filename(self) -> str:
        return f"{self.dist_name}-{self.version}.tar.gz"

    def metadata(self) -> str:
        return f"Metadata-Version: 2.1\nName: {self.name}\nVersion: {self.version}\n"


def build_sdist(spec: SdistSpec) -> bytes:
    root = f"{spec.dist_name}-{spec.version}"
    backend = _BACKEND.format(
        marker=spec.marker, name=spec.name, version=spec.version, dist=spec.dist_name
    )
    files = {
        f"{root}/PKG-INFO": spec.metadata(),
        f"{root}/pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "setup"\n'
        'backend-path = ["."]\n',
        f"{root}/setup.py": backend,
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
