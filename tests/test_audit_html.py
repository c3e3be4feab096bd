"""The HTML audit report: self-contained, escaped, and loaded in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.test_audit import HOSTILE, Seed, build_seed, run_lockd

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs it)"
)


@pytest.fixture
def report(tmp_path: Path) -> tuple[Seed, Path]:
    seed = build_seed(tmp_path / "lockd.db")
    out = tmp_path / "audit.html"
    run = run_lockd(tmp_path, "audit", "--db", seed.url, "--format", "html", "-o", str(out))
    assert run.returncode == 0, run.output
    return seed, out


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--window-size=1280,900",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_html_is_self_contained_and_escaped(report: tuple[Seed, Path]) -> None:
    seed, path = report
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # no external assets: no stylesheet links, no src= at all, no remote url(...)
    assert "<link" not in html
    assert " src=" not in html
    assert not re.search(r"url\(\s*['\"]?https?:", html)
    assert not re.search(r"href=\"(?!#)", html)  # only in-page anchors
    assert "@media print" in html and "beforeprint" in html
    # recorded text is escaped, never markup
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1
    assert 'id="summary-table"' in html
    for digest in seed.ml:
        assert digest in html
    assert "sha256:" + "f" * 64 in html  # a platform digest of the base image


@needs_chromium
def test_html_renders_in_headless_chromium(report: tuple[Seed, Path], tmp_path: Path) -> None:
    _, path = report
    png = tmp_path / "audit.png"
    shot = chromium(tmp_path, f"--screenshot={png}", path.as_uri())
    assert png.is_file(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    assert len(data) > 30_000  # a blank or error page compresses to a few kB

    dom = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the inline script ran to its end (it marks the body), without uncaught errors
    assert re.search(r'<body[^>]*data-ready="1"', dom.stdout), dom.stdout[:500]
    assert "Uncaught" not in dom.stderr
    assert 'id="summary-table"' in dom.stdout
    assert 'aria-sort="none"' in dom.stdout  # sortable headers were wired
    assert "ml-model" in dom.stdout
