"""Recipes for the nightly drift run: cron, systemd, Kubernetes, GitHub Actions.

Kubernetes and GitHub Actions spread the run over N shards (``--shards N``):
a CronJob whose Job is an Indexed Job (each pod's ``JOB_COMPLETION_INDEX``
picks its shard), or a matrix of N jobs; then a summary step gathers every
shard's reports from the shared database (``lockd drift summary``). Both are
built as data and dumped as YAML, so that what is printed is what the tests
validate against the Kubernetes OpenAPI and GitHub workflow schemas.
"""

from __future__ import annotations

import shutil
from typing import Any

import yaml

from ..errors import UsageError

COMMAND = "lockd drift --all --format junit -o /var/lib/lockd/drift.xml"
# An image of your own build of lockd (see _k8s), pinned by digest: a tag can move.
IMAGE = "your-registry/lockd@sha256:DIGEST"
# lockd is not published on PyPI: `pip install lockd` would run whatever someone else put
# there under that name, with the database secret in its environment. The GitHub recipe
# installs from a hash-locked requirements file in the repository instead.
REQUIREMENTS = ".github/lockd.requirements.txt"
SCHEDULE = "30 2 * * *"  # 02:30 UTC
DEADLINE_S = 4 * 3600  # a night's shards must be done by 06:30 UTC...
SUMMARY_SCHEDULE = "45 6 * * *"  # ...so the summary at 06:45 sees all of them
SECRET = "lockd"  # noqa: S105 - the name of the Kubernetes Secret, not a password
HOME = "/var/lib/lockd"
UV_CACHE = "/var/cache/uv"
UID = 10001


def recipe(kind: str, shards: int = 1) -> str:
    if shards < 1:
        raise UsageError(f"--shards {shards}: give at least 1.")
    if kind in {"cron", "systemd"}:
        if shards > 1:
            raise UsageError(
                f"A {kind} recipe runs on one machine; --shards applies to k8s and github.",
                hint="On several machines, run `lockd drift --all --shard I/N` on machine I.",
            )
        return _cron() if kind == "cron" else _systemd()
    if kind == "k8s":
        return _k8s(shards)
    return _github(shards)


def _cron() -> str:
    command = _command()
    return (
        "# crontab -e : every night at 02:30;\n"
        "# exit 1 (drift) makes cron mail the report.\n"
        "LOCKD_DATABASE_URL=sqlite:////var/lib/lockd/lockd.db\n"
        f"30 2 * * * {command} || cat /var/lib/lockd/drift.xml\n"
    )


def _systemd() -> str:
    return (
        "# /etc/systemd/system/lockd-drift.service\n"
        "[Unit]\nDescription=lockd nightly drift check\n\n"
        "[Service]\nType=oneshot\n"
        "Environment=LOCKD_DATABASE_URL=sqlite:////var/lib/lockd/lockd.db\n"
        f"ExecStart={_command()}\n"
        "# exit 1 means drift was found: the unit fails and shows in\n"
        "# `systemctl --failed`\n\n"
        "# /etc/systemd/system/lockd-drift.timer\n"
        "[Unit]\nDescription=Run lockd drift nightly\n\n"
        "[Timer]\nOnCalendar=*-*-* 02:30:00\nPersistent=true\nRandomizedDelaySec=15m\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )


def _command() -> str:
    lockd = shutil.which("lockd") or "/usr/local/bin/lockd"
    return COMMAND.replace("lockd", lockd, 1)


# -- Kubernetes ----------------------------------------------------------------------


def _k8s(shards: int) -> str:
    header = (
        f"# lockd nightly drift: {shards} shard(s) as an Indexed Job at 02:30 UTC, then a\n"
        "# summary of every shard's reports at 06:45 UTC (exit 1 = drift: the Job fails).\n"
        "# The database must be shared (PostgreSQL). Create the Secret first:\n"
        f"#   kubectl create secret generic {SECRET} \\\n"
        "#     --from-literal=database-url='postgresql://lockd:PASSWORD@db.internal/lockd' \\\n"
        "#     --from-literal=registry-username=USER --from-literal=registry-password=TOKEN\n"
        "# (optional keys: registry-host, registry-username, registry-password, and\n"
        "# index-url, an index URL with credentials). Set the image, by digest: your own\n"
        f"# build of lockd with its postgres extra, running as uid {UID} (lockd is not on\n"
        "# PyPI; a package of that name there is someone else's).\n"
    )
    drift = _cronjob(
        "lockd-drift",
        SCHEDULE,
        {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            # A flaky pod is retried on its own index; the others carry on.
            "backoffLimitPerIndex": 2,
            "activeDeadlineSeconds": DEADLINE_S,
            "podFailurePolicy": {
                "rules": [
                    # exit 1 found drift, exit 2 is a configuration error: a verdict,
                    # not a flake, so the index is not run again
                    {
                        "action": "FailIndex",
                        "onExitCodes": {
                            "containerName": "lockd",
                            "operator": "In",
                            "values": [1, 2],
                        },
                    },
                    # evicted or pre-empted: retried without counting as a failure
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
        },
        _pod(
            ["drift", "--all", "--format", "markdown"],
            extra_env=[
                # the indexes' and the registry's credentials, where the Secret has them
                {"name": "LOCKD_INDEX_URL", "valueFrom": _secret("index-url", optional=True)},
                *(
                    {
                        "name": f"LOCKD_REGISTRY_{key.upper()}",
                        "valueFrom": _secret(f"registry-{key}", optional=True),
                    }
                    for key in ("host", "username", "password")
                ),
                {"name": "LOCKD_SHARDS", "value": str(shards)},
                {"name": "UV_CACHE_DIR", "value": UV_CACHE},
            ],
            resources={
                "requests": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi"},
                "limits": {"memory": "8Gi", "ephemeral-storage": "60Gi"},
            },
            volumes={"home": "1Gi", "uv-cache": "40Gi", "tmp": "15Gi"},
        ),
    )
    summary = _cronjob(
        "lockd-drift-summary",
        SUMMARY_SCHEDULE,
        {"backoffLimit": 1, "activeDeadlineSeconds": 1800},
        _pod(
            ["drift", "summary", "--since", "24h", "--format", "markdown"],
            resources={
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            },
            volumes={"home": "256Mi", "tmp": "256Mi"},
        ),
    )
    return header + _dump(drift) + "---\n" + _dump(summary)


def _cronjob(name: str, schedule: str, job: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "lockd", "app.kubernetes.io/component": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    **job,
                    "ttlSecondsAfterFinished": 7 * 86400,
                    "template": {"metadata": {"labels": labels}, "spec": pod},
                }
            },
        },
    }


