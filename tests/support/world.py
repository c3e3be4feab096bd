"""The PyTorch-shaped world the compile tests lock against, built in code.

It recreates the traps of the field notes: variant indexes hosting old copies
of numpy/filelock/typing-extensions, a cu124 aarch64 torch without a local tag
(a CPU build), a file listed without ``#sha256=``, macOS wheels only on
``/whl/cpu`` without a tag, and PyPI's untagged CUDA torch whose CUDA version
shows only in its ``nvidia-cuda-runtime-cu12`` requirement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .pyindex import Index, IndexServer
from .wheels import WheelSpec as W

LINUX_X86 = "manylinux_2_28_x86_64"
LINUX_ARM = "manylinux_2_28_aarch64"
PYS = ("cp311", "cp312")


def _abi(py: str, plat: str) -> str:
    return f"{py}-{py}-{plat}"


def build_world(server: IndexServer) -> IndexServer:
    pypi = server.pypi("simple")
    for py in PYS:
        for plat in (LINUX_X86, LINUX_ARM, "macosx_11_0_arm64"):
            pypi.add(W("numpy", "2.1.0", _abi(py, plat)))
    pypi.add(W("filelock", "3.16.1"))
    pypi.add(W("typing-extensions", "4.12.2"))
    pypi.add(W("requests", "2.32.3", requires=("idna>=2.5",)))
    pypi.add(W("idna", "3.10"))
    pypi.add(W("nvidia-cuda-runtime-cu12", "12.4.127", "py3-none-manylinux2014_x86_64"))
    pypi.add(W("triton", "3.2.0", _abi("cp311", LINUX_X86)))
    pypi.add(W("triton", "3.2.0", _abi("cp312", LINUX_X86)))
    pypi_torch_requires = (
        "filelock",
        "typing-extensions>=4.10.0",
        # the old metadata spelling, with parentheses: parsed with packaging, not regexes
        "nvidia-cuda-runtime-cu12 (==12.4.127) ; "
        'platform_system == "Linux" and platform_machine == "x86_64"',
        'triton==3.2.0 ; platform_system == "Linux" and platform_machine == "x86_64"',
    )
    for py in PYS:
        pypi.add(W("torch", "2.6.0", _abi(py, LINUX_X86), requires=pypi_torch_requires))
        # PyPI's aarch64 torch 2.6.0 is a CPU build with the *same* Requires-Dist:
        # the CUDA runtime only under an x86_64 marker.
        pypi.add(W("torch", "2.6.0", _abi(py, LINUX_ARM), requires=pypi_torch_requires))
        pypi.add(W("torch", "2.6.0", f"{py}-none-macosx_11_0_arm64", requires=("filelock",)))

    # Old copies of ordinary packages on every variant index: the trap.
    variant_torch_requires = (
        "filelock",
        "typing-extensions>=4.8.0",
        "numpy",
        'triton==3.2.0 ; platform_system == "Linux" and platform_machine == "x86_64"',
    )
    variants = {name: server.pytorch(name) for name in ("cu124", "cu121", "cpu")}
    for variant, index in variants.items():
        index.add(W("numpy", "1.26.0", _abi("cp311", LINUX_X86)), upload_time=None)
        index.add(W("numpy", "1.26.0", _abi("cp312", LINUX_X86)), upload_time=None)
        index.add(W("filelock", "3.9.0"), upload_time=None)
        index.add(W("typing-extensions", "4.9.0"), upload_time=None)
        if variant != "cpu":
            for py in PYS:
                index.add(W("triton", "3.2.0", _abi(py, LINUX_X86)), upload_time=None)

    cu124 = variants["cu124"]
    for py in PYS:
        # cp312 is listed without #sha256=: the lock must hash the file itself.
        cu124.add(
            W("torch", "2.6.0+cu124", _abi(py, LINUX_X86), requires=variant_torch_requires),
            upload_time=None,
            publish_hash=py != "cp312",
        )
        # The cu124 aarch64 wheels carry no local tag and are CPU-only builds.
        cu124.add(
            W("torch", "2.6.0", _abi(py, LINUX_ARM), requires=("filelock",)), upload_time=None
        )
        cu124.add(
            W(
                "torchvision",
                "0.21.0+cu124",
                _abi(py, LINUX_X86),
                requires=("torch==2.6.0", "numpy"),
            ),
            upload_time=None,
        )
    cu121 = variants["cu121"]
    for py in PYS:
        cu121.add(
            W("torch", "2.5.1+cu121", _abi(py, LINUX_X86), requires=variant_torch_requires),
            upload_time=None,
        )
    cpu = variants["cpu"]
    for py in PYS:
        cpu.add(
            W("torch", "2.6.0+cpu", _abi(py, LINUX_X86), requires=("filelock", "numpy")),
            upload_time=None,
        )
        cpu.add(
            W("torch", "2.6.0+cpu", _abi(py, LINUX_ARM), requires=("filelock", "numpy")),
            upload_time=None,
        )
        cpu.add(
            W("torch", "2.6.0", f"{py}-none-macosx_11_0_arm64", requires=("filelock", "numpy")),
            upload_time=None,
        )
    return server


@contextmanager
def serve_world() -> Iterator[IndexServer]:
    """The world on a port of its own, for as long as the block runs."""
    server = build_world(IndexServer()).start()
    try:
        yield server
    finally:
        server.stop()


def index_at(server: IndexServer, prefix: str) -> Index:
    """The index served under ``prefix`` (``/simple``, ``/whl/cu124``)."""
    return next(index for index in server.indexes if index.prefix == prefix)
