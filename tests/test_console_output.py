"""What the CLI prints: piped tables keep every cell whole; ``diff`` names failed targets."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lockd.lockset import Failure, Lock, Lockset, Provenance, diff_locksets

CUDA_MATRIX = ["--cuda", "cu124", "--platform", "linux-x86_64", "--platform", "linux-aarch64"]


def test_piped_tables_are_not_cut_to_80_columns(lockd, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("filelock\n")
    compiled = lockd("compile", "--python", "3.11", "--cuda", "cpu", "--format", "json")
    assert compiled.returncode == 0, compiled.output
    lockset = json.loads(compiled.stdout)["lockset"]
    unset = {"COLUMNS": ""}  # rich reads COLUMNS; a pipe has no width of its own

    history = lockd("history", env=unset)
    row = next(line for line in history.stdout.splitlines() if lockset[:12] in line)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row), history.stdout
    assert "not checked" in row and "…" not in history.stdout

    shown = lockd("show", lockset, env=unset)
    line = next(line for line in shown.stdout.splitlines() if "filelock-3.16.1" in line)
    assert "filelock-3.16.1-py3-none-any.whl" in line and "/simple" in line
    assert "…" not in shown.stdout
    assert max(map(len, shown.stdout.splitlines())) > 80


def test_diff_labels_targets_that_failed_in_both(lockd, tmp_path: Path) -> None:
    (tmp_path / "requirements.in").write_text("torch==2.6.0\n")
    first = lockd(*_partial_compile())
    (tmp_path / "requirements.in").write_text("torch==2.6.0\nrequests\n")
    second = lockd(*_partial_compile())
    a, b = (json.loads(run.stdout)["lockset"] for run in (first, second))

    result = json.loads(lockd("diff", a, b, "--format", "json").stdout)

    # cu124 serves linux-aarch64 a CPU-only torch: that target fails both times
    assert result["targets"]["linux-aarch64-py311-cu124"] == {"status": "failed-in-both"}
    added = result["targets"]["linux-x86_64-py311-cu124"]["added"]
    assert "requests" in {item["name"] for item in added}
    table = lockd("diff", a, b)
    assert re.search(r"linux-aarch64-py311-cu124\s.*failed-in-both", table.stdout), table.stdout


def test_diff_names_each_side_of_a_failure() -> None:
    ok = Lock("t-ok", ())
    a = _lockset(locks=(ok,), failures=(Failure("t-fixed", "x"), Failure("t-both", "x")))
    b = _lockset(
        locks=(Lock("t-fixed", ()), Lock("t-new", ())),
        failures=(Failure("t-both", "x"), Failure("t-ok", "x"), Failure("t-gone", "x")),
    )
    statuses = {t: e.get("status") for t, e in diff_locksets(a, b)["targets"].items()}
    assert statuses == {
        "t-both": "failed-in-both",
        "t-fixed": "failed-in-a",
        "t-gone": "failed-in-b",
        "t-new": "only-in-b",
        "t-ok": "failed-in-b",
    }
    assert diff_locksets(b, a)["targets"]["t-new"] == {"status": "only-in-a"}


def _partial_compile() -> list[str]:
    return ["compile", *CUDA_MATRIX, "--python", "3.11", "--allow-partial", "--format", "json"]


def _lockset(locks: tuple[Lock, ...], failures: tuple[Failure, ...]) -> Lockset:
    return Lockset(
        project="p",
        inputs=(),
        requirements=(),
        targets=tuple(lock.target for lock in locks) + tuple(f.target for f in failures),
        resolver="uv",
        resolver_version="0",
        indexes={},
        cutoff="2024-06-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2024-06-01T00:00:00Z"),
        locks=locks,
        failures=failures,
    )


def test_diff_shows_a_kept_row_only_where_pins_were_kept(capsys) -> None:
    from lockd.report.console import print_diff

    empty = {"added": [], "removed": [], "upgraded": [], "downgraded": [], "changed": []}
    result = {
        "a": "a" * 64,
        "b": "b" * 64,
        "targets": {
            "t-new-only": {**empty, "added": [{"name": "numpy", "version": "2.1.0"}], "kept": []},
            "t-some": {**empty, "kept": ["filelock"]},
            "t-empty": {**empty, "kept": []},
        },
    }
    print_diff(result)
    rows = capsys.readouterr().out.splitlines()
    kept = [row for row in rows if "kept" in row]
    assert not any("t-new-only" in row for row in kept), rows
    assert any("t-some" in row and "1 package " in row for row in kept), rows
    assert any("t-empty" in row and "0 packages" in row for row in kept), rows


def test_control_characters_from_outside_are_shown_never_obeyed() -> None:
    """A package name from a lock file, an image or a snapshot may carry terminal escapes
    (a window title, a cleared screen): tables, errors, Markdown and lint lines spell them
    out; the console's own styles still reach a terminal."""
    import io

    from rich.table import Table
    from rich.text import Text

    from lockd.report.console import make_console, printable
    from lockd.report.markdown import code, md

    hostile = "torch\x1b]0;pwned\x1b\\\x1b[2J\x9b31m"
    for terminal in (False, True):
        out = io.StringIO()
        colours = {"force_terminal": True, "color_system": "standard"} if terminal else {}
        console = make_console(file=out, **colours)
        table = Table("package", "version")
        table.add_row(hostile, Text(hostile))
        console.print(table)
        console.print(f"[bold]error:[/] {hostile}")
        console.print(f"[link=http://x/{hostile}]a link[/link]")  # markup left unescaped
        shown = out.getvalue()
        assert "\x1b]" not in shown and "\x1b[2J" not in shown and "\x9b" not in shown
        assert shown.count("torch\\x1b]0;pwned\\x1b\\\\x1b[2J\\x9b31m") == 3
        assert ("\x1b[1m" in shown) is terminal  # rich's own bold, on a terminal only
    assert printable("plain name") == "plain name"
    from lockd.drift import DriftReport, Finding
    from lockd.report.drift import drift_junit

    finding = Finding("unexpected", "t", hostile, None, "1.0", severity="warning")
    report = DriftReport("p", "a" * 64, "2026-12-01T00:00:00Z", (finding,), checks=("live:t",))
    junit = drift_junit([report])
    assert "\x1b" not in junit and "\x9b" not in junit and "torch\\x1b]0;pwned" in junit
    assert "\x1b" not in md(hostile) and "\x1b" not in code(hostile)
    assert code("n\x07") == "`n\\x07`" and md("a\tb") == "a\tb"
