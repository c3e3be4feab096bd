"""Container images built in code: layers as real tars, pushed or written to disk.

* ``Layer`` collects tar entries (files, directories, symlinks, hard links,
  whiteouts, opaque markers, device nodes, raw headers) and renders the tar.
* ``Image`` is layers plus config (``Env``, ``Labels``, ``history``); ``parts``
  compresses each layer (gzip, zstd or none) and builds config and manifest.
* ``push`` sends them through the OCI push API (``Pusher``), ``write_oci_layout``
  and ``write_docker_archive`` write skopeo's other two transports.
* ``python_env`` lays out a Python environment (dist-info with METADATA, RECORD
  and INSTALLER; torch's ``version.py`` and ``torch/lib``), ``deb_status`` a
  dpkg database, ``shared_object`` a real ELF object compiled by gcc.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from tests.support.registry import OCI_CONFIG, OCI_MANIFEST, Pusher, digest_of

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": OCI_LAYER_TAR,
}


@dataclass
class Layer:
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = field(default_factory=list)
    created_by: str = "lockd test"

    def _info(self, path: str, kind: bytes, **values: Any) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mtime = 0
        info.mode = values.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
        for key, value in values.items():
            setattr(info, key, value)
        return info

    def file(self, path: str, data: bytes | str, mode: int = 0o644) -> Layer:
        raw = data.encode() if isinstance(data, str) else data
        self.entries.append((self._info(path, tarfile.REGTYPE, size=len(raw), mode=mode), raw))
        return self

    def dir(self, path: str) -> Layer:
        self.entries.append((self._info(path, tarfile.DIRTYPE), None))
        return self

    def symlink(self, path: str, target: str) -> Layer:
        self.entries.append((self._info(path, tarfile.SYMTYPE, linkname=target), None))
        return self

    def hardlink(self, path: str, target: str) -> Layer:
        self.entries.append((self._info(path, tarfile.LNKTYPE, linkname=target), None))
        return self

    def whiteout(self, path: str) -> Layer:
        head, _, name = path.rpartition("/")
        return self.file(f"{head}/.wh.{name}" if head else f".wh.{name}", b"")

    def opaque(self, directory: str) -> Layer:
        return self.file(f"{directory}/.wh..wh..opq", b"")

    def device(self, path: str) -> Layer:
        self.entries.append((self._info(path, tarfile.CHRTYPE, devmajor=1, devminor=3), None))
        return self

    def raw(self, info: tarfile.TarInfo, data: bytes | None = None) -> Layer:
        self.entries.append((info, data))
        return self

    def tar(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for info, data in self.entries:
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


@dataclass
class Image:
    layers: list[Layer]
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    compression: str | list[str] = "gzip"
    user: str = ""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = field(default_factory=lambda: ["python3"])

    def parts(self) -> Parts:
        kinds = (
            self.compression
            if isinstance(self.compression, list)
            else [self.compression] * len(self.layers)
        )
        tars = [layer.tar() for layer in self.layers]
        blobs = [compress(t, k) for t, k in zip(tars, kinds, strict=True)]
        config: dict[str, Any] = {
            "architecture": self.architecture,
            "os": "linux",
            "created": "2026-11-01T00:00:00Z",
            "config": {
                "Env": self.env,
                "Labels": self.labels,
                "User": self.user,
                "Entrypoint": self.entrypoint,
                "Cmd": self.cmd,
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]},
            "history": [
                {"created_by": "ENV lockd=test", "empty_layer": True},
                *({"created_by": layer.created_by} for layer in self.layers),
            ],
        }
        return Parts(
            config=json.dumps(config).encode(),
            layers=[(b, LAYER_TYPES[k]) for b, k in zip(blobs, kinds, strict=True)],
            tars=tars,
        )


@dataclass
class Parts:
    config: bytes
    layers: list[tuple[bytes, str]]  # (blob, media type)
    tars: list[bytes]

    def manifest(self) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(self.config, OCI_CONFIG),
            "layers": [_descriptor(blob, kind) for blob, kind in self.layers],
        }

    @property
    def diff_ids(self) -> list[str]:
        return [digest_of(t) for t in self.tars]


def _descriptor(data: bytes, media_type: str) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


def push(pusher: Pusher, repo: str, tag: str, parts: Parts) -> str:
    """Push config, layers and manifest; the manifest's digest."""
    pusher.blob(repo, parts.config, OCI_CONFIG)
    for blob, kind in parts.layers:
        pusher.blob(repo, blob, kind)
    return str(pusher.manifest(repo, tag, parts.manifest())["digest"])


