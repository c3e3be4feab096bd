"""Stdlib-only probe, run *inside* the interpreter being snapshotted (Python 3.8+).

lockd passes this file's source to ``python -c``; it prints ``MARKER`` and one
JSON object on stdout. It never imports the installed packages (importing
torch is slow and can fail): it reads the ``*.dist-info`` / ``*.egg-info``
directories on ``sys.path``. Everything that needs judgement (torch flavour,
shadowing) is decided by lockd from this raw data, with pure functions.

Keep it compatible with Python 3.8 and free of third-party imports.
"""

# It runs on every snapshot: plain os.path keeps it lean (no pathlib import in the target).
# ruff: noqa: PTH112, PTH118, PTH123, PTH208

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import site
import sys
import sysconfig

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs the target ~10 ms to import; annotations are strings
    from collections.abc import Callable
    from typing import Any

    Reader = Callable[[str], "bytes | None"]

# Bumped when the shape of the printed object changes; lockd checks it.
PROBE_VERSION = 1
# Printed before the JSON: a sitecustomize or .pth file may print to stdout first.
MARKER = "\n--- lockd probe output ---\n"


def _read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _read_text(path: str, read: Reader = _read_bytes) -> str | None:
    data = read(path)
    return None if data is None else data.decode("utf-8", "replace")


def _headers(text: str) -> dict[str, str]:
    """``Name`` and ``Version`` of a METADATA/PKG-INFO header block (first occurrence wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # end of the header block; the long description follows
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("name", "version") and key not in found:
            found[key] = value.strip()
    return found


# Files installers add to a dist-info directory: not part of the wheel, and they differ
# between two installs of the same wheel (uv_cache.json holds a timestamp).
_INSTALLER_FILES = ("INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json", "RECORD")


def _record(path: str, read: Reader = _read_bytes) -> list[tuple[str, str]] | None:
    """(path, hash) of each RECORD line; ``None`` when there is no RECORD."""
    data = read(os.path.join(path, "RECORD"))
    if data is None:
        return None
    entries = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.rsplit(",", 2)  # a path with a comma is quoted, the hash and size are not
        if len(parts) == 3:
            entries.append((parts[0].strip('"'), parts[1]))
    return entries


def _record_digest(record: list[tuple[str, str]]) -> str:
    """sha256 of the RECORD entries that come from the wheel, as sorted ``path,hash`` lines.

    Left out: installer files, byte code (pip compiles and records it, uv does not) and
    files outside site-packages (scripts get a shebang naming the interpreter). What is
    left changes when a wheel is swapped for another build with the same version, and
    nothing else.
    """
    lines = []
    for path, digest in record:
        head, _, name = path.rpartition("/")
        if (
            not digest
            or path.startswith(("../", "/"))
            or "/__pycache__/" in "/" + path
            or path.endswith(".pyc")
            or (head.endswith(".dist-info") and name in _INSTALLER_FILES)
        ):
            continue
        lines.append(path + "," + digest)
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _dist(
    location: str,
    entry: str,
    read: Reader = _read_bytes,
    isdir: Callable[[str], bool] = os.path.isdir,
) -> dict[str, Any] | None:
    """One dist's metadata. ``read`` and ``isdir`` are lockd's seam for image file systems."""
    path = os.path.join(location, entry)
    if entry.endswith(".dist-info"):
        metadata_path = os.path.join(path, "METADATA")
    elif isdir(path):  # legacy setuptools .egg-info directory
        metadata_path = os.path.join(path, "PKG-INFO")
    else:  # a bare .egg-info file is the PKG-INFO itself
        metadata_path = path
    text = _read_text(metadata_path, read)
    if text is None:
        return None
    headers = _headers(text)
    if "name" not in headers or "version" not in headers:
        return None
    record = _record(path, read)
    installer = (_read_text(os.path.join(path, "INSTALLER"), read) or "").strip() or None
    direct_url: Any = None
    direct_text = _read_text(os.path.join(path, "direct_url.json"), read)
    if direct_text is not None:
        try:
            direct_url = json.loads(direct_text)
        except ValueError:
            direct_url = {"invalid": direct_text[:200]}
    return {
        "name": headers["name"],
        "version": headers["version"],
        "installer": installer,
        "direct_url": direct_url,
        "record_sha256": _record_digest(record) if record is not None else None,
        "location": location,
        "metadata_dir": entry,
        "_record": record,
    }


def _torch(dist: dict[str, Any], read: Reader = _read_bytes) -> dict[str, Any]:
    """Raw material for the torch flavour: version.py text and the torch/lib files of RECORD."""
    record = dist["_record"]
    libs = None  # None: there is no RECORD to look at
    if record is not None:
        prefix = "torch/lib/"
        libs = sorted(path[len(prefix) :] for path, _ in record if path.startswith(prefix))
    return {
        "version_py": _read_text(os.path.join(dist["location"], "torch", "version.py"), read),
        "record_libs": libs,
    }


def _unique_dirs(candidates: list[str]) -> list[str]:
    """Existing directories, each once (``lib64`` is often a link to ``lib``)."""
    seen: set[str] = set()
    unique = []
    for candidate in candidates:
        real = os.path.realpath(candidate) if candidate else ""
        if real and real not in seen and os.path.isdir(real):
            seen.add(real)
            unique.append(candidate)
    return unique


def _search_path() -> list[str]:
    entries = list(sys.path)
    if entries and entries[0] == "":  # added by ``-c``: the caller's cwd is not the environment
        entries = entries[1:]
    return _unique_dirs(entries)


def _site_packages() -> list[str]:
    paths = sysconfig.get_paths()
    candidates = [paths.get("purelib", ""), paths.get("platlib", "")]
    if hasattr(site, "getsitepackages"):  # absent in venvs made by old virtualenv
        candidates += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    return _unique_dirs(candidates)


def probe() -> dict[str, Any]:
    """Everything lockd needs to know about this interpreter, as JSON-ready data."""
    dists: list[dict[str, Any]] = []
    torch: dict[str, Any] | None = None
    search = _search_path()
    for location in search:
        try:
            entries = sorted(os.listdir(location))
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            dist = _dist(location, entry)
            if dist is None:
                continue
            if torch is None and re.sub(r"[-_.]+", "-", dist["name"]).lower() == "torch":
                torch = _torch(dist)
            del dist["_record"]
            dists.append(dist)
    impl = sys.implementation
    impl_version = "{}.{}.{}".format(*impl.version[:3])
    if impl.version.releaselevel != "final":
        impl_version += f"{impl.version.releaselevel[0]}{impl.version.serial}"
    return {
        "probe": PROBE_VERSION,
        "python": {
            "executable": sys.executable,
            "version": platform.python_version(),
            "implementation": impl.name,
            "implementation_version": impl_version,
            "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
            "platform": sysconfig.get_platform(),
            "machine": platform.machine(),
            "soabi": sysconfig.get_config_var("SOABI"),
            "pointer_bits": 64 if sys.maxsize > 2**32 else 32,
            "site_packages": _site_packages(),
            "sys_path": search,
        },
        "dists": dists,
        "torch": torch,
    }


# -- posting to `lockd serve` without lockd installed ---------------------------------------
#
#   python3 _probe.py --json                 # the probe's object as plain JSON
#   LOCKD_TOKEN=... python3 _probe.py --post https://lockd.example/ \
#       --project vision --target linux-x86_64-py311-cu124 --deployment prod-eu-1
#
# Exit codes as lockd's: 0 clean, 1 drift, 2 refused (token, scope, names), 3 failure.

USAGE = (
    "usage: python3 _probe.py [--json | --post URL --project NAME --target ID "
    "--deployment NAME [--lockset HASH] [--timeout SECONDS]]"
)


def post(
    url: str, body: bytes, query: dict[str, str], token: str, timeout: float
) -> tuple[int, bytes]:
    """POST ``body`` to ``url``/api/v1/snapshots?``query``; (HTTP status, answer body).

    Status 0 means the server could not be reached (the answer is the reason). The
    token travels in the Authorization header only and is never printed.
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    endpoint = url.rstrip("/") + "/api/v1/snapshots?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(endpoint, data=body, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, ValueError) as err:  # refused, DNS, TLS, timeout, a malformed URL
        reason = getattr(err, "reason", None) or err
        return 0, str(reason).encode("utf-8", "replace")


