"""Pure modules: targets, routing, verification rules, inputs, locksets."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockd.errors import FormatError, UsageError, VerificationError
from lockd.inputs.pyproject import parse_pyproject
from lockd.inputs.requirements import parse_requirements_file
from lockd.lockset import Artifact, Lock, Lockset, Provenance, diff_locksets
from lockd.resolvers.interface import Resolution, ResolvedFile, ResolvedPackage
from lockd.resolvers.verify import cuda_from_requires, local_flavour, verify
from lockd.routing import family_names, index_of, plan_for
from lockd.targets import expand_matrix, parse_accelerator, parse_target_id
from lockd.urls import redact, shown, strip_credentials

BASE = "https://mirror.example/whl"
PYPI = "https://pypi.example/simple"


@pytest.mark.parametrize(
    ("text", "name", "cuda"),
    [
        ("cu124", "cu124", "12.4"),
        ("12.4", "cu124", "12.4"),
        ("cuda11.8", "cu118", "11.8"),
        ("cu130", "cu130", "13.0"),
        ("cpu", "cpu", None),
        ("rocm6.2", "rocm6.2", None),
    ],
)
def test_accelerators(text: str, name: str, cuda: str | None) -> None:
    acc = parse_accelerator(text)
    assert acc.name == name and acc.cuda_version == cuda


@pytest.mark.parametrize(
    ("text", "wording", "known"),
    [
        ("cu999", "not a CUDA variant PyTorch publishes", "cu118, cu121, cu124"),
        ("12.5", "not a CUDA variant PyTorch publishes", "cu126"),
        ("rocm9.9", "not a ROCm variant PyTorch publishes", "rocm6.1, rocm6.2, rocm6.2.4"),
        ("cuda-twelve", "Unknown accelerator", "cu124"),
    ],
)
def test_only_known_variants_are_accepted(text: str, wording: str, known: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_accelerator(text)
    assert wording in caught.value.message
    assert known in caught.value.render()
    if text.startswith("rocm"):
        assert "CUDA" not in caught.value.render()


def test_rocm_ids_with_three_parts_round_trip() -> None:
    (target,) = expand_matrix(["linux-x86_64"], ["3.12"], ["rocm6.2.4"])
    assert target.id == "linux-x86_64-py312-rocm624"
    assert parse_target_id(target.id) == target


def test_matrix_ids_have_no_dots_and_round_trip() -> None:
    targets = expand_matrix(
        ["linux-x86_64", "linux-aarch64"], ["3.11", "3.12"], ["cu124", "cpu", "cu124"]
    )
    assert len(targets) == 8
    assert targets[0].id == "linux-x86_64-py311-cu124"
    for target in targets:
        assert "." not in target.id
        assert parse_target_id(target.id) == target
    assert parse_target_id("linux-x86_64-py311-rocm62").accelerator.name == "rocm6.2"
    with pytest.raises(UsageError, match="Unknown platform"):
        expand_matrix(["beos"], ["3.11"], ["cpu"])


@pytest.mark.parametrize("python", ["2.7", "3.7", "3.16", "3.19", "4.0"])
def test_only_released_pythons_are_locked_for(python: str) -> None:
    with pytest.raises(UsageError, match=f"No released CPython {python}") as caught:
        expand_matrix(["linux-x86_64"], [python], ["cpu"])
    assert caught.value.hint == "Give a minor version from 3.8 to 3.15."
    assert [t.python for t in expand_matrix(["linux-x86_64"], ["py38", "3.15"], ["cpu"])] == [
        (3, 8),
        (3, 15),
    ]


def test_routing_sends_only_the_family_to_the_variant() -> None:
    target = parse_target_id("linux-x86_64-py311-cu124")
    plan = plan_for(target, PYPI, BASE, family_names(["xformers"]))
    assert plan.variant == f"{BASE}/cu124"
    assert plan.expected_index("torch") == f"{BASE}/cu124"
    assert plan.expected_index("Xformers") == f"{BASE}/cu124"
    assert plan.expected_index("numpy") == PYPI
    # the copies on the PyTorch host live outside /whl/cu124/ and still count as the variant's
    assert (
        index_of("https://mirror.example/whl/numpy-1.26.0-cp311-none-any.whl", plan)
        == f"{BASE}/cu124"
    )
    assert index_of("https://files.example/numpy-2.1.0.whl", plan) == PYPI
    assert plan_for(target, PYPI, "pypi", plan.family).variant is None


def test_credentials_are_stripped_and_redacted() -> None:
    assert strip_credentials("https://u:tok@host:8080/simple") == "https://host:8080/simple"
    assert (
        redact("failed: https://u:tok@host/x and http://a@b/c")
        == "failed: https://host/x and http://b/c"
    )
    # a message shows neither credentials nor query values (tokens, signatures travel there)
    assert shown("https://u:p@lockd.example:8443/?token=abc&SECRET&sig=") == (
        "https://lockd.example:8443/?token=…&…&sig=…"
    )
    assert shown("https://host/simple/#access_token=SECRET") == "https://host/simple/"
    assert shown("https://host/simple/torch/") == "https://host/simple/torch/"


def test_cuda_from_requires_reads_both_metadata_spellings() -> None:
    old = ['nvidia-cuda-runtime-cu12 (==12.4.127) ; platform_system == "Linux"']
    new = ['nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux"']
    cu13 = ['cuda-toolkit[cudart,cublas]==13.0.2; platform_system == "Linux"']
    assert cuda_from_requires(old) == "12.4"
    assert cuda_from_requires(new) == "12.8"
    assert cuda_from_requires(cu13) == "13.0"
    assert cuda_from_requires(["filelock", "sympy>=1"]) is None
    assert local_flavour("2.4.0+cu124") == ("cuda", "12.4")
    assert local_flavour("2.4.0+cpu") == ("cpu", None)
    assert local_flavour("2.4.0") is None


def _resolution(
    target_id: str, torch_version: str, url: str, extra: tuple[str, ...] = ()
) -> Resolution:
    packages = [
        ResolvedPackage(
            "torch", torch_version, (ResolvedFile(url, url.rsplit("/", 1)[-1], "0" * 64),)
        )
    ]
    packages += [
        ResolvedPackage(
            n, "1", (ResolvedFile(f"https://files.example/{n}.whl", f"{n}.whl", "1" * 64),)
        )
        for n in extra
    ]
    return Resolution(parse_target_id(target_id), tuple(packages))


def test_verify_rules() -> None:
    cu = parse_target_id("linux-x86_64-py311-cu124")
    plan = plan_for(cu, PYPI, BASE, family_names())
    ok = _resolution(cu.id, "2.4.0+cu124", f"{BASE}/cu124/torch-2.4.0%2Bcu124-x.whl")
    assert verify(ok, plan, {}).flavour == "cuda 12.4"
    with pytest.raises(VerificationError, match="CPU-only build"):
        verify(_resolution(cu.id, "2.4.0+cpu", f"{BASE}/cu124/torch-2.4.0%2Bcpu-x.whl"), plan, {})
    with pytest.raises(VerificationError, match="CPU-only build: it has no CUDA local tag"):
        verify(
            _resolution(cu.id, "2.4.0", f"{BASE}/cu124/torch-2.4.0-x.whl"),
            plan,
            {"torch": ["filelock"]},
        )
    with pytest.raises(VerificationError, match=r"built for CUDA 12\.1"):
        verify(
            _resolution(cu.id, "2.4.0+cu121", f"{BASE}/cu124/torch-2.4.0%2Bcu121-x.whl"), plan, {}
        )
    with pytest.raises(VerificationError, match="must come from"):
        verify(
            _resolution(cu.id, "2.4.0+cu124", "https://files.example/torch-2.4.0%2Bcu124-x.whl"),
            plan,
            {},
        )
    cpu = parse_target_id("linux-x86_64-py311-cpu")
    cpu_plan = plan_for(cpu, PYPI, "pypi", family_names())
    with pytest.raises(VerificationError, match="nvidia-cublas-cu12"):
        verify(
            _resolution(
                cpu.id, "2.4.0", "https://files.example/torch-2.4.0-x.whl", ("nvidia-cublas-cu12",)
            ),
            cpu_plan,
            {},
        )


def test_requirements_files_with_includes(tmp_path: Path) -> None:
    (tmp_path / "base.in").write_text("numpy>=1.26  # comment\nrequests[socks] \\\n  >=2.31\n")
    (tmp_path / "pins.txt").write_text("idna==3.10\n")
    (tmp_path / "main.in").write_text("# top\n-r base.in\n--constraint pins.txt\ntorch==2.6.0\n")
    parsed = parse_requirements_file(tmp_path / "main.in", tmp_path)
    assert parsed.requirements == ("numpy>=1.26", "requests[socks]>=2.31", "torch==2.6.0")
    assert parsed.constraints == ("idna==3.10",)
    assert [f.path for f in parsed.files] == ["main.in", "base.in", "pins.txt"]
    assert parsed.problems == ()
    (tmp_path / "bad.in").write_text("numpy\n--find-links https://x\n")
    assert [p.where for p in parse_requirements_file(tmp_path / "bad.in", tmp_path).problems] == [
        "bad.in:2"
    ]
    (tmp_path / "loop.in").write_text("-r loop.in\n")
    (looped,) = parse_requirements_file(tmp_path / "loop.in", tmp_path).problems
    assert "circular" in looped.reason
    (tmp_path / "typo.in").write_text("numpy==>1\n")
    (typo,) = parse_requirements_file(tmp_path / "typo.in", tmp_path).problems
    assert typo.render().startswith("typo.in:1: `numpy==>1` is not a valid requirement")


def test_pyproject_inputs() -> None:
    text = (
        '[project]\nname = "svc"\ndependencies = ["requests"]\n'
        '[project.optional-dependencies]\nGPU = ["torch==2.6.0", "svc[cli]"]\ncli = ["click"]\n'
    )
    assert parse_pyproject(text, "pyproject.toml", ["gpu"]).requirements == (
        "requests",
        "torch==2.6.0",
        "click",
    )
    with pytest.raises(UsageError, match="no \\[project\\] table"):
        parse_pyproject("[tool.x]\n", "pyproject.toml")


def _lockset(artifacts: tuple[Artifact, ...], parent: str | None = None) -> Lockset:
    return Lockset(
        project="p",
        inputs=(),
        requirements=("torch",),
        targets=("linux-x86_64-py311-cu124",),
        resolver="uv",
        resolver_version="0.13.9",
        indexes={"default": PYPI},
        cutoff="2026-01-01T00:00:00Z",
        input_key="k",
        provenance=Provenance("u", "h", "2026-01-01T00:00:00Z"),
        locks=(Lock("linux-x86_64-py311-cu124", artifacts),),
        parent=parent,
    )


def _artifact(name: str, version: str, sha: str = "a" * 64, index: str = PYPI) -> Artifact:
    return Artifact(
        name, version, index, f"https://f/{name}-{version}.whl", f"{name}-{version}.whl", sha
    )


def test_lockset_hash_is_stable_and_tamper_evident() -> None:
    a = _lockset((_artifact("numpy", "2.1.0"),))
    again = Lockset.from_dict(a.to_dict())
    assert again.hash == a.hash and len(a.hash) == 64
    edited = a.to_dict()
    edited["locks"][0]["artifacts"][0]["version"] = "2.0.0"
    with pytest.raises(FormatError, match="does not match its content hash"):
        Lockset.from_dict(edited)
    future = {**a.to_dict(), "format": "lockd.lockset/99"}
    with pytest.raises(FormatError, match="Unknown lockset format"):
        Lockset.from_dict(future)


def test_diff_classifies_changes() -> None:
    a = _lockset(
        (
            _artifact("numpy", "2.1.0"),
            _artifact("idna", "3.10"),
            _artifact("six", "1.0"),
            _artifact("torch", "2.6.0"),
            _artifact("jinja2", "3.1.4"),
        )
    )
    b = _lockset(
        (
            _artifact("numpy", "2.2.0"),
            _artifact("idna", "3.9"),
            _artifact("rich", "13"),
            _artifact("torch", "2.6.0", index="https://other/simple"),
            _artifact("jinja2", "3.1.4", sha="b" * 64),
        ),
        parent=a.hash,
    )
    result = diff_locksets(a, b)["targets"]["linux-x86_64-py311-cu124"]
    assert result["upgraded"] == [{"name": "numpy", "from": "2.1.0", "to": "2.2.0"}]
    assert result["downgraded"] == [{"name": "idna", "from": "3.10", "to": "3.9"}]
    assert result["added"] == [{"name": "rich", "version": "13"}]
    assert result["removed"] == [{"name": "six", "version": "1.0"}]
    assert {c["name"]: c["what"] for c in result["changed"]} == {
        "jinja2": "hash",
        "torch": "source",
    }


def test_lock_files_are_written_with_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from lockd.lockfiles.files import write_atomic

    target = tmp_path / "lockd.json"
    write_atomic(target, b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    target.chmod(0o640)
    write_atomic(target, b"{ }")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert target.read_bytes() == b"{ }"


def test_every_environment_variable_is_documented() -> None:
    from lockd.settings import ENV_VARS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [v.name for v in ENV_VARS if f"`{v.name}" not in readme] == []


def test_cuda_runtime_requirements_count_only_where_their_marker_applies() -> None:
    lines = [
        "filelock",
        "nvidia-cuda-runtime-cu12==12.4.127; "
        'platform_system == "Linux" and platform_machine == "x86_64"',
    ]
    x86 = parse_target_id("linux-x86_64-py311-cu124")
    arm = parse_target_id("linux-aarch64-py311-cu124")
    assert cuda_from_requires(lines, x86.marker_environment()) == "12.4"
    assert cuda_from_requires(lines, arm.marker_environment()) is None
    url = "https://files.example/torch-2.6.0-cp311-cp311-manylinux_2_28_aarch64.whl"
    arm_plan = plan_for(arm, PYPI, "pypi", family_names())
    with pytest.raises(VerificationError, match="CPU-only build"):
        verify(_resolution(arm.id, "2.6.0", url), arm_plan, {"torch": lines})
    cpu = parse_target_id("linux-aarch64-py311-cpu")
    cpu_plan = plan_for(cpu, PYPI, "pypi", family_names())
    assert verify(_resolution(cpu.id, "2.6.0", url), cpu_plan, {"torch": lines}).flavour == "cpu"


def test_rocm_version_must_match() -> None:
    target = parse_target_id("linux-x86_64-py311-rocm62")
    plan = plan_for(target, PYPI, BASE, family_names())
    url = f"{BASE}/rocm6.2/torch-2.6.0%2Brocm6.1-x.whl"
    with pytest.raises(VerificationError, match=r"ROCm 6\.1"):
        verify(_resolution(target.id, "2.6.0+rocm6.1", url), plan, {})
    ok = _resolution(target.id, "2.6.0+rocm6.2", f"{BASE}/rocm6.2/torch-2.6.0%2Brocm6.2-x.whl")
    assert verify(ok, plan, {}).flavour == "rocm 6.2"


def test_userinfo_is_put_back_only_on_the_same_host() -> None:
    from lockd.urls import with_userinfo

    base = "https://ci:tok@mirror.example/whl/cu124"
    assert with_userinfo("https://mirror.example/whl/cu124/torch.whl", base) == (
        "https://ci:tok@mirror.example/whl/cu124/torch.whl"
    )
    assert (
        with_userinfo("https://files.example/numpy.whl", base) == "https://files.example/numpy.whl"
    )
    assert with_userinfo("https://mirror.example/x.whl", "https://mirror.example/whl") == (
        "https://mirror.example/x.whl"
    )
