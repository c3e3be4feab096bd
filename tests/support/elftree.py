"""Real ELF shared objects compiled by gcc, laid out as trees a scanner can be pointed at.

``Lib`` describes one object (where it lies, its soname, ``DT_NEEDED``,
``DT_RPATH``/``DT_RUNPATH``, and the ``PyInit_`` symbol of an extension
module); ``build`` compiles a set of them into a root directory. Objects of a
tree are built with ``-nostdlib`` so that nothing but what the test wrote
appears in ``DT_NEEDED`` (no ``libc.so.6`` the fake root would lack).

``TORCH_CU130`` reproduces the layout of the torch 2.14.1 + CUDA 13.0 wheels
(checked on the real wheels, see FIELD-NOTES.md): where each library lies,
what it needs and the RPATH/RUNPATH it carries, including cuFile's RDMA
plugin and NVSHMEM's transports and bootstraps, which need libraries
(``libibverbs``, ``libucp``, ``libmpi``…) that hosts and images lack.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SOURCE = "int lockd_test_symbol(void) { return 42; }\n"


@dataclass(frozen=True)
class Lib:
    path: str  # relative to the tree's root
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None  # DT_RPATH
    runpath: str | None = None  # DT_RUNPATH
    module: str | None = None  # defines PyInit_<module>


def cc(out: Path, lib: Lib, stubs: Path, *, nostdlib: bool = True) -> Path:
    """Compile ``lib`` to ``out``, linking against stubs of what it needs (made in ``stubs``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    source = SOURCE
    if lib.module:
        source += f"void *PyInit_{lib.module}(void) {{ return 0; }}\n"
    command = ["gcc", "-shared", "-fPIC", "-o", str(out), "-x", "c", "-"]
    if nostdlib:
        command.append("-nostdlib")
    if lib.soname:
        command.append(f"-Wl,-soname,{lib.soname}")
    if lib.rpath:
        command += ["-Wl,--disable-new-dtags", f"-Wl,-rpath,{lib.rpath}"]
    if lib.runpath:
        command += ["-Wl,--enable-new-dtags", f"-Wl,-rpath,{lib.runpath}"]
    # --no-as-needed: keep every DT_NEEDED even though nothing calls into the stubs.
    command += ["-Wl,--no-as-needed", f"-L{stubs}"]
    for name in lib.needed:
        stub = stubs / name
        if not stub.exists():
            subprocess.run(
                ["gcc", "-shared", "-fPIC", "-nostdlib", "-o", str(stub), "-x", "c", "-",
                 f"-Wl,-soname,{name}"],
                input=SOURCE,
                text=True,
                check=True,
            )  # fmt: skip
        command.append(f"-l:{name}")
    subprocess.run(command, input=source, text=True, check=True)
    return out


def build(root: Path, libs: Iterable[Lib], *, nostdlib: bool = True) -> Path:
    """Compile every ``Lib`` below ``root``; the stubs linked against are thrown away."""
    stubs = Path(tempfile.mkdtemp(prefix="lockd-stubs-"))
    try:
        for lib in libs:
            cc(root / lib.path, lib, stubs, nostdlib=nostdlib)
    finally:
        shutil.rmtree(stubs)
    return root


SITE = "opt/venv/lib/python3.11/site-packages"
MULTIARCH = "usr/lib/x86_64-linux-gnu"
_TORCH_RPATH = ":".join(
    f"$ORIGIN/../../nvidia/{d}/lib" for d in ("cudnn", "nvshmem", "nccl", "cusparselt", "cu13")
)
_CU13 = f"{SITE}/nvidia/cu13/lib"
_NVSHMEM = f"{SITE}/nvidia/nvshmem/lib"

TORCH_CU130: tuple[Lib, ...] = (
    # torch: the extension module and the libraries it loads, each with the wheel's DT_RPATH
    Lib(
        f"{SITE}/torch/_C.cpython-311-x86_64-linux-gnu.so",
        ("libtorch_python.so",),
        rpath=_TORCH_RPATH + ":$ORIGIN:$ORIGIN/lib",
        module="_C",
    ),
    Lib(
        f"{SITE}/torch/lib/libtorch_python.so",
        (
            "libtorch.so",
            "libtorch_cuda.so",
            "libc10.so",
            "libcudart.so.13",
            "libcufile.so.0",
            "libnccl.so.2",
            "libcudnn.so.9",
            "libstdc++.so.6",
        ),
        rpath=_TORCH_RPATH + ":$ORIGIN",
    ),
    Lib(f"{SITE}/torch/lib/libtorch.so", ("libtorch_cuda.so",), rpath=_TORCH_RPATH + ":$ORIGIN"),
    Lib(
        f"{SITE}/torch/lib/libtorch_cuda.so",
        (
            "libtorch_nvshmem.so",
            "libc10_cuda.so",
            "libcudart.so.13",
            "libcublas.so.13",
            "libcufile.so.0",
            "libnccl.so.2",
            "libcudnn.so.9",
            "libnvrtc.so.13",
            "libstdc++.so.6",
        ),
        rpath=_TORCH_RPATH + ":$ORIGIN",
    ),
    Lib(f"{SITE}/torch/lib/libc10.so", ("libstdc++.so.6",), rpath=_TORCH_RPATH + ":$ORIGIN"),
    Lib(
        f"{SITE}/torch/lib/libc10_cuda.so",
        ("libc10.so", "libcudart.so.13"),
        rpath=_TORCH_RPATH + ":$ORIGIN",
    ),
    Lib(
        f"{SITE}/torch/lib/libtorch_nvshmem.so",
        ("libnvshmem_host.so.3", "libcudart.so.13"),
        rpath=_TORCH_RPATH + ":$ORIGIN",
    ),
    # loaded lazily by torch, needs the driver: not part of the import closure
    Lib(
        f"{SITE}/torch/lib/libcaffe2_nvrtc.so",
        ("libnvrtc.so.13", "libcuda.so.1"),
        rpath=_TORCH_RPATH + ":$ORIGIN",
    ),
    # the CUDA 13 runtime wheels share nvidia/cu13/lib
    Lib(f"{_CU13}/libcudart.so.13", soname="libcudart.so.13"),
    Lib(f"{_CU13}/libcublasLt.so.13", soname="libcublasLt.so.13", runpath="$ORIGIN"),
    Lib(
        f"{_CU13}/libcublas.so.13",
        ("libcublasLt.so.13",),
        soname="libcublas.so.13",
        runpath="$ORIGIN",
    ),
    Lib(f"{_CU13}/libnvrtc.so.13", soname="libnvrtc.so.13"),
    Lib(f"{_CU13}/libcufile.so.0", ("libstdc++.so.6",), soname="libcufile.so.0"),
    # cuFile's RDMA plugin: dlopen'ed by libcufile when GPUDirect RDMA is configured
    Lib(
        f"{_CU13}/libcufile_rdma.so.1",
        ("libmlx5.so.1", "librdmacm.so.1", "libibverbs.so.1", "libcufile.so.0", "libstdc++.so.6"),
        soname="libcufile_rdma.so.1",
    ),
    # no RUNPATH: needs libcublas only if someone loads it with cu13/lib on the path
    Lib(
        f"{_CU13}/libcusolverMg.so.12",
        ("libcublas.so.13", "libcublasLt.so.13"),
        soname="libcusolverMg.so.12",
    ),
    Lib(f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9", soname="libcudnn.so.9", rpath="$ORIGIN"),
    Lib(
        f"{SITE}/nvidia/cudnn/lib/libcudnn_adv.so.9",
        ("libz.so.1", "libstdc++.so.6"),
        soname="libcudnn_adv.so.9",
        runpath="$ORIGIN:$ORIGIN/../../cublas/lib:$ORIGIN/../../cu13/lib",
    ),
    Lib(f"{SITE}/nvidia/nccl/lib/libnccl.so.2", ("libstdc++.so.6",), soname="libnccl.so.2"),
    # NVSHMEM: the host library is loaded; transports and bootstraps are dlopen'ed on demand
    Lib(
        f"{_NVSHMEM}/libnvshmem_host.so.3",
        ("libstdc++.so.6",),
        soname="libnvshmem_host.so.3",
        rpath="${ORIGIN}",
    ),
    Lib(
        f"{_NVSHMEM}/nvshmem_transport_ucx.so.3", ("libucs.so.0", "libucp.so.0"), rpath="${ORIGIN}"
    ),
    Lib(f"{_NVSHMEM}/nvshmem_transport_libfabric.so.3", ("libfabric.so.1",), rpath="${ORIGIN}"),
    Lib(f"{_NVSHMEM}/nvshmem_transport_ibgda.so.3", ("libmlx5.so.1",), rpath="${ORIGIN}"),
    Lib(f"{_NVSHMEM}/nvshmem_transport_ibrc.so.3", ("libstdc++.so.6",), rpath="${ORIGIN}"),
    Lib(
        f"{_NVSHMEM}/nvshmem_bootstrap_mpi.so.3",
        ("libmpi.so.40",),
        runpath="/data/tmp/openmpi_install/lib:${ORIGIN}",
    ),
    Lib(f"{_NVSHMEM}/nvshmem_bootstrap_pmix.so.3", ("libpmix.so.2",), rpath="${ORIGIN}"),
    Lib(
        f"{_NVSHMEM}/nvshmem_bootstrap_shmem.so.3",
        ("liboshmem.so.40",),
        runpath="/data/tmp/openmpi_install/lib:${ORIGIN}",
    ),
    # triton's extension module is a plain .so (PyInit_libtriton) in a directory without
    # __init__.py; its plugins' RUNPATH points at directories of the build machine
    Lib(f"{SITE}/triton/_C/libtriton.so", ("libz.so.1", "libstdc++.so.6"), module="libtriton"),
    Lib(
        f"{SITE}/triton/plugins/libTritonPluginsTestLib.so",
        ("libtriton.so",),
        runpath="/project/build/lib.linux-x86_64-cpython-311/triton/_C",
    ),
    Lib(
        f"{SITE}/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so",
        ("libstdc++.so.6",),
        module="_speedups",
    ),
    # the system: libz and libstdc++ in the multiarch directory (with their versioned names)
    Lib(f"{MULTIARCH}/libz.so.1.3", soname="libz.so.1"),
    Lib(f"{MULTIARCH}/libstdc++.so.6.0.30", soname="libstdc++.so.6"),
)

# What NVIDIA's plugins need and neither hosts nor images have (the nightly job's 9 "missing").
PLUGIN_ONLY = {
    "libibverbs.so.1": ("nvidia/cu13/lib/libcufile_rdma.so.1",),
    "librdmacm.so.1": ("nvidia/cu13/lib/libcufile_rdma.so.1",),
    "libmlx5.so.1": (
        "nvidia/cu13/lib/libcufile_rdma.so.1",
        "nvidia/nvshmem/lib/nvshmem_transport_ibgda.so.3",
    ),
    "libucp.so.0": ("nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3",),
    "libucs.so.0": ("nvidia/nvshmem/lib/nvshmem_transport_ucx.so.3",),
    "libfabric.so.1": ("nvidia/nvshmem/lib/nvshmem_transport_libfabric.so.3",),
    "libmpi.so.40": ("nvidia/nvshmem/lib/nvshmem_bootstrap_mpi.so.3",),
    "libpmix.so.2": ("nvidia/nvshmem/lib/nvshmem_bootstrap_pmix.so.3",),
    "liboshmem.so.40": ("nvidia/nvshmem/lib/nvshmem_bootstrap_shmem.so.3",),
}


def torch_cu130_tree(root: Path) -> Path:
    """The torch 2.14.1 + CUDA 13.0 layout under ``root``, as a Debian-like system would hold it.

    ``/lib`` is a link to ``usr/lib`` (merged /usr) and the system libraries are
    reached through absolute links (``libz.so.1 -> /usr/lib/…/libz.so.1.3``):
    both must resolve inside the tree, never on the host.
    """
    build(root, TORCH_CU130)
    (root / "lib").symlink_to("usr/lib")
    for soname, real in (("libz.so.1", "libz.so.1.3"), ("libstdc++.so.6", "libstdc++.so.6.0.30")):
        (root / MULTIARCH / soname).symlink_to(f"/{MULTIARCH}/{real}")
    return root