def _pod(
    args: list[str],
    *,
    resources: dict[str, Any],
    volumes: dict[str, str],
    extra_env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Non-root, read-only root file system; writable emptyDirs for LOCKD_HOME, uv, /tmp."""
    mounts = {"home": HOME, "uv-cache": UV_CACHE, "tmp": "/tmp"}  # noqa: S108 - a pod's own /tmp
    env: list[dict[str, Any]] = [
        {"name": "LOCKD_DATABASE_URL", "valueFrom": _secret("database-url")},
        {"name": "LOCKD_HOME", "value": HOME},
        {"name": "HOME", "value": HOME},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108
        *(extra_env or []),
    ]
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "lockd",
                "image": IMAGE,
                "command": ["lockd"],
                "args": args,
                "env": env,
                "resources": resources,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": name, "mountPath": mounts[name]} for name in volumes],
            }
        ],
        "volumes": [
            {"name": name, "emptyDir": {"sizeLimit": size}} for name, size in volumes.items()
        ],
    }


def _secret(key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": SECRET, "key": key}
    if optional:
        ref["optional"] = True
    return {"secretKeyRef": ref}


# -- GitHub Actions ------------------------------------------------------------------


def _github(shards: int) -> str:
    env = {"LOCKD_DATABASE_URL": "${{ secrets.LOCKD_DATABASE_URL }}"}
    install = [
        {"uses": "actions/checkout@v4"},
        {"run": f"pip install --require-hashes -r {REQUIREMENTS}"},
    ]
    workflow = {
        "name": "lockd drift",
        "on": {"schedule": [{"cron": SCHEDULE}], "workflow_dispatch": {}},
        "jobs": {
            "drift": {
                "runs-on": "ubuntu-latest",
                "timeout-minutes": DEADLINE_S // 60,
                "strategy": {"fail-fast": False, "matrix": {"shard": list(range(1, shards + 1))}},
                "steps": [
                    *install,
                    {
                        "run": f"lockd drift --all --shard ${{{{ matrix.shard }}}}/{shards} "
                        '--format markdown >> "$GITHUB_STEP_SUMMARY"',
                        "env": env,
                    },
                ],
            },
            "summary": {
                "needs": "drift",
                "if": "always()",
                "runs-on": "ubuntu-latest",
                "steps": [
                    *install,
                    {
                        "run": "lockd drift summary --since 24h --format junit -o drift.xml",
                        "env": env,
                    },
                    {
                        "if": "always()",
                        "uses": "actions/upload-artifact@v4",
                        "with": {"name": "drift-report", "path": "drift.xml"},
                    },
                ],
            },
        },
    }
    header = (
        "# .github/workflows/lockd-drift.yml: the nightly drift run in "
        f"{shards} shard(s), then one\n"
        "# summary of every shard's reports; the database (secret LOCKD_DATABASE_URL) is shared.\n"
        f"# {REQUIREMENTS}: lockd's wheel (your build of it: lockd is not on PyPI, and a\n"
        "# package of that name there is someone else's) and its dependencies, each with its\n"
        "# sha256 (lock them with `lockd compile`).\n"
    )
    return header + _dump(workflow)


class _Dumper(yaml.SafeDumper):
    """Every value written out: no ``&id001`` anchors (not every reader takes them)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
