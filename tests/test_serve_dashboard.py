"""The dashboard, as a person sees it: headless Chromium against the real server.

Names are hostile: a project, deployments, a dist and a finding detail carry
``<script>``, quotes, an ``onerror`` image and a 200-character string. The
DOM Chromium builds must hold them as text, never as elements, and every page
must render (screenshots are kept under ``test-artifacts/serve/``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from lockd.store import Store
from tests.support.serve import (
    ARTIFACTS,
    TARGET,
    Server,
    create_token,
    fleet_lockset,
    lock_files,
    running_server,
    snapshot_doc,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

PROJECT = '<img src=x onerror="alert(1)">proj'
SCRIPT = "<script>alert('dep')</script>"
QUOTES = 'it\'s "quoted" & <b>bold</b>'
LONG = "long-" + "x" * 195
DIST = "<svg onload=alert(2)>"


@dataclass
class Dashboard:
    server: Server
    tmp: Path
    lockset: str
    drifted_report: str


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    tmp = tmp_path_factory.mktemp("dashboard")
    db = f"sqlite:///{tmp / 'lockd.db'}"
    with Store(db) as store:
        lockset, files = lock_files(fleet_lockset(PROJECT))
        store.record_lockset(lockset, files)
    token = create_token(db, "fleet", "ingest", tmp)
    with running_server(db, tmp, "--public-read") as server, server.client(token) as client:
        report = ""
        for name, doc in (
            (SCRIPT, snapshot_doc(cpu_torch=True, extra_dists=(DIST,))),
            (QUOTES, snapshot_doc()),
            (LONG, snapshot_doc(extra_dists=("extra",))),
        ):
            params = {"project": PROJECT, "target": TARGET, "deployment": name}
            answer = client.post("/api/v1/snapshots", params=params, json=doc)
            assert answer.status_code == 200, answer.text
            report = report or answer.json()["hash"]
        yield Dashboard(server, tmp, lockset.hash, report)


def chromium(tmp: Path, url: str, *, screenshot: Path | None = None) -> str:
    assert CHROMIUM is not None
    action = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--window-size=1280,1200",
            *action,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def pages(d: Dashboard) -> dict[str, str]:
    return {
        "fleet": "/",
        "deployments": "/deployments?status=drift",
        "project": f"/projects/{quote(PROJECT, safe='')}",
        "lockset": f"/locksets/{d.lockset}",
        "report": f"/reports/{d.drifted_report}",
    }


class Elements(HTMLParser):
    """The elements and attributes a DOM holds, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_hostile_names_are_text_in_every_page(dashboard: Dashboard) -> None:
    seen = ""
    for page, path in pages(dashboard).items():
        assert httpx.get(dashboard.server.url + path, timeout=60).status_code == 200, page
        dom = Elements(chromium(dashboard.tmp, dashboard.server.url + path))
        # nothing from a name became an element or an event handler
        assert not dom.tags & {"script", "img", "svg", "b", "iframe"}, (page, dom.tags)
        assert not [a for a in dom.attributes if a.startswith("on")], page
        seen += " ".join(dom.text)
    for hostile in (PROJECT, SCRIPT, QUOTES, LONG, DIST):
        assert hostile in seen  # shown as text, whole


def test_what_a_person_sees(dashboard: Dashboard) -> None:
    """Counts, the stale rule, the attention list and the 14-night grid, as text."""
    dom = chromium(dashboard.tmp, dashboard.server.url + "/")
    text = re.sub(r"<[^>]+>", " ", dom)
    text = re.sub(r"\s+", " ", text)
    assert "1 ✓ clean" in text and "2 ✗ drift" in text and "0 ○ stale" in text
    assert "cpu-wheel, unexpected" in text  # the drifted deployment's finding kinds
    assert dom.count('class="night s-drift"') == 1  # today's cell of the one target
    lockset = chromium(dashboard.tmp, dashboard.server.url + pages(dashboard)["lockset"])
    assert f"/api/v1/locksets/{dashboard.lockset}/files/pylock.{TARGET}.toml" in lockset
    assert f"/api/v1/locksets/{dashboard.lockset}/sbom" in lockset


def test_screenshots(dashboard: Dashboard) -> None:
    out = ARTIFACTS / "serve"
    out.mkdir(parents=True, exist_ok=True)
    for page, path in pages(dashboard).items():
        png = out / f"{page}.png"
        png.unlink(missing_ok=True)
        chromium(dashboard.tmp, dashboard.server.url + path, screenshot=png)
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, page
