"""Per-package index routing: configuration, plans, what uv is given, verification (pure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from lockd.errors import ConfigError, VerificationError
from lockd.lockfiles.requirements import render_requirements
from lockd.lockset import Artifact, Lock
from lockd.resolvers.interface import Resolution, ResolvedFile, ResolvedPackage, ResolveRequest
from lockd.resolvers.uv import index_environment, project_toml
from lockd.resolvers.verify import verify
from lockd.routing import (
    RoutedIndex,
    credential_variables,
    family_names,
    index_of,
    plan_for,
    url_with_variables,
    with_environment_credentials,
)
from lockd.settings import parse_project_config
from lockd.targets import parse_target_id

PYPI = "https://pypi.example/simple"
TORCH = "https://download.example/whl"
PRIVATE = "https://ci:t0k%40en@pkgs.acme.example/api/pypi/internal/simple"
CPU = parse_target_id("linux-x86_64-py311-cpu")
CU = parse_target_id("linux-x86_64-py311-cu124")


def config(*tables: str) -> tuple[RoutedIndex, ...]:
    text = "\n".join(f"[[index]]\n{t}" for t in tables)
    return parse_project_config(tomllib.loads(text), Path("lockd.toml")).indexes


def internal() -> RoutedIndex:
    (index,) = config(
        f'name = "internal"\nurl = "{PRIVATE}/"\npackages = ["Acme_Models", "acme-core"]'
    )
    return index


def test_index_tables_are_parsed_and_normalised() -> None:
    index = internal()
    assert index.name == "internal"
    assert index.url == PRIVATE  # trailing slash dropped, credentials kept for use
    assert index.packages == frozenset({"acme-models", "acme-core"})
    assert index.public_url == "https://pkgs.acme.example/api/pypi/internal/simple"


@pytest.mark.parametrize(
    ("tables", "needle"),
    [
        (['name = "a"\nurl = "https://x/simple"\npackages = ["p"]\nextra = 1'], "unknown key"),
        (['name = "a"\nurl = "https://x/simple"'], "no 'packages'"),
        (['name = "pytorch"\nurl = "https://x/simple"\npackages = ["p"]'], "lockd itself routes"),
        (['name = "Default"\nurl = "https://x/simple"\npackages = ["p"]'], "lockd itself routes"),
        (['name = "a b"\nurl = "https://x/simple"\npackages = ["p"]'], "letters, digits"),
        (['name = "a"\nurl = "pkgs.example/simple"\npackages = ["p"]'], "http(s)://"),
        (['name = "a"\nurl = "https://x/simple"\npackages = []'], "non-empty list"),
        (['name = "a"\nurl = "https://x/simple"\npackages = ["a b"]'], "non-empty list"),
        (
            [
                'name = "a"\nurl = "https://x/simple"\npackages = ["Acme.Core"]',
                'name = "b"\nurl = "https://y/simple"\npackages = ["acme-core"]',
            ],
            "acme-core is routed to two indexes",
        ),
        (
            [
                'name = "my-idx"\nurl = "https://x/simple"\npackages = ["p"]',
                'name = "my_idx"\nurl = "https://y/simple"\npackages = ["q"]',
            ],
            "UV_INDEX_MY_IDX_USERNAME",
        ),
    ],
)
def test_bad_index_tables_are_config_errors(tables: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(*tables)
    assert needle in info.value.render()
    with pytest.raises(ConfigError, match=r"must be \[\[index\]\] tables"):
        parse_project_config({"index": "https://x/simple"}, None)


def test_routes_send_each_package_to_exactly_one_index() -> None:
    plan = plan_for(CU, PYPI, TORCH, family_names(), (internal(),))
    assert [r.name for r in plan.routes()] == ["pytorch", "internal"]
    assert plan.expected_index("acme.models") == internal().public_url
    assert plan.index_url("acme-core") == PRIVATE  # with its credentials, for lockd's own use
    assert plan.expected_index("torch") == f"{TORCH}/cu124"
    assert plan.expected_index("numpy") == PYPI
    assert plan.public()["internal"] == internal().public_url
    # without a PyTorch index the family is not routed, the private index still is
    cpu = plan_for(CPU, PYPI, "pypi", family_names(), (internal(),))
    assert not cpu.is_routed("torch") and cpu.is_routed("acme-models")


def test_index_of_tells_indexes_apart_by_host_and_path() -> None:
    plan = plan_for(CU, PYPI, TORCH, family_names(), (internal(),))
    files = "https://pkgs.acme.example/api/pypi/internal/packages/acme_models-1.0-py3-none-any.whl"
    assert index_of(files, plan) == internal().public_url
    assert index_of("https://files.example/numpy-2.1.0.whl", plan) == PYPI
    # two indexes on one host (the test servers, Artifactory): the path decides
    host = "http://127.0.0.1:8000"
    shared = RoutedIndex("internal", f"{host}/internal/simple", frozenset({"acme-models"}))
    plan = plan_for(CU, f"{host}/simple", f"{host}/whl", family_names(), (shared,))
    assert index_of(f"{host}/internal/files/acme_models-1.0.whl", plan) == shared.url
    assert index_of(f"{host}/whl/cu124/torch-2.6.0.whl", plan) == f"{host}/whl/cu124"
    assert index_of(f"{host}/whl/numpy-1.26.0.whl", plan) == f"{host}/whl/cu124"
    assert index_of(f"{host}/packages/simple/numpy-2.1.0.whl", plan) == f"{host}/simple"


def test_credentials_come_from_uv_variables_when_the_url_has_none() -> None:
    assert credential_variables("acme.internal-2") == (
        "UV_INDEX_ACME_INTERNAL_2_USERNAME",
        "UV_INDEX_ACME_INTERNAL_2_PASSWORD",
    )
    bare = RoutedIndex("internal", "https://pkgs.example/simple", frozenset({"p"}))
    env = {"UV_INDEX_INTERNAL_USERNAME": "ci", "UV_INDEX_INTERNAL_PASSWORD": "p@ss:word"}
    assert (
        with_environment_credentials(bare, env).url
        == "https://ci:p%40ss%3Aword@pkgs.example/simple"
    )
    assert with_environment_credentials(internal(), env).url == PRIVATE  # the URL's own win
    assert with_environment_credentials(bare, {}).url == bare.url
    pytorch = {"UV_INDEX_PYTORCH_USERNAME": "ci", "UV_INDEX_PYTORCH_PASSWORD": "x"}
    assert url_with_variables(TORCH, "pytorch", pytorch) == "https://ci:x@download.example/whl"
    assert url_with_variables("pypi", "pytorch", pytorch) == "pypi"


def test_uv_gets_routed_indexes_without_credentials_in_its_files(tmp_path: Path) -> None:
    torch_with_token = "https://bob:hunter2@download.example/whl"
    plan = plan_for(
        CU,
        "https://alice:s3cret@pypi.example/simple",
        torch_with_token,
        family_names(),
        (internal(),),
    )
    request = ResolveRequest(CU, ("torch==2.6.0", "acme-models"), (), plan, tmp_path)
    text = project_toml(request, ["triton", "acme-core"])
    for secret in ("t0k", "hunter2", "s3cret", "alice", "bob", "ci:"):
        assert secret not in text
    doc = tomllib.loads(text)
    assert doc["tool"]["uv"]["index"] == [
        {"name": "pytorch", "url": "https://download.example/whl/cu124", "explicit": True},
        {"name": "internal", "url": internal().public_url, "explicit": True},
    ]
    assert doc["tool"]["uv"]["sources"]["acme-core"] == {"index": "internal"}
    assert doc["tool"]["uv"]["sources"]["torch"] == {"index": "pytorch"}
    assert index_environment(plan) == {
        "UV_DEFAULT_INDEX": "https://alice:s3cret@pypi.example/simple",
        "UV_INDEX_PYTORCH_USERNAME": "bob",
        "UV_INDEX_PYTORCH_PASSWORD": "hunter2",
        "UV_INDEX_INTERNAL_USERNAME": "ci",
        "UV_INDEX_INTERNAL_PASSWORD": "t0k@en",
    }


def _resolution(*packages: tuple[str, str]) -> Resolution:
    return Resolution(
        CPU,
        tuple(
            ResolvedPackage(name, "1.0", (ResolvedFile(url, url.rsplit("/", 1)[-1], "0" * 64),))
            for name, url in packages
        ),
    )


def test_verification_enforces_both_rules_for_private_indexes() -> None:
    plan = plan_for(CPU, PYPI, "pypi", family_names(), (internal(),))
    mine = "https://pkgs.acme.example/api/pypi/internal/packages/acme_models-1.0.whl"
    ok = _resolution(("acme-models", mine), ("numpy", "https://files.example/numpy-2.1.0.whl"))
    assert verify(ok, plan, {}).flavour is None
    decoy = _resolution(("acme-models", "https://files.example/acme_models-99.0.whl"))
    with pytest.raises(VerificationError) as info:
        verify(decoy, plan, {})
    assert "acme-models 1.0 (acme_models-99.0.whl) came from https://pypi.example/simple" in str(
        info.value
    )
    assert "routed to the private 'internal' index" in str(info.value)
    assert "dependency confusion" in str(info.value) and "t0k" not in str(info.value)
    stray = _resolution(("numpy", "https://pkgs.acme.example/api/pypi/internal/packages/numpy.whl"))
    with pytest.raises(VerificationError, match="serves only acme-core, acme-models"):
        verify(stray, plan, {})


def test_routed_packages_are_direct_urls_in_requirements_files() -> None:
    plan = plan_for(CPU, PYPI, "pypi", family_names(), (internal(),))
    url = "https://pkgs.acme.example/api/pypi/internal/packages/acme_models-1.0-py3-none-any.whl"
    lock = Lock(
        CPU.id,
        (
            Artifact(
                "acme-models", "1.0", internal().public_url, url, url.rsplit("/", 1)[-1], "a" * 64
            ),
            Artifact("numpy", "2.1.0", PYPI, "https://files.example/n.whl", "n.whl", "b" * 64),
        ),
    )
    public = render_requirements(lock, plan, header="h")
    assert f"acme-models @ {url} \\" in public and "t0k" not in public
    assert "numpy==2.1.0 \\" in public
    private = render_requirements(lock, plan, header="h", credentials=True)
    assert "acme-models @ https://ci:t0k%40en@pkgs.acme.example/" in private


def test_index_tables_in_pyproject_and_bad_config_files(tmp_path: Path) -> None:
    from lockd.settings import load_project_config

    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[[tool.lockd.index]]\nname = "internal"\n'
        'url = "https://pkgs.example/simple"\npackages = ["acme-models"]\n'
    )
    (index,) = load_project_config(tmp_path).indexes
    assert (index.name, index.packages) == ("internal", frozenset({"acme-models"}))
    (tmp_path / "pyproject.toml").write_text('tool = "lockd"\n')
    with pytest.raises(ConfigError, match=r"\[tool\] and \[tool.lockd\] must be tables"):
        load_project_config(tmp_path)
    (tmp_path / "lockd.toml").write_bytes('project = "x"\n'.encode("utf-16"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_project_config(tmp_path)
