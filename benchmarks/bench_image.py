"""Benchmark ``lockd images inspect`` on a synthetic CUDA-sized image.

Usage, from the repository root::

    .venv/bin/python -m benchmarks.bench_image [--gb 5] [--files 100000] [--rounds 3]
                                               [--skopeo-rounds N]
                                               [--work benchmarks/.work/image] [--keep]
                                               [--layout DIR] [--against DIR]

It writes an OCI image layout in code (reused when it exists): a base layer of
small files, a venv layer of dists (METADATA, RECORD, INSTALLER) and ``--gb``
gigabytes of incompressible ``.so`` files (real ELF objects built by gcc,
padded with random bytes) in gzip and zstd layers, about ``--files`` files in
all (``--zstd``: half the library layers in zstd). Then, alternating the order
every round, it times as fresh processes:

* ``read+decompress``: read each blob and decompress it, nothing else (the
  physical limit of any tool that looks inside the layers), with zlib and
  again with ISA-L's inflate (what lockd decompresses gzip with);
* ``read+decompress+sha256``: the same, hashing each blob and each
  uncompressed tar (what verifying digests and diff_ids costs at least);
* ``lockd images inspect oci:DIR:bench --format json``, with an empty
  ``LOCKD_HOME`` (every layer hashed twice: blob and ``diff_id``), and again
  with a home that already holds each layer's checked (digest, ``diff_id``)
  pair (only the blobs' digests are checked);
* ``skopeo copy`` to a second OCI layout and ``umoci unpack`` of it: what a
  user would otherwise run to look inside without a container runtime.

It prints a Markdown table of median wall seconds and peak RSS per command
(``wait4``'s ``ru_maxrss`` of each child), the ratio of lockd to the
read+decompress baseline, and the machine. The work directory is removed at
the end unless ``--keep``. ``--layout DIR`` reads an OCI layout built by an
earlier run instead (tag ``bench``; never built, changed or removed);
``--against DIR`` adds the first read by another checkout of lockd (say a
``git archive`` of main), run with the same interpreter, side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parent.parent
POOL = 64 << 20  # random bytes reused at random offsets: incompressible beyond gzip's window
SO_SIZE = 48 << 20


class _Sink:
    """A tar stream's bytes, compressed to a blob file, both digests computed on the way."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.out = path.open("wb")
        self.plain = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        if kind == "gzip":
            self.compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
        else:
            self.compressor = zstandard.ZstdCompressor(level=1).compressobj()

    def write(self, data: bytes) -> int:
        self.plain.update(data)
        self._emit(self.compressor.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.size += len(data)
            self.out.write(data)

    def close(self) -> tuple[str, str, int]:
        self._emit(self.compressor.flush())
        self.out.close()
        return "sha256:" + self.blob.hexdigest(), "sha256:" + self.plain.hexdigest(), self.size


class _Random(io.RawIOBase):
    """``size`` incompressible bytes: slices of the pool at random offsets."""

    def __init__(self, pool: bytes, size: int, head: bytes, rng: random.Random) -> None:
        self.pool, self.left, self.head, self.rng = pool, size, head, rng

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n if n > 0 else 1 << 20, self.left)
        head, self.head = self.head[:n], self.head[n:]
        fill = n - len(head)
        start = self.rng.randrange(0, len(self.pool) - fill)
        self.left -= n
        return head + self.pool[start : start + fill]


def _elf_stub(work: Path) -> bytes:
    stub = work / "stub.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(stub), "-x", "c", "-", "-Wl,-soname,libbench.so.1",
         "-lm"],
        input="double bench(double x) { return x * 2; }\n", text=True, check=True,
    )  # fmt: skip
    return stub.read_bytes()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def _layer(blobs: Path, kind: str, fill: Callable[[tarfile.TarFile], None]) -> dict[str, object]:
    temporary = blobs / f"building-{kind}"
    sink = _Sink(temporary, kind)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        archive.copybufsize = 1 << 20
        fill(archive)
    digest, diff_id, size = sink.close()
    temporary.rename(blobs / digest.removeprefix("sha256:"))
    media = "application/vnd.oci.image.layer.v1.tar+" + kind
    return {"mediaType": media, "digest": digest, "size": size, "diff_id": diff_id}


