"""Pure checks: is a conda solution the CUDA (or CPU) build the target asked for?"""

from __future__ import annotations

import pytest

from lockd.errors import VerificationError
from lockd.resolvers.conda_verify import (
    build_flavour,
    build_mismatches,
    mismatch_error,
    offered_cuda_versions,
)
from lockd.resolvers.rattler import CondaPackage, CondaSolution
from lockd.targets import parse_accelerator


def pkg(
    name: str,
    build: str,
    *,
    version: str = "2.4.0",
    depends: tuple[str, ...] = (),
    track_features: tuple[str, ...] = (),
) -> CondaPackage:
    return CondaPackage(
        name=name,
        version=version,
        build=build,
        build_number=0,
        subdir="linux-64",
        channel="https://conda.example/conda-forge",
        url=f"https://conda.example/conda-forge/linux-64/{name}-{version}-{build}.tar.bz2",
        md5="0" * 32,
        sha256="0" * 64,
        depends=depends,
        track_features=track_features,
    )


def solution(*packages: CondaPackage) -> CondaSolution:
    return CondaSolution("linux-x86_64-cu124", "linux-64", (), packages, "3.11.9")


@pytest.mark.parametrize(
    ("package", "kind", "cuda"),
    [
        (pkg("pytorch", "cuda124_generic_py311h2222124_200"), "cuda", "12.4"),
        (pkg("pytorch", "cuda126_mkl_py312_h30b5a27_300"), "cuda", "12.6"),
        (pkg("torchvision", "cuda118_py311h0_0"), "cuda", "11.8"),
        (pkg("pytorch", "py3.11_cuda12.4_cudnn9.1.0_0"), "cuda", "12.4"),  # pytorch channel
        (pkg("pytorch-mutex", "cuda", version="1.0"), "cuda", None),
        (pkg("pytorch", "cpu_generic_py311h1111111_0"), "cpu", None),
        (pkg("pytorch", "py3.11_cpu_0"), "cpu", None),
        (pkg("pytorch-cpu", "h0_0"), "cpu", None),
        (pkg("cpuonly", "0", version="2.0"), "cpu", None),
        (pkg("pytorch", "py311h0_0", track_features=("pytorch-cpu",)), "cpu", None),
        (pkg("pytorch-cuda", "h0_7", version="12.4"), "cuda", "12.4"),
        (pkg("pytorch", "py311h0_0", depends=("__cuda", "python")), "cuda", None),
        (pkg("pytorch", "py311h0_0", depends=("cuda-version >=12.4,<13",)), "cuda", "12.4"),
        (pkg("pytorch", "py311h0_0", depends=("python >=3.11",)), "unknown", None),
    ],
)
def test_build_flavour(package: CondaPackage, kind: str, cuda: str | None) -> None:
    flavour = build_flavour(package)
    assert (flavour.kind, flavour.cuda_version) == (kind, cuda)


def test_a_cuda_target_rejects_cpu_builds_and_other_cuda_versions() -> None:
    cpu_torch = pkg("pytorch", "cpu_generic_py311h1111111_0")
    cu118_vision = pkg("torchvision", "cuda118_py311h0_0", version="0.19.0")
    ok = pkg("libtorch", "cuda124_generic_h0_200")
    numpy_cpu_named = pkg("numpy", "cpu_py311h0_0")  # not in the family: not checked
    found = build_mismatches(
        solution(cpu_torch, cu118_vision, ok, numpy_cpu_named), parse_accelerator("cu124")
    )
    assert [(m.package.name, m.flavour.kind) for m in found] == [
        ("pytorch", "cpu"),
        ("torchvision", "cuda"),
    ]


def test_a_generic_cuda_dependency_is_not_a_version_mismatch() -> None:
    # cuda-version >=12.0 is a lower bound, not "built for CUDA 12.0".
    generic = pkg("pytorch", "py311h0_0", depends=("cuda-version >=12.0,<13",))
    assert build_mismatches(solution(generic), parse_accelerator("cu124")) == ()


def test_a_cpu_target_rejects_cuda_builds() -> None:
    found = build_mismatches(
        solution(pkg("pytorch", "cuda124_generic_py311h2222124_200")), parse_accelerator("cpu")
    )
    assert [m.package.build for m in found] == ["cuda124_generic_py311h2222124_200"]
    error = mismatch_error(found, "linux-x86_64-cpu", parse_accelerator("cpu"), "linux-64")
    assert "linux-x86_64-cpu is a CPU target but resolved the CUDA build of pytorch" in str(error)


def test_offered_cuda_versions_are_sorted_numerically() -> None:
    records = [
        pkg("pytorch", "cuda128_py311h0_0"),
        pkg("pytorch", "cuda118_py311h0_0"),
        pkg("pytorch", "cuda124_py311h0_0"),
        pkg("pytorch", "cuda124_py312h0_0"),
        pkg("pytorch", "cpu_py311h0_0"),
        pkg("pytorch", "py3.11_cuda12.10_0"),
    ]
    assert offered_cuda_versions(records) == ("11.8", "12.4", "12.8", "12.10")


def _render(error: VerificationError) -> str:
    assert error.target == "linux-x86_64-cu126"
    text = error.render()
    assert "\n" not in text
    return text


def test_error_lists_the_cuda_versions_the_channel_has() -> None:
    cpu = pkg("pytorch", "cpu_generic_py311h1111111_0")
    found = build_mismatches(solution(cpu), parse_accelerator("cu126"))
    offered = [pkg("pytorch", "cuda118_py311h0_0"), pkg("pytorch", "cuda124_py311h0_0"), cpu]
    text = _render(
        mismatch_error(found, "linux-x86_64-cu126", parse_accelerator("12.6"), "linux-64", offered)
    )
    assert "needs CUDA 12.6 builds, but pytorch 2.4.0 resolved to a CPU build" in text
    assert "(cpu_generic_py311h1111111_0)" in text
    assert "marks a CPU build" in text
    assert "only for CUDA 11.8, 12.4" in text
    assert "--cuda 12.4" in text


def test_error_when_the_channel_has_no_cuda_build_at_all() -> None:
    found = build_mismatches(solution(pkg("pytorch", "cpu_py311h0_0")), parse_accelerator("cu126"))
    text = _render(mismatch_error(found, "linux-x86_64-cu126", parse_accelerator("cu126"), "x"))
    assert "The channels offer no CUDA build of the PyTorch family for x" in text
    assert "--cuda cpu" in text


def test_error_when_builds_exist_but_did_not_fit() -> None:
    found = build_mismatches(solution(pkg("pytorch", "cpu_py311h0_0")), parse_accelerator("cu126"))
    offered = [pkg("pytorch", "cuda126_py312h0_0")]
    text = _render(
        mismatch_error(found, "linux-x86_64-cu126", parse_accelerator("cu126"), "linux-64", offered)
    )
    assert "CUDA 12.6 builds exist for linux-64, but none fits the other specs" in text
    assert "pytorch=*=cuda*" in text