def write_oci_layout(directory: Path, parts: Parts, tag: str = "latest") -> str:
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    manifest = json.dumps(parts.manifest(), indent=2).encode()  # as Pusher.manifest sends it
    for data in (parts.config, manifest, *(blob for blob, _ in parts.layers)):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entry = {
        **_descriptor(manifest, OCI_MANIFEST),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return digest_of(manifest)


def write_docker_archive(path: Path, parts: Parts, repo_tag: str) -> None:
    """``docker save``'s format: uncompressed layer tars, ``<id>.json`` config, manifest.json."""
    config_name = hashlib.sha256(parts.config).hexdigest() + ".json"
    layer_names = [f"{hashlib.sha256(t).hexdigest()}/layer.tar" for t in parts.tars]
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
    with tarfile.open(path, "w") as archive:
        for name, data in (
            (config_name, parts.config),
            *zip(layer_names, parts.tars, strict=True),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


# -- contents -------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def dist(
    layer: Layer,
    site: str,
    name: str,
    version: str,
    files: dict[str, bytes] | None = None,
    *,
    installer: str = "uv",
) -> Layer:
    """A dist as an installer leaves it: its files, METADATA, RECORD and INSTALLER."""
    files = dict(files or {f"{name.replace('-', '_')}/__init__.py": b""})
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    files[f"{info}/INSTALLER"] = f"{installer}\n".encode()
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in sorted(files.items()))
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    for path, data in sorted(files.items()):
        layer.file(f"{site}/{path}", data)
    return layer


def torch(layer: Layer, site: str, version: str, cuda: str | None) -> Layer:
    """torch's dist with the files its flavour is read from (version.py, torch/lib)."""
    files = {
        "torch/__init__.py": b"",
        "torch/version.py": (
            f"__version__ = '{version}'\ncuda: Optional[str] = {cuda!r}\n".encode()
        ),
        "torch/lib/libtorch_cpu.so": b"not really ELF",
    }
    if cuda:
        files["torch/lib/libtorch_cuda.so"] = b"not really ELF"
    return dist(layer, site, "torch", version, files)


def deb_status(layer: Layer, packages: list[tuple[str, str]], arch: str = "amd64") -> Layer:
    body = "\n".join(
        f"Package: {name}\nStatus: install ok installed\nArchitecture: {arch}\n"
        + ("Multi-Arch: same\n" if name.startswith("lib") else "")
        + f"Version: {version}\nDescription: {name}\n continued line\n"
        for name, version in packages
    )
    return layer.file("var/lib/dpkg/status", body)


DEBIAN_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def shared_object(
    soname: str | None = None, needed: tuple[str, ...] = (), runpath: str | None = None
) -> bytes:
    """A real ELF shared object (gcc) with these DT_SONAME, DT_NEEDED and DT_RUNPATH."""
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is needed to build ELF objects (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        args = ["-Wl,--no-as-needed"]
        for name in needed:
            stub = work / name
            subprocess.run(
                ["gcc", "-shared", "-fPIC", "-o", str(stub), "-x", "c", "-",
                 f"-Wl,-soname,{name}"],
                input="int lockd_stub;\n", text=True, check=True,
            )  # fmt: skip
            args.append(f"-l:{name}")
        out = work / "out.so"
        command = ["gcc", "-shared", "-fPIC", "-o", str(out), "-x", "c", "-", f"-L{work}"]
        if soname:
            command.append(f"-Wl,-soname,{soname}")
        if runpath:
            command.append(f"-Wl,-rpath,{runpath},--enable-new-dtags")
        subprocess.run([*command, *args], input="int lockd_x;\n", text=True, check=True)
        return out.read_bytes()