def outcome(status: int, answer: bytes) -> tuple[int, str]:
    """(exit code, one line for a person) for a server's answer: at most ~300 characters
    of anything the server said, whatever it sent."""
    text = answer.decode("utf-8", "replace")
    if status == 0:
        return 3, "could not reach the lockd server: " + text[:300]
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if status == 200 and isinstance(data, dict):
        findings = data.get("findings")
        findings = findings if isinstance(findings, list) else []
        report = "drift report " + str(data.get("hash", ""))[:12]
        if data.get("status") == "clean":
            return 0, report + ": clean"
        kinds = sorted({str(f.get("kind"))[:40] for f in findings if isinstance(f, dict)})
        return 1, f"{report}: {len(findings)} finding(s): {', '.join(kinds)[:300]}"
    detail = data.get("detail") if isinstance(data, dict) else None
    message = f"the lockd server answered {status}: {str(detail or text)[:300]}"
    return (2 if 400 <= status < 500 else 3), message


def _main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    flags = ("--post", "--project", "--target", "--deployment", "--lockset", "--timeout")
    args = list(argv)
    while args:
        flag = args.pop(0)
        if flag == "--json":
            options["json"] = "1"
        elif flag in flags and args:
            options[flag[2:]] = args.pop(0)
        else:
            sys.stderr.write(USAGE + "\n")
            return 2
    if "json" in options:
        sys.stdout.write(json.dumps(probe()) + "\n")
        return 0
    missing = [f for f in ("post", "project", "target", "deployment") if not options.get(f)]
    token = os.environ.get("LOCKD_TOKEN", "")
    if missing or not token:
        wanted = ["--" + f for f in missing] + ([] if token else ["LOCKD_TOKEN"])
        sys.stderr.write("missing: " + ", ".join(wanted) + "\n" + USAGE + "\n")
        return 2
    import urllib.parse

    if "@" in urllib.parse.urlsplit(options["post"]).netloc:
        sys.stderr.write("the --post URL carries credentials (user:password@): remove them; ")
        sys.stderr.write("the probe authenticates with LOCKD_TOKEN only\n")
        return 2
    query: dict[str, str] = {
        k: options[k] for k in ("project", "target", "deployment", "lockset") if k in options
    }
    status, answer = post(
        options["post"],
        json.dumps(probe()).encode("utf-8"),
        query,
        token,
        float(options.get("timeout", "30")),
    )
    code, line = outcome(status, answer)
    if status == 200:
        sys.stdout.write(answer.decode("utf-8", "replace").rstrip("\n") + "\n")
    sys.stderr.write(line + "\n")
    return code


if __name__ == "__main__":
    if len(sys.argv) > 1:  # run as a script with options (under ``-c``, argv is ["-c"])
        sys.exit(_main(sys.argv[1:]))
    sys.stdout.write(MARKER + json.dumps(probe()))
