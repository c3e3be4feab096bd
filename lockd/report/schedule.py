"""Recipes for the nightly drift run: cron, systemd, Kubernetes, GitHub Actions."""

from __future__ import annotations

import shutil

COMMAND = "lockd drift --all --format junit -o /var/lib/lockd/drift.xml"


def recipe(kind: str) -> str:
    lockd = shutil.which("lockd") or "/usr/local/bin/lockd"
    command = COMMAND.replace("lockd", lockd, 1)
    recipes = {
        "cron": (
            "# crontab -e : every night at 02:30;\n"
            "# exit 1 (drift) makes cron mail the report.\n"
            "LOCKD_DATABASE_URL=sqlite:////var/lib/lockd/lockd.db\n"
            f"30 2 * * * {command} || cat /var/lib/lockd/drift.xml\n"
        ),
        "systemd": (
            "# /etc/systemd/system/lockd-drift.service\n"
            "[Unit]\nDescription=lockd nightly drift check\n\n"
            "[Service]\nType=oneshot\n"
            "Environment=LOCKD_DATABASE_URL=sqlite:////var/lib/lockd/lockd.db\n"
            f"ExecStart={command}\n"
            "# exit 1 means drift was found: the unit fails and shows in\n"
            "# `systemctl --failed`\n\n"
            "# /etc/systemd/system/lockd-drift.timer\n"
            "[Unit]\nDescription=Run lockd drift nightly\n\n"
            "[Timer]\nOnCalendar=*-*-* 02:30:00\nPersistent=true\nRandomizedDelaySec=15m\n\n"
            "[Install]\nWantedBy=timers.target\n"
        ),
        "k8s": (
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: lockd-drift\n"
            'spec:\n  schedule: "30 2 * * *"\n  concurrencyPolicy: Forbid\n'
            "  jobTemplate:\n    spec:\n      backoffLimit: 0\n      template:\n        spec:\n"
            "          restartPolicy: Never\n          containers:\n"
            "            - name: lockd\n              image: your-registry/lockd:latest\n"
            '              args: ["drift", "--all", "--format", "junit",\n'
            '                     "-o", "/reports/drift.xml"]\n'
            "              env:\n                - name: LOCKD_DATABASE_URL\n"
            "                  valueFrom: {secretKeyRef: {name: lockd, key: database-url}}\n"
            "              volumeMounts: [{name: reports, mountPath: /reports}]\n"
            "          volumes: [{name: reports, emptyDir: {}}]\n"
        ),
        "github": (
            "# .github/workflows/lockd-drift.yml\nname: lockd drift\n"
            'on:\n  schedule: [{cron: "30 2 * * *"}]\n  workflow_dispatch: {}\n'
            "jobs:\n  drift:\n    runs-on: ubuntu-latest\n    steps:\n"
            "      - uses: actions/checkout@v4\n"
            "      - run: pip install lockd\n"
            "      - run: lockd drift --all --format junit -o drift.xml\n"
            "        env:\n          LOCKD_DATABASE_URL: ${{ secrets.LOCKD_DATABASE_URL }}\n"
            "      - if: always()\n        uses: actions/upload-artifact@v4\n"
            "        with: {name: drift-report, path: drift.xml}\n"
        ),
    }
    return recipes[kind]
