"""Conda resolution with rattler against channels built in code and served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lockd.errors import IndexError_, MatrixError, ResolutionError, UsageError, VerificationError
from lockd.inputs.environment import CondaEnvironment, parse_environment
from lockd.lockfiles.condalock import (
    conda_lock_filename,
    lock_from_solution,
    read_conda_lock,
    write_conda_lock,
)
from lockd.resolvers.rattler import (
    CondaRequest,
    CondaSolution,
    CondaTarget,
    VirtualPackageVersions,
    channel_url,
    channel_urls,
    conda_targets,
    cuda_constraints,
    resolve_conda,
    solve_conda_matrix,
    virtual_packages,
)
from lockd.settings import Settings
from lockd.targets import parse_accelerator, parse_platform
from tests.support.channel import (
    ChannelServer,
    CondaChannel,
    CondaPkg,
    pytorch_channel,
    serve_channels,
    unused_port,
)

# -- pure pieces -----------------------------------------------------------------------


def _target(platform: str, accelerator: str) -> CondaTarget:
    return CondaTarget(parse_platform(platform), parse_accelerator(accelerator))


def test_target_ids_and_matrix() -> None:
    targets = conda_targets(["linux-x86_64", "linux-aarch64"], ["12.4", "cu124", "cpu"])
    assert [t.id for t in targets] == [
        "linux-x86_64-cu124",
        "linux-x86_64-cpu",
        "linux-aarch64-cu124",
        "linux-aarch64-cpu",
    ]
    assert [t.subdir for t in targets[::2]] == ["linux-64", "linux-aarch64"]
    with pytest.raises(UsageError, match=r"rocm6\.2"):
        conda_targets(["linux-x86_64"], ["rocm6.2"])


def test_virtual_packages_describe_the_target_not_this_machine() -> None:
    names = [str(v) for v in virtual_packages(_target("linux-x86_64", "cu124"))]
    assert names == [
        "__unix=0=0",
        "__linux=5.10=0",
        "__glibc=2.28=0",
        "__archspec=1=x86_64",
        "__cuda=12.4=0",
    ]
    assert not any(v.name == "__cuda" for v in virtual_packages(_target("linux-x86_64", "cpu")))
    mac = {v.name: v for v in virtual_packages(_target("macos-arm64", "cpu"))}
    assert (mac["__osx"].version, mac["__archspec"].build) == ("13.0", "m1")
    assert "__unix" in mac
    win = [v.name for v in virtual_packages(_target("windows-x86_64", "cu118"))]
    assert win == ["__win", "__archspec", "__cuda"]


def test_cuda_targets_constrain_the_cuda_flavour() -> None:
    assert cuda_constraints(_target("linux-x86_64", "cu124")) == (
        "cuda-version 12.4.*",
        "pytorch-cuda 12.4.*",
    )
    assert cuda_constraints(_target("linux-x86_64", "cpu")) == ()


def test_channel_urls() -> None:
    base = "https://mirror.example/conda/"
    assert channel_url("conda-forge", base) == "https://mirror.example/conda/conda-forge"
    assert channel_url("pytorch/label/nightly", base) == (
        "https://mirror.example/conda/pytorch/label/nightly"
    )
    assert channel_url("https://x.example/c/", base) == "https://x.example/c"
    assert channel_url("file:///srv/chan", base) == "file:///srv/chan"
    assert channel_url("/srv/chan", base) == "file:///srv/chan"
    assert channel_urls(["defaults", "conda-forge", "conda-forge"], base) == (
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/r",
        "https://mirror.example/conda/conda-forge",
    )
    with pytest.raises(UsageError, match="Cannot read the conda channel"):
        channel_url("not a channel", base)


# -- against a served channel ------------------------------------------------------------


@pytest.fixture(scope="module")
def channels_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("channels")
    pytorch_channel().write(root / "chan")
    other = CondaChannel()
    other.add(CondaPkg("numpy", "9.9.9", "special_0", "noarch"))
    other.add(CondaPkg("new-glibc-tool", "1.0", "h0_0", "linux-64", depends=("__glibc >=2.34",)))
    other.write(root / "other")
    return root


@pytest.fixture(scope="module")
def server(channels_root: Path) -> Iterator[ChannelServer]:
    with serve_channels(channels_root) as running:
        yield running


def _env(channel: str, *deps: str) -> CondaEnvironment:
    lines = "".join(f"  - {dep}\n" for dep in deps)
    return parse_environment(f"name: t\nchannels: [{channel}]\ndependencies:\n{lines}")


def _request(
    env: CondaEnvironment, tmp_path: Path, *targets: str, offline: bool = False
) -> CondaRequest:
    matrix = tuple(_target(*t.rsplit("-", 1)) for t in targets)
    return CondaRequest(env, matrix, cache_dir=tmp_path / "rattler-cache", offline=offline)


def _build(solution: CondaSolution, name: str) -> str:
    pkg = solution.package(name)
    assert pkg is not None, f"{name} not in {solution.target_id}"
    return pkg.build


def test_cuda_target_picks_the_cuda_build(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorch", "numpy")
    (solution,) = resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124"))
    assert solution.target_id == "linux-x86_64-cu124"
    assert (solution.python_version, solution.python) == ("3.11.9", (3, 11))
    assert _build(solution, "pytorch") == "cuda124_generic_py311h2222124_200"
    cuda = solution.package("cuda-version")
    assert cuda is not None
    assert cuda.version == "12.4"
    assert "__cuda=12.4=0" in solution.virtual_packages
    assert all(p.md5 and p.sha256 and p.url.startswith(server.url) for p in solution.packages)


def test_without_cuda_a_plain_solve_picks_cpu(server: ChannelServer, tmp_path: Path) -> None:
    """The fixture is honest: without ``__cuda`` the solver takes the CPU build."""
    import rattler

    records = asyncio.run(
        rattler.solve(
            [f"{server.url}/chan"],
            ["python 3.11.*", "pytorch"],
            gateway=rattler.Gateway(cache_dir=tmp_path / "direct"),
            platforms=["linux-64", "noarch"],
            virtual_packages=[],
        )
    )
    torch = next(r for r in records if r.name.normalized == "pytorch")
    assert str(torch.build).startswith("cpu_")


def test_cpu_target_gets_the_cpu_build_whatever_this_machine_has(
    server: ChannelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rattler's host detection honours CONDA_OVERRIDE_CUDA: lockd must not ask it.
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.4")
    env = _env(f"{server.url}/chan", "python=3.12", "pytorch")
    (solution,) = resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))
    assert _build(solution, "pytorch") == "cpu_generic_py312h1111111_0"
    assert solution.python_version == "3.12.4"
    assert not any(v.startswith("__cuda") for v in solution.virtual_packages)


def test_matrix_fetches_each_subdir_once_and_solves_all(
    channels_root: Path, tmp_path: Path
) -> None:
    with serve_channels(channels_root) as fresh:
        env = _env(f"{fresh.url}/chan", "python=3.11", "pytorch")
        request = _request(
            env,
            tmp_path,
            "linux-x86_64-cu124",
            "linux-x86_64-cu118",
            "linux-x86_64-cpu",
            "linux-aarch64-cpu",
        )
        solutions = resolve_conda(request)
        fetched = [p for p in fresh.requests if p.endswith("/repodata.json")]
    assert sorted(fetched) == [
        "/chan/linux-64/repodata.json",
        "/chan/linux-aarch64/repodata.json",
        "/chan/noarch/repodata.json",
    ]
    assert [(s.target_id, _build(s, "pytorch").split("_")[0]) for s in solutions] == [
        ("linux-x86_64-cu124", "cuda124"),
        ("linux-x86_64-cu118", "cuda118"),
        ("linux-x86_64-cpu", "cpu"),
        ("linux-aarch64-cpu", "cpu"),
    ]
    assert solutions[3].subdir == "linux-aarch64"
    assert all(p.subdir in {"linux-aarch64", "noarch"} for p in solutions[3].packages)


def test_offline_uses_the_cached_repodata(channels_root: Path, tmp_path: Path) -> None:
    with serve_channels(channels_root) as once:
        url = f"{once.url}/chan"
        env = _env(url, "python=3.11", "pytorch")
        online = resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124"))
    # The server is gone; the cache alone must answer, and the same way.
    offline = resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124", offline=True))
    assert offline == online


def test_glibc_is_the_configured_one_not_this_machines(
    server: ChannelServer, tmp_path: Path
) -> None:
    env = _env(f"{server.url}/other", "new-glibc-tool")
    with pytest.raises(ResolutionError, match=r"__glibc >=2\.34"):
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))  # default glibc 2.28
    newer = replace(
        _request(env, tmp_path, "linux-x86_64-cpu"),
        virtual_versions=VirtualPackageVersions(glibc="2.35"),
    )
    (solution,) = resolve_conda(newer)
    assert "__glibc=2.35=0" in solution.virtual_packages
    assert solution.package("new-glibc-tool") is not None


def test_cuda_version_without_builds_lists_those_that_exist(
    server: ChannelServer, tmp_path: Path
) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorch")
    with pytest.raises(VerificationError) as info:
        resolve_conda(_request(env, tmp_path, "linux-x86_64-12.6"))
    err = info.value
    assert err.target == "linux-x86_64-cu126"
    text = err.render()
    assert "needs CUDA 12.6 builds, but pytorch 2.4.0 resolved to a CPU build" in text
    assert "(cpu_generic_py311h1111111_0)" in text
    assert "only for CUDA 11.8, 12.4" in text


def test_aarch64_with_cuda_fails_clearly(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorch")
    request = _request(env, tmp_path, "linux-aarch64-cu124", "linux-aarch64-cpu")
    outcomes = asyncio.run(solve_conda_matrix(request))
    error, ok = outcomes
    assert isinstance(error, VerificationError)
    assert error.target == "linux-aarch64-cu124"
    assert "The channels offer no CUDA build of the PyTorch family for linux-aarch64" in str(error)
    assert isinstance(ok, CondaSolution)


def test_several_failures_are_kept_together(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorch")
    request = _request(
        env, tmp_path, "linux-aarch64-cu124", "linux-x86_64-cu126", "linux-x86_64-cpu"
    )
    with pytest.raises(MatrixError) as info:
        resolve_conda(request)
    assert [f.target for f in info.value.failures] == ["linux-aarch64-cu124", "linux-x86_64-cu126"]


def test_unknown_package(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorchh")
    with pytest.raises(ResolutionError) as info:
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))
    assert info.value.target == "linux-x86_64-cpu"
    assert f"Package 'pytorchh' is not in {server.url}/chan for linux-64" in str(info.value)


def test_version_the_channel_does_not_have(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.13")
    with pytest.raises(ResolutionError) as info:
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))
    assert "No build of 'python' matches 'python 3.13.*'" in str(info.value)
    assert "the channels have python 3.11.9, 3.12.4" in str(info.value)


def test_unsatisfiable_specs_are_condensed(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/chan", "python=3.11", "pytorch", "python=3.12")
    with pytest.raises(ResolutionError) as info:
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124"))
    text = info.value.render()
    assert "\n" not in text
    assert "cannot be satisfied together" in text
    assert "python 3.11.* cannot be installed" in text
    assert "│" not in text and "└" not in text
    assert "CUDA builds" not in text  # the conflict has nothing to do with CUDA


def test_unreachable_channel(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}/chan"
    env = _env(url, "python")
    with pytest.raises(IndexError_) as info:
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu", "linux-x86_64-cu124"))
    text = info.value.render()
    assert f"Conda channel {url} could not be read" in text
    assert "Connection refused" in text


def test_missing_channel_on_a_live_server(server: ChannelServer, tmp_path: Path) -> None:
    env = _env(f"{server.url}/no-such-channel", "python")
    with pytest.raises(IndexError_, match="no-such-channel"):
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))


def test_file_channel(channels_root: Path, tmp_path: Path) -> None:
    local = tmp_path / "local-chan"
    shutil.copytree(channels_root / "chan", local)
    for channel in (local.as_uri(), str(local)):
        env = _env(channel, "python=3.11", "pytorch")
        (solution,) = resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124"))
        assert _build(solution, "pytorch").startswith("cuda124_")
        assert all(p.url.startswith(local.as_uri() + "/") for p in solution.packages)


def test_named_channels_use_the_configured_base(server: ChannelServer, tmp_path: Path) -> None:
    settings = Settings.from_env({"LOCKD_CONDA_CHANNEL": server.url + "/"})
    env = _env("chan", "python=3.11", "other::numpy")
    (solution,) = resolve_conda(
        CondaRequest(
            env,
            (_target("linux-x86_64", "cpu"),),
            channel_base=settings.conda_channel,
            cache_dir=tmp_path / "cache",
        )
    )
    assert solution.channels == (f"{server.url}/chan", f"{server.url}/other")
    numpy = solution.package("numpy")
    assert numpy is not None
    assert numpy.url == f"{server.url}/other/noarch/numpy-9.9.9-special_0.tar.bz2"


def test_no_channels_is_a_usage_error(tmp_path: Path) -> None:
    env = parse_environment("dependencies: [python]\n", "env.yml")
    with pytest.raises(UsageError, match=r"env\.yml lists no channels"):
        resolve_conda(_request(env, tmp_path, "linux-x86_64-cpu"))


def test_written_lock_installs_with_rattler(server: ChannelServer, tmp_path: Path) -> None:
    """The lock file is read back by rattler's own conda-lock parser and installed."""
    import rattler

    env = _env(f"{server.url}/chan", "python=3.11", "pytorch", "numpy", "tzdata")
    (solution,) = resolve_conda(_request(env, tmp_path, "linux-x86_64-cu124"))
    path = write_conda_lock(
        lock_from_solution(solution), tmp_path / conda_lock_filename(solution.target_id)
    )
    assert path.name == "conda-lock.linux-x86_64-cu124.yml"
    lock = read_conda_lock(path)
    assert {p.name for p in lock.packages} == {p.name for p in solution.packages}
    assert all(p.md5 and p.sha256 and p.url for p in lock.packages)

    parsed = rattler.LockFile.from_path(path)
    environment = parsed.default_environment()
    assert environment is not None
    records = environment.conda_repodata_records()["linux-64"]
    assert sorted((r.name.normalized, str(r.build)) for r in records) == sorted(
        (p.name, p.build) for p in solution.packages
    )
    assert {r.sha256.hex() for r in records if r.sha256} == {p.sha256 for p in solution.packages}

    prefix = tmp_path / "prefix"
    asyncio.run(
        rattler.install(
            records,
            prefix,
            cache_dir=tmp_path / "pkgs",
            show_progress=False,
            platform=rattler.Subdir("linux-64"),
        )
    )
    installed = sorted(p.name for p in (prefix / "share" / "lockd-test").iterdir())
    assert installed == sorted(f"{p.filename.removesuffix('.tar.bz2')}.txt" for p in lock.packages)
    assert len(list((prefix / "conda-meta").glob("*.json"))) == len(lock.packages)
