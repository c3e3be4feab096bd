"""The sharded nightly run: every check once across N shards, balanced by recorded durations,
gathered back by `lockd drift summary`; the Kubernetes and GitHub recipes validated offline."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lockd.drift import CheckTiming, DriftReport
from lockd.errors import UsageError
from lockd.shards import (
    Check,
    Shard,
    assign,
    choose_shard,
    durations,
    history_window,
    select,
)
from lockd.store import Store
from lockd.times import parse_time
from tests.conftest import Run, hermetic_env, run_lockd
from tests.support.pyindex import IndexServer
from tests.support.world import build_world, index_at

KUBERNETES = "1.37"  # the newest release kubernetes-validate ships schemas for

# -- the assignment (pure) -----------------------------------------------------------


def test_shard_flags_and_kubernetes_indexes() -> None:
    assert Shard.parse("2/4") == Shard(2, 4)
    assert str(Shard.parse("1/1")) == "1/1"
    assert Shard.from_job_index("0", 3) == Shard(1, 3)  # Kubernetes counts from 0
    assert Shard.from_job_index("2", 3) == Shard(3, 3)
    for text, message in [
        ("0/4", "Shard 0/4 does not exist: shards are numbered 1 to 4."),
        ("5/4", "Shard 5/4 does not exist: shards are numbered 1 to 4."),
        ("2", "--shard '2' is not of the form I/N."),
        ("a/b", "--shard 'a/b' is not of the form I/N."),
        ("1/0", "--shard '1/0': the number of shards must be at least 1."),
    ]:
        with pytest.raises(UsageError) as caught:
            Shard.parse(text)
        assert caught.value.message == message
    with pytest.raises(UsageError, match="JOB_COMPLETION_INDEX=1 is set"):
        Shard.from_job_index("1", None)
    # The flag wins; else Kubernetes' index with N from --shards or LOCKD_SHARDS; else none.
    assert choose_shard("2/3", None, "0") == Shard(2, 3)
    assert choose_shard(None, 3, "0") == Shard(1, 3)
    assert choose_shard(None, None, None) is None
    with pytest.raises(UsageError) as past:  # named as it was given: no --shard in sight
        Shard.from_job_index("3", 3)
    assert past.value.message.startswith("JOB_COMPLETION_INDEX=3 is past the last of 3 shards")
    assert "--shard I/N" not in (past.value.hint or "")


def test_known_checks_are_spread_longest_first_onto_the_least_loaded_shard() -> None:
    known = {
        Check("cuda", "linux-x86_64-py311-cu124"): 600.0,
        Check("cuda", "linux-x86_64-py312-cu124"): 500.0,
        Check("web", "linux-x86_64-py311-cpu"): 300.0,
        Check("web"): 2.0,
        Check("api", "linux-x86_64-py311-cpu"): 250.0,
        Check("api", "linux-aarch64-py311-cpu"): 40.0,
    }
    plan = assign(known, known, 2)
    # 600 -> 1; 500 -> 2; 300 -> 2 (800); 250 -> 1 (850); 40 -> 2 (840); 2 -> 2 (842)
    assert plan == {
        Check("cuda", "linux-x86_64-py311-cu124"): 1,
        Check("api", "linux-x86_64-py311-cpu"): 1,
        Check("cuda", "linux-x86_64-py312-cu124"): 2,
        Check("web", "linux-x86_64-py311-cpu"): 2,
        Check("api", "linux-aarch64-py311-cpu"): 2,
        Check("web"): 2,
    }


def test_every_check_runs_on_exactly_one_shard_whatever_is_known() -> None:
    checks = [Check(f"p{p}", f"t{t}") for p in range(40) for t in range(3)]
    known = {c: float(i % 7 + 1) for i, c in enumerate(checks[:70])}
    known[Check("gone", "t0")] = 50.0  # a check of an older lockset still has history
    for count in (1, 2, 3, 5):
        slices = [select(checks, known, Shard(i, count)) for i in range(1, count + 1)]
        covered = [c for part in slices for c in part]
        assert sorted(covered, key=Check.sort_key) == sorted(checks, key=Check.sort_key)
        # the same inputs give the same slice, however often it is computed
        assert slices == [select(checks, known, Shard(i, count)) for i in range(1, count + 1)]
    # A check that appears later (a compile during the night) moves nothing else.
    plan = assign(checks, known, 3)
    later = assign([*checks, Check("new", "t0")], known, 3)
    assert {c: later[c] for c in checks} == plan


def test_a_project_wide_and_an_image_check_share_a_shard_with_its_targets() -> None:
    """Checks without a target or image order among those with one (and ties in duration)."""
    checks = [
        Check("web", "linux-x86_64-py311-cpu"),
        Check("web"),  # the base-image tags
        Check("web", "linux-x86_64-py311-cpu", "registry.example/web:prod"),
    ]
    for known in ({}, dict.fromkeys(checks, 5.0)):
        assert select(checks, known, Shard(1, 1)) == [checks[1], checks[0], checks[2]]
        assert set(assign(checks, known, 2)) == set(checks)


def test_since_takes_durations_and_times() -> None:
    now = datetime(2026, 3, 4, 6, 45, tzinfo=UTC)
    assert parse_time("24h", "--since", now=now) == datetime(2026, 3, 3, 6, 45, tzinfo=UTC)
    assert parse_time("90m", "--since", now=now) == datetime(2026, 3, 4, 5, 15, tzinfo=UTC)
    assert parse_time("7d", "--since", now=now) == datetime(2026, 2, 25, 6, 45, tzinfo=UTC)
    assert parse_time("2026-03-04T02:00Z", "--since") == datetime(2026, 3, 4, 2, tzinfo=UTC)
    assert parse_time("2026-03-04", "--since") == datetime(2026, 3, 4, tzinfo=UTC)


def test_durations_are_medians_of_the_week_before_today() -> None:
    check = Check("p", "t")
    assert durations([(check, 10.0), (check, 900.0), (check, 12.0)]) == {check: 12.0}
    since, until = history_window(datetime(2026, 3, 4, 2, 30, tzinfo=UTC))
    assert (since, until) == (
        datetime(2026, 2, 25, tzinfo=UTC),
        datetime(2026, 3, 4, tzinfo=UTC),
    )


def test_tracked_images_are_checks_of_their_own() -> None:
    """(project, target, image): a tracked image is one more check, sharded like the others."""
    from lockd.app.nightly import check_list
    from lockd.lockset import Lock, Lockset, Provenance
    from lockd.store import TrackedImage

    targets = ("linux-x86_64-py311-cpu", "linux-aarch64-py311-cpu")
    lockset = Lockset(
        project="vision",
        inputs=(),
        requirements=(),
        targets=targets,
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": "https://pypi/simple"},
        cutoff="2026-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=tuple(Lock(t, ()) for t in targets),
        images=({"reference": "python:3.11-slim"},),
    )
    tracked = [
        TrackedImage("vision", "registry.example/vision:prod", targets[0], "2026-01-02T00:00:00Z"),
        TrackedImage("gone", "registry.example/gone:prod", targets[0], "2026-01-02T00:00:00Z"),
    ]
    assert check_list({"vision": lockset, "gone": None}, tracked) == [
        Check("gone"),  # no lockset: its error report (its tracked image waits for one)
        Check("vision", targets[0]),
        Check("vision", targets[1]),
        Check("vision"),  # the base-image tags
        Check("vision", targets[0], "registry.example/vision:prod"),
    ]
    assert Check("vision", targets[0], "registry.example/vision:prod").name == (
        "vision/linux-x86_64-py311-cpu@registry.example/vision:prod"
    )


# -- end to end: three shards, then the summary ---------------------------------------

TARGETS = ["--platform", "linux-x86_64", "--platform", "linux-aarch64", "--python", "3.11"]


@pytest.fixture
def night(tmp_path: Path, uv_cache: Path) -> tuple[IndexServer, dict[str, str]]:
    """Its own world (the test changes what it serves) and a shared database."""
    server = build_world(IndexServer()).start()
    env = hermetic_env(
        tmp_path,
        UV_CACHE_DIR=str(uv_cache),
        UV_HTTP_RETRIES="0",
        LOCKD_INDEX_URL=f"{server.url}/simple",
        LOCKD_PYTORCH_INDEX=f"{server.url}/whl",
        LOCKD_DATABASE_URL=f"sqlite:///{tmp_path / 'shared.db'}",
    )
    yield server, env
    server.stop()


def _compile(tmp_path: Path, env: dict[str, str], project: str, requirements: str) -> None:
    checkout = tmp_path / project
    checkout.mkdir()
    (checkout / "requirements.in").write_text(requirements)
    run = run_lockd(
        "compile", "--project", project, "--cuda", "cpu", *TARGETS, cwd=checkout, env=env
    )
    assert run.returncode == 0, run.output


def _summary(tmp_path: Path, env: dict[str, str], *args: str) -> Run:
    run = run_lockd("drift", "summary", *args, cwd=tmp_path, env=env)
    assert "Traceback" not in run.output
    return run


def _drift(tmp_path: Path, env: dict[str, str], *args: str) -> Run:
    run = run_lockd(
        "drift",
        "--all",
        "--no-rebuild",
        "--no-creep",
        *args,
        "--format",
        "json",
        cwd=tmp_path,
        env=env,
    )
    assert "Traceback" not in run.output
    return run


def _reports(run: Run) -> list[dict]:  # type: ignore[type-arg]
    data = json.loads(run.stdout)
    return data.get("reports", [data])  # type: ignore[no-any-return]


def _covered(run: Run) -> list[tuple[str, str | None]]:
    return [(r["project"], t["target"]) for r in _reports(run) for t in r["timings"]]


def test_three_shards_cover_every_check_once_and_the_summary_gathers_them(
    night: tuple[IndexServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = night
    for project, requirements in [
        ("alpha", "numpy\n"),
        ("beta", "idna\n"),
        ("gamma", "filelock\n"),
    ]:
        _compile(tmp_path, env, project, requirements)
    expected = sorted(
        (p, f"{plat}-py311-cpu") for p in ("alpha", "beta", "gamma")
        for plat in ("linux-x86_64", "linux-aarch64")
    )  # fmt: skip
    # The durations of an earlier night (recorded yesterday): alpha's x86_64 check is
    # slow, so it gets a shard of its own.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Store(env["LOCKD_DATABASE_URL"]) as store:
        for project in ("alpha", "beta", "gamma"):
            lockset = store.latest(project)
            assert lockset is not None
            timings = tuple(
                CheckTiming(t, None, 900.0 if (project, t) == expected[1] else 30.0)
                for t in lockset.targets
            )
            store.record_drift(DriftReport(project, lockset.hash, yesterday, (), timings=timings))
    assert expected[1] == ("alpha", "linux-x86_64-py311-cpu")

    # Shard 1 by flag, shards 2 and 3 as Kubernetes starts them (0-based index, N from env).
    runs = [_drift(tmp_path, env, "--shard", "1/3")]
    runs += [
        _drift(tmp_path, {**env, "JOB_COMPLETION_INDEX": str(i), "LOCKD_SHARDS": "3"})
        for i in (1, 2)
    ]
    assert [r.returncode for r in runs] == [0, 0, 0], [r.output for r in runs]
    slices = [_covered(run) for run in runs]
    assert sorted(c for part in slices for c in part) == expected  # each check exactly once
    assert [("alpha", "linux-x86_64-py311-cpu")] in slices  # the slow one alone
    for i, run in enumerate(runs, 1):
        assert {r["shard"] for r in _reports(run)} == {f"{i}/3"}

    summary = _summary(tmp_path, env, "--since", "1h", "--format", "json")
    assert summary.returncode == 0, summary.output
    data = json.loads(summary.stdout)
    assert data["status"] == "clean"
    assert [(p["project"], p["status"], p["missing"]) for p in data["projects"]] == [
        ("alpha", "clean", []),
        ("beta", "clean", []),
        ("gamma", "clean", []),
    ]
    merged = {source for p in data["projects"] for source in p["reports"]}
    assert merged == {r["hash"] for run in runs for r in _reports(run)}

    # Upstream removes idna 3.10: the shard that owns beta's checks finds it; the
    # summary's exit code says drift, in every format.
    index_at(server, "/simple").remove("idna", "3.10")
    owner = next(i for i, part in enumerate(slices, 1) if any(p == "beta" for p, _ in part))
    assert _drift(tmp_path, env, "--shard", f"{owner}/3").returncode == 1
    as_json = _summary(tmp_path, env, "--format", "json")
    assert as_json.returncode == 1
    beta = next(p for p in json.loads(as_json.stdout)["projects"] if p["project"] == "beta")
    assert {(f["kind"], f["package"]) for f in beta["findings"]} == {("artifact-gone", "idna")}
    junit = tmp_path / "summary.xml"
    run = run_lockd(
        "drift", "summary", "--format", "junit", "-o", str(junit), cwd=tmp_path, env=env
    )
    assert run.returncode == 1
    suites = {s.get("name"): s for s in ET.parse(junit).getroot()}
    assert set(suites) == {"lockd drift: alpha", "lockd drift: beta", "lockd drift: gamma"}
    assert suites["lockd drift: beta"].get("failures") != "0"
    markdown = _summary(tmp_path, env, "--format", "markdown")
    assert "## beta — drift" in markdown.stdout


def test_a_shard_that_never_ran_shows_in_the_summary(
    night: tuple[IndexServer, dict[str, str]], tmp_path: Path
) -> None:
    _, env = night
    _compile(tmp_path, env, "alpha", "numpy\n")
    x86 = Check("alpha", "linux-x86_64-py311-cpu")
    arm = Check("alpha", "linux-aarch64-py311-cpu")
    other = 3 - assign([x86, arm], {}, 2)[x86]  # the shard that does not own x86_64
    only = _drift(tmp_path, env, "--shard", f"{other}/2")
    assert only.returncode == 0, only.output
    summary = _summary(tmp_path, env, "--since", "2h", "--format", "json")
    assert summary.returncode == 3, summary.output  # nothing drifted, but not all was checked
    data = json.loads(summary.stdout)
    (alpha,) = data["projects"]
    missing = sorted(m["target"] for m in alpha["missing"])
    assert x86.target in missing
    assert sorted(t for _, t in _covered(only)) + missing == sorted([x86.target, arm.target])
    assert alpha["errors"] == [
        {
            "target": target,
            "check": "no-report",
            "message": f"target {target} was not checked since {data['since']}: no drift "
            "report covers it",
        }
        for target in missing
    ]


def test_a_summary_before_any_report_names_the_lockset_and_what_is_missing(
    night: tuple[IndexServer, dict[str, str]], tmp_path: Path
) -> None:
    _, env = night
    _compile(tmp_path, env, "alpha", "numpy\n")
    with Store(env["LOCKD_DATABASE_URL"]) as store:
        latest = store.latest("alpha")
    assert latest is not None

    table = _summary(tmp_path, env, "--since", "24h")
    markdown = _summary(tmp_path, env, "--since", "24h", "--format", "markdown")
    as_json = _summary(tmp_path, env, "--since", "24h", "--format", "json")

    assert (table.returncode, markdown.returncode, as_json.returncode) == (3, 3, 3), table.output
    assert f"alpha lockset {latest.hash[:12]}: error" in table.stdout
    assert "summary" not in table.stdout
    assert "not reported: target linux-x86_64-py311-cpu was not checked since" in table.stdout
    assert "- not reported (linux-aarch64-py311-cpu): target " in markdown.stdout
    (alpha,) = json.loads(as_json.stdout)["projects"]
    assert alpha["lockset"] == latest.hash
    assert {e["check"] for e in alpha["errors"]} == {"no-report"}


def test_unreported_base_images_are_said_in_the_plural() -> None:
    from lockd.app.nightly import _merge

    since = "2026-01-01T00:00:00Z"
    summary = _merge("alpha", [Check("alpha"), Check("alpha", "t")], [], since, None)
    assert [e.message for e in summary.report.errors] == [
        f"the base images were not checked since {since}: no drift report covers it",
        f"target t was not checked since {since}: no drift report covers it",
    ]


def test_shard_usage_errors(lockd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (("drift", "--shard", "1/2"), "--shard and --shards split the nightly run: add --all."),
        (("drift", "--all", "--shard", "3/2"), "Shard 3/2 does not exist"),
        (
            ("drift", "--all", "--shard", "1/2", "--shards", "3"),
            "--shard 1/2 says 2 shards, --shards or LOCKD_SHARDS says 3.",
        ),
        (("drift", "--all", "--shards", "2"), "2 shards, but which one is this?"),
        (("drift", "summary", "--since", "yesterday"), "--since 'yesterday' is not a date"),
        (("drift", "summary", "--since", "0h"), "--since '0h' is an empty period"),
        (("drift", "summary"), "nothing is recorded there. Check --db / LOCKD_DATABASE_URL"),
        (("schedule", "--print", "cron", "--shards", "2"), "A cron recipe runs on one machine"),
    ]
    for args, message in cases:
        run = lockd(*args)
        assert run.returncode == 2, run.output
        assert "Traceback" not in run.output
        assert message in " ".join(run.stderr.split()), run.stderr
    run = lockd("drift", "--all", env={"JOB_COMPLETION_INDEX": "1"})
    assert run.returncode == 2
    assert "JOB_COMPLETION_INDEX=1 is set (a Kubernetes Indexed Job)" in " ".join(
        run.stderr.split()
    )


# -- the recipes, validated offline --------------------------------------------------


@pytest.mark.parametrize("shards", [1, 4])
def test_kubernetes_recipe_is_a_valid_indexed_cronjob(lockd, shards: int) -> None:  # type: ignore[no-untyped-def]
    run = lockd("schedule", "--print", "k8s", "--shards", str(shards))
    assert run.returncode == 0, run.output
    drift, summary = list(yaml.safe_load_all(run.stdout))
    for document in (drift, summary):
        # strict: an unknown or misspelt field is an error, as `kubectl apply` would say
        assert kubernetes_validate.validate(document, KUBERNETES, strict=True) == KUBERNETES
        assert document["kind"] == "CronJob"
        assert document["spec"]["concurrencyPolicy"] == "Forbid"
        pod = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"]
        env = {e["name"]: e for e in container["env"]}
        assert env["LOCKD_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        assert mounts[env["LOCKD_HOME"]["value"]] in empty_dirs
        assert mounts["/tmp"] in empty_dirs
    job = drift["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == shards
    assert job["backoffLimitPerIndex"] >= 1
    assert job["activeDeadlineSeconds"] > 0
    (container,) = job["template"]["spec"]["containers"]
    assert container["args"] == ["drift", "--all", "--format", "markdown"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LOCKD_SHARDS"]["value"] == str(shards)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[env["UV_CACHE_DIR"]["value"]] == "uv-cache"
    for key in ("registry-username", "registry-password"):
        refs = [e["valueFrom"]["secretKeyRef"] for e in env.values() if "valueFrom" in e]
        assert {"name": "lockd", "key": key, "optional": True} in refs
    (summary_container,) = summary["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert summary_container["args"][:4] == ["drift", "summary", "--since", "24h"]


def test_a_broken_manifest_fails_the_validation() -> None:
    """The check above can fail: a misspelt field is rejected by the strict schema."""
    document = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "x"},
        "spec": {"schedule": "* * * * *", "concurencyPolicy": "Forbid", "jobTemplate": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_github_recipe_is_a_valid_workflow_with_a_shard_matrix(lockd) -> None:  # type: ignore[no-untyped-def]
    # SchemaStore's github-workflow schema, as vendored by check-jsonschema (a dev pin).
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    schema = json.loads(schema_file.read_text())
    run = lockd("schedule", "--print", "github", "--shards", "3")
    assert run.returncode == 0, run.output
    workflow = yaml.safe_load(run.stdout)
    jsonschema.validate(workflow, schema)
    drift = workflow["jobs"]["drift"]
    assert drift["strategy"] == {"fail-fast": False, "matrix": {"shard": [1, 2, 3]}}
    assert "lockd drift --all --shard ${{ matrix.shard }}/3" in drift["steps"][-1]["run"]
    summary = workflow["jobs"]["summary"]
    assert (summary["needs"], summary["if"]) == ("drift", "always()")
    assert "lockd drift summary --since 24h" in summary["steps"][2]["run"]
    # lockd is not on PyPI: every job installs it from a hash-locked file, never by name.
    for job in (drift, summary):
        installs = [s["run"] for s in job["steps"] if s.get("run", "").startswith("pip ")]
        assert installs == ["pip install --require-hashes -r .github/lockd.requirements.txt"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**workflow, "jobs": {"drift": {**drift, "runs-on": 3}}}, schema)
