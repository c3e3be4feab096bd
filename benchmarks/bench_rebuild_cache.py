"""How a drift rebuild should use uv's cache: measured, side by side, and checked for masking.

Usage (from the repository root; no network needed)::

    .venv/bin/python benchmarks/bench_rebuild_cache.py [--wheels DIR] [--rounds 3]
        [--synthetic 20 --size-mb 50] [--no-validators]

Serves every wheel of ``--wheels`` (default: ``--synthetic`` random wheels of
``--size-mb`` each) from 127.0.0.1 as a PEP 503 index whose files carry
``ETag``/``Last-Modified`` validators (as PyPI's and PyTorch's CDNs do;
``--no-validators`` drops them) and, alternating, times a fresh venv + ``uv pip
sync --require-hashes`` of all of them:

* warm shared cache (what ``drift --rebuild`` did before: a replaced file is
  installed from the cache),
* warm shared cache with ``--refresh`` (lockd's choice: revalidate everything),
* a private empty cache (``--no-cache``: download everything every time).

Then it replaces one wheel on the server under the same name and reports
which policy notices (a hash mismatch) and which installs the stale copy.
For the real CUDA 13 stack, point ``--wheels`` at a directory holding its 27
wheels (torch 2.14.1, the nvidia-* wheels, triton and their dependencies).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lockd.resolvers.uv import uv_binary  # noqa: E402
from tests.support.pyindex import QuietHTTPServer  # noqa: E402
from tests.support.wheels import WheelSpec, build_wheel  # noqa: E402


def make_handler(root: Path, validators: bool) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def send_head(self):  # type: ignore[no-untyped-def]
            path = Path(self.translate_path(self.path))
            if path.is_file() and path.suffix == ".whl":
                stat = path.stat()
                etag = f'"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"'
                if validators and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return None
                handle = path.open("rb")
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(stat.st_size))
                if validators:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
                self.end_headers()
                return handle
            return super().send_head()

    return functools.partial(Handler, directory=str(root))  # type: ignore[return-value]


def publish(root: Path, wheels: list[Path]) -> list[str]:
    """A PEP 503 tree of ``wheels`` under ``root``; the hashed requirement lines."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    lines = []
    pages: dict[str, list[str]] = {}
    for wheel in wheels:
        target = files / wheel.name
        if not target.exists():
            shutil.copy(wheel, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        name, version = wheel.name.split("-")[:2]
        project = name.lower().replace("_", "-")
        pages.setdefault(project, []).append(
            f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>'
        )
        lines.append(f"{project}=={version} --hash=sha256:{digest}")
    for project, links in pages.items():
        page = root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text("<html><body>" + "\n".join(links) + "</body></html>")
    return lines


def synthetic(directory: Path, count: int, size_mb: int) -> list[Path]:
    wheels = []
    for i in range(count):
        spec = WheelSpec(
            f"bulk{i:02d}",
            "1.0",
            binary_files={f"bulk{i:02d}/blob.bin": os.urandom(size_mb << 20)},
        )
        path = directory / spec.filename
        path.write_bytes(build_wheel(spec))
        wheels.append(path)
    return wheels


def replace_bytes(wheel: Path) -> None:
    """Other bytes under the same name (uv checks the hash before it reads the zip)."""
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF
    wheel.write_bytes(bytes(data))


def table(samples: dict[str, list[float]], caught: dict[str, bool]) -> None:
    print("| cache policy | median | replaced file noticed |\n| --- | ---: | --- |")
    for name, values in samples.items():
        noticed = "yes (hash mismatch)" if caught[name] else "**no: installed from the cache**"
        print(f"| {name} | {statistics.median(values):.2f} s | {noticed} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wheels", type=Path)
    parser.add_argument("--synthetic", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-validators", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lockd-bench-cache-"))
    try:
        source = args.wheels or base / "wheels"
        if args.wheels is None:
            source.mkdir()
            wheels = synthetic(source, args.synthetic, args.size_mb)
        else:
            wheels = sorted(p.resolve() for p in source.glob("*.whl"))
        served = base / "served"
        lines = publish(served, wheels)
        httpd = QuietHTTPServer(
            ("127.0.0.1", 0), make_handler(served, validators=not args.no_validators)
        )
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        index = f"http://127.0.0.1:{httpd.server_address[1]}/simple"
        requirements = base / "requirements.txt"
        requirements.write_text(f"--index-url {index}\n" + "\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        env.update(
            UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(base / "uv-cache")
        )
        total = sum(w.stat().st_size for w in wheels) / (1 << 20)

        def sync(*flags: str) -> tuple[float, int, str]:
            venv = base / "venv"
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run(
                [uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)],
                env=env,
                check=True,
            )
            start = time.perf_counter()
            proc = subprocess.run(
                [uv_binary(), "pip", "sync", "--require-hashes", *flags,
                 "--python", str(venv / "bin" / "python"), str(requirements)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            return time.perf_counter() - start, proc.returncode, proc.stderr

        policies = {
            "warm cache (before)": (),
            "warm cache + --refresh (lockd)": ("--refresh",),
            "private empty cache (--no-cache)": ("--no-cache",),
        }
        sync()  # fill the shared cache
        samples: dict[str, list[float]] = {name: [] for name in policies}
        for i in range(args.rounds):
            order = list(policies.items())
            for name, flags in order if i % 2 == 0 else reversed(order):
                seconds, code, stderr = sync(*flags)
                if code != 0:
                    raise SystemExit(f"{name} failed: {stderr[-800:]}")
                samples[name].append(seconds)

        # the same file name, other bytes: which policy notices?
        replace_bytes(served / "files" / wheels[0].name)
        caught = {name: sync(*flags)[1] != 0 for name, flags in policies.items()}
        httpd.shutdown()
        validators = "without validators" if args.no_validators else "with ETag/Last-Modified"
        print(
            f"{len(wheels)} wheels, {total:.0f} MiB, served from 127.0.0.1 {validators}; "
            f"fresh venv + uv pip sync --require-hashes, {args.rounds} rounds, medians\n"
        )
        table(samples, caught)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
