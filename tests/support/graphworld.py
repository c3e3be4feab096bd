"""An index whose packages exercise every way a requirement can apply, built in code.

Extras (``requests[socks]``), an extra that turns on other extras of its own
package (``bigpkg[all]``), markers on the platform (``colorama`` for tqdm on
Windows only) and on the Python version (``tomli`` below 3.12), a dependency
cycle (``cyc-a`` <-> ``cyc-b``), shared children (``six``), and two releases
of pandas whose requirement on numpy differs. Also the comparison the
acceptance tests make: what ``uv pip compile --annotate`` says brought each
package in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lockd.resolvers.uv import hermetic_env, uv_binary
from lockd.targets import parse_target_id

from .pyindex import Index
from .wheels import WheelSpec as W


def add_graph_world(index: Index) -> Index:
    index.add(W("numpy", "2.1.0"))
    index.add(W("pandas", "2.2.0", requires=("numpy>=1.26", "python-dateutil>=2.8.2")))
    index.add(W("python-dateutil", "2.9.0", requires=("six>=1.5",)))
    index.add(W("six", "1.16.0"))
    index.add(
        W(
            "requests",
            "2.32.3",
            requires=(
                "idna<4,>=2.5",
                "urllib3<3,>=1.21.1",
                'PySocks!=1.5.7,>=1.5.6; extra == "socks"',
                'chardet<6,>=3.0.2; extra == "use-chardet-on-py3"',
            ),
            extras=("socks", "use-chardet-on-py3"),
        )
    )
    index.add(W("idna", "3.10"))
    index.add(W("urllib3", "2.2.3"))
    index.add(W("urllib3", "2.3.0"))
    index.add(W("pysocks", "1.7.1"))
    index.add(W("chardet", "5.2.0"))
    index.add(W("tqdm", "4.67.1", requires=('colorama; platform_system == "Windows"',)))
    index.add(W("colorama", "0.4.6"))
    index.add(
        W(
            "anyio",
            "4.6.0",
            requires=(
                "idna>=2.8",
                'tomli>=1.1; python_version < "3.12"',
                'exceptiongroup>=1.0.2; python_version < "3.11"',
            ),
        )
    )
    index.add(W("tomli", "2.0.2"))
    index.add(W("exceptiongroup", "1.2.2"))
    index.add(
        W(
            "bigpkg",
            "1.0",
            requires=(
                'bigpkg[fast,net]; extra == "all"',
                'six; extra == "fast"',
                'requests[use-chardet-on-py3]; extra == "net"',
            ),
            extras=("all", "fast", "net"),
        )
    )
    index.add(W("cyc-a", "1.0", requires=("cyc-b",)))
    index.add(W("cyc-b", "1.0", requires=("cyc-a>=1",)))
    return index


def uv_annotations(
    inputs: list[str], cwd: Path, index_url: str, target: str, *extra: str
) -> dict[str, set[str]]:
    """Package -> the ``# via`` entries ``uv pip compile`` writes for ``target``."""
    parsed = parse_target_id(target)
    out = cwd / f"uv-{target}.txt"
    proc = subprocess.run(
        [
            uv_binary(),
            "pip",
            "compile",
            *inputs,
            *extra,
            "--format",
            "requirements.txt",
            "--annotation-style",
            "split",
            "--python-version",
            parsed.python_version,
            "--python-platform",
            parsed.platform.uv_platform(),
            "--python",
            sys.executable,
            "--index-url",
            index_url,
            "--no-header",
            "--quiet",
            "--output-file",
            str(out),
        ],
        cwd=cwd,
        env=hermetic_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return parse_via(out.read_text())


def parse_via(text: str) -> dict[str, set[str]]:
    """``# via`` annotations of a pip-compile style requirements file, per package."""
    found: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith(("#", "-")):
            current = line.split("==")[0].split(" @ ")[0].strip()
            found[current] = set()
        elif stripped.startswith("# via "):
            found[current].add(stripped.removeprefix("# via ").strip())
        elif stripped.startswith("#   "):
            found[current].add(stripped.removeprefix("#").strip())
    return found