def build_image(work: Path, gigabytes: float, files: int, kinds: tuple[str, ...]) -> Path:
    layout = work / "layout"
    if (layout / "index.json").is_file():
        return layout
    shutil.rmtree(work, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    rng = random.Random(20261130)  # noqa: S311 - filler bytes, not secrets
    pool = os.urandom(POOL)
    stub = _elf_stub(work)
    site = "opt/venv/lib/python3.11/site-packages"
    small = max(files - 2000 * 4, 0)

    def base(archive: tarfile.TarFile) -> None:
        _add(archive, "etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
        status = "".join(
            f"Package: pkg{i}\nStatus: install ok installed\nArchitecture: amd64\n"
            f"Version: 1.{i}\n\n"
            for i in range(500)
        )
        _add(archive, "var/lib/dpkg/status", status.encode())
        for i in range(small):
            start = rng.randrange(0, POOL - 4096)
            _add(archive, f"usr/share/bench/{i % 500}/file{i}.txt", pool[start : start + 1500])

    def venv(archive: tarfile.TarFile) -> None:
        _add(archive, "opt/venv/pyvenv.cfg", b"home = /usr/bin\nversion = 3.11.2\n")
        for i in range(2000):
            info = f"{site}/pkg{i}-1.0.dist-info"
            _add(archive, f"{info}/METADATA", f"Name: pkg{i}\nVersion: 1.0\n\n".encode())
            _add(archive, f"{info}/INSTALLER", b"uv\n")
            _add(archive, f"{info}/RECORD", f"pkg{i}/__init__.py,sha256=x,1\n".encode())
            _add(archive, f"{site}/pkg{i}/__init__.py", b"x")

    def libraries(count: int, offset: int) -> Callable[[tarfile.TarFile], None]:
        def fill(archive: tarfile.TarFile) -> None:
            for i in range(offset, offset + count):
                info = tarfile.TarInfo(f"{site}/nvidia/lib{i}/lib/libbench{i}.so.12")
                info.size, info.mtime, info.mode = SO_SIZE, 0, 0o755
                archive.addfile(info, _Random(pool, SO_SIZE, stub, rng))

        return fill

    total = int(gigabytes * (1 << 30) / SO_SIZE) + 1
    per_layer = -(-total // len(kinds))
    layers = [_layer(blobs, "gzip", base), _layer(blobs, "gzip", venv)]
    for n, kind in enumerate(kinds):
        layers.append(_layer(blobs, kind, libraries(per_layer, n * per_layer)))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/opt/venv/bin:/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.pop("diff_id") for layer in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _blob(blobs, config, "application/vnd.oci.image.config.v1+json"),
            "layers": layers,
        }
    ).encode()
    entry = _blob(blobs, manifest, "application/vnd.oci.image.manifest.v1+json")
    entry["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return layout


def _blob(blobs: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


_READ = """
import hashlib, json, sys, zlib, zstandard
from isal import isal_zlib
layout, verify = sys.argv[1], sys.argv[2] == "1"
inflate = isal_zlib if sys.argv[3] == "isal" else zlib
index = json.load(open(layout + "/index.json"))
blobs = layout + "/blobs/sha256/"
manifest = json.load(open(blobs + index["manifests"][0]["digest"][7:]))
for layer in manifest["layers"]:
    gz = layer["mediaType"].endswith("gzip")
    d = inflate.decompressobj(31) if gz else zstandard.ZstdDecompressor().decompressobj()
    hb, hu = hashlib.sha256(), hashlib.sha256()
    with open(blobs + layer["digest"][7:], "rb") as f:
        while chunk := f.read(1 << 20):
            out = d.decompress(chunk)
            if verify:
                hb.update(chunk)
                hu.update(out)
"""


Run = tuple[float, float, int]  # wall seconds, CPU seconds (user + system), peak RSS bytes


def timed(command: list[str], env: dict[str, str], cwd: Path | None = None) -> Run:
    """Wall and CPU seconds (its waited-for children included) and peak RSS (bytes) of one
    child process."""
    start = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=cwd) as process:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with {process.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, usage.ru_maxrss * 1024


def report(results: dict[str, list[Run]], blob_bytes: int, built: float) -> None:
    """The Markdown table of the runs and the machine."""
    baseline = statistics.median(w for w, _, _ in results["read+decompress"])
    baseline_cpu = statistics.median(c for _, c, _ in results["read+decompress"])
    print(f"Image: {blob_bytes / 1e9:.2f} GB of blobs, built in {built:.0f} s\n")
    print(
        "| command | wall s (median) | min | max | × read+decompress | CPU s (median) "
        "| × read+decompress CPU | peak RSS MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, runs in results.items():
        if not runs:
            continue
        walls = [w for w, _, _ in runs]
        cpu = statistics.median(c for _, c, _ in runs)
        rss = max(r for _, _, r in runs) / 1e6
        median = statistics.median(walls)
        print(
            f"| `{name}` | {median:.1f} | {min(walls):.1f} | {max(walls):.1f} "
            f"| {median / baseline:.2f} | {cpu:.1f} | {cpu / baseline_cpu:.2f} | {rss:.0f} |"
        )
    uname = platform.uname()
    launcher = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(
        f"\nMachine: {uname.system} {uname.machine}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; peak RSS includes the launcher's {launcher:.0f} MB "
        "(counted until each child execs)"
    )


def lockd_runs(
    lockd: list[str], tree: Path, home: Path, label: str
) -> dict[str, Callable[[], Run]]:
    """A first read by the lockd of ``tree`` (an empty ``LOCKD_HOME``: every layer's
    ``diff_id`` is hashed), and a later one (a home that holds each layer's checked
    (digest, ``diff_id``) pair, if that lockd keeps them; primed here)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cold_home, warm_home = home.with_name(home.name + "-cold"), home.with_name(home.name + "-warm")

    def cold() -> Run:
        shutil.rmtree(cold_home, ignore_errors=True)
        try:
            return timed(lockd, {**env, "LOCKD_HOME": str(cold_home)}, tree)
        finally:
            shutil.rmtree(cold_home, ignore_errors=True)

    warm_env = {**env, "LOCKD_HOME": str(warm_home)}
    shutil.rmtree(warm_home, ignore_errors=True)
    timed(lockd, warm_env, tree)
    return {
        f"lockd images inspect --format json{label}": cold,
        f"lockd images inspect, layers checked before{label}": lambda: timed(lockd, warm_env, tree),
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=5.0)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/.work/image")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--layout", type=Path, help="an OCI layout built before (tag bench)")
    parser.add_argument("--against", type=Path, help="another lockd checkout to compare")
    parser.add_argument(
        "--skopeo-rounds",
        type=int,
        help="rounds that run skopeo copy + umoci unpack too (default: every round)",
    )
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--zstd",
        action="store_true",
        help="half the library layers in zstd (Debian's umoci cannot unpack zstd: not compared)",
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    work = args.work.resolve()
    started = time.perf_counter()
    kinds = ("gzip", "zstd", "gzip", "zstd") if args.zstd else ("gzip",) * 4
    if args.build_only:
        build_image(work, args.gb, args.files, kinds)
        return
    if args.layout is not None:
        layout = args.layout.resolve()
    else:
        # Built in a child: a forked child's peak RSS counts the parent's pages until it
        # execs, so the parent that times the commands stays small (it never holds the pool).
        subprocess.run([sys.executable, *sys.argv, "--build-only"], check=True)
        layout = work / "layout"
    work.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter() - started
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    python = sys.executable
    sizes = [p.stat().st_size for p in (layout / "blobs/sha256").iterdir()]
    lockd = [python, "-m", "lockd", "images", "inspect", f"oci:{layout}:bench", "--format", "json"]
    copy, bundle = work / "copy", work / "bundle"

    def skopeo_umoci() -> Run:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
        first = timed(["skopeo", "copy", "-q", f"oci:{layout}:bench", f"oci:{copy}:bench"], env)
        second = timed(["umoci", "unpack", "--image", f"{copy}:bench", str(bundle)], env)
        return first[0] + second[0], first[1] + second[1], max(first[2], second[2])

    def read(verify: str, inflate: str) -> Callable[[], Run]:
        return lambda: timed([python, "-c", _READ, str(layout), verify, inflate], env)

    commands: dict[str, Callable[[], Run]] = {
        "read+decompress": read("0", "zlib"),
        "read+decompress (ISA-L inflate)": read("0", "isal"),
        "read+decompress+sha256": read("1", "zlib"),
    }
    if args.rounds:
        commands |= lockd_runs(lockd, ROOT, work / "home", "")
        if args.against is not None:
            against = args.against.resolve()
            commands |= lockd_runs(lockd, against, work / "home-against", f" ({against.name})")
    if shutil.which("skopeo") and shutil.which("umoci") and not args.zstd:
        commands["skopeo copy + umoci unpack"] = skopeo_umoci
    results: dict[str, list[Run]] = {name: [] for name in commands}
    names = list(commands)
    skopeo_rounds = args.rounds if args.skopeo_rounds is None else args.skopeo_rounds
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            if name.startswith("skopeo") and round_ >= skopeo_rounds:
                continue
            results[name].append(commands[name]())
            wall, cpu, rss = results[name][-1]
            load = Path("/proc/loadavg").read_text().split()[0]
            print(
                f"round {round_ + 1}: {name}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                f"{rss / 1e6:.0f} MB, load {load}",
                file=sys.stderr,
            )
    if args.rounds:
        report(results, sum(sizes), built)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
