"""Local wheel folders named by pip's configuration (optional real wheels for a few tests).

Some machines carry real wheels (a CUDA 13.0 torch stack) in local PEP 503
folders or find-links directories that pip's configuration points at. Tests
that want them find them here and skip when there are none; they install
hermetically, naming the folders explicitly, never through pip's config.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

_KEYS = ("index-url", "extra-index-url", "find-links")


def _config_files() -> list[Path]:
    if "PIP_CONFIG_FILE" in os.environ:
        return [Path(os.environ["PIP_CONFIG_FILE"])]
    xdg = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    home = Path.home()
    return [
        *(Path(d) / "pip" / "pip.conf" for d in xdg),
        Path("/etc/pip.conf"),
        home / ".pip" / "pip.conf",
        home / ".config" / "pip" / "pip.conf",
    ]


def _locations() -> list[str]:
    values: list[str] = []
    for path in _config_files():
        parser = configparser.ConfigParser()
        try:
            parser.read(path)
        except (OSError, configparser.Error):
            continue
        for section in ("global", "install"):
            for key in _KEYS:
                if parser.has_option(section, key):
                    values += parser.get(section, key).split()
    for key in _KEYS:
        values += os.environ.get("PIP_" + key.upper().replace("-", "_"), "").split()
    return values


def local_sources() -> tuple[list[Path], list[Path]]:
    """``(simple index directories, find-links directories)`` that exist on this machine."""
    indexes: list[Path] = []
    links: list[Path] = []
    for value in _locations():
        url = urlsplit(value)
        if url.scheme == "file":
            directory = Path(unquote(url.path))
            target = (
                indexes
                if (directory / "index.html").exists() or "simple" in directory.parts
                else links
            )
        elif not url.scheme and value.startswith("/"):
            directory, target = Path(value), links
        else:
            continue
        if directory.is_dir() and directory not in target:
            target.append(directory)
    return indexes, links


def has_release(indexes: list[Path], links: list[Path], name: str, version: str) -> bool:
    """Whether a folder holds a wheel of ``name==version`` (PEP 503 page or file name)."""
    prefix = f"{name.replace('-', '_')}-{version}-"
    for index in indexes:
        page = index / name / "index.html"
        if page.is_file() and prefix in page.read_text(errors="replace"):
            return True
    return any(any(p.name.startswith(prefix) for p in d.glob("*.whl")) for d in links)


def uv_source_args(indexes: list[Path], links: list[Path]) -> list[str]:
    """uv flags naming exactly these folders (offline, any folder may serve any package)."""
    args = ["--offline", "--index-strategy", "unsafe-best-match"]
    if indexes:
        args += ["--index-url", indexes[0].as_uri()]
        for extra in indexes[1:]:
            args += ["--extra-index-url", extra.as_uri()]
    else:
        args.append("--no-index")
    for directory in links:
        args += ["--find-links", str(directory)]
    return args
