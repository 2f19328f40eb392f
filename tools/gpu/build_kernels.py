"""Builds Anneal's fused operators (plugin-ssm-hybrid/src/main/native) into a plain shared library,
anneal_ops.so, against the torch of this Python (the libtorch DJL loads on the GPU machine), with
anneal_ops.json beside it naming the sources (a fingerprint), torch, CUDA and GPU architecture it
was built for.

    python3 tools/gpu/build_kernels.py [OUT_DIR]     (default plugin-ssm-hybrid/target/native)

ANNEAL_BUILD_FLAGS adds flags to both compiles, C++ and CUDA: a variant behind a macro, compared
with the default build by tools/gpu/try-variants.sh; anneal_ops.json records them.
ANNEAL_SOURCE_DIR builds other sources than the tree's (another commit's, from
tools/gpu/variant-sources.sh, for try-variants.sh "@DIR").

The hybrid plugin finds the library in plugins/ssm-hybrid/native/ or at $ANNEAL_KERNELS.

    python3 tools/gpu/build_kernels.py --flags cxx|cuda ARCH

prints the flags this build adds to torch's own for one of the two compiles (ANNEAL_BUILD_FLAGS
included) and needs no torch: tools/gpu/compile-check.sh compiles with them on a machine without one.
"""
import hashlib
import json
import os
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
source = os.path.abspath(os.environ.get("ANNEAL_SOURCE_DIR")
                         or os.path.join(root, "plugin-ssm-hybrid", "src", "main", "native"))


def compile_flags(arch):
    """The flags the C++ ("cxx") and CUDA ("cuda") compiles add to torch's extension builder's own,
    with ANNEAL_BUILD_FLAGS's words at the end of both: the one place they are spelled."""
    extra = os.environ.get("ANNEAL_BUILD_FLAGS", "").split()
    return {"cxx": ["-O3", f"-DANNEAL_ARCH={arch}"] + extra, "cuda": ["-O3", "--use_fast_math"] + extra}


def sources_fingerprint():
    """SHA-256 over the sources as FusedKernels.sourcesFingerprint() computes it: per file, in this
    order, its name in UTF-8, a NUL byte, its bytes, a NUL byte. The plugin refuses a library whose
    record names other sources (a stale build)."""
    sha = hashlib.sha256()
    for name in ("anneal_kernels.cu", "anneal_kernels.h", "anneal_ops.cpp"):
        with open(os.path.join(source, name), "rb") as f:
            sha.update(name.encode() + b"\0" + f.read() + b"\0")
    return sha.hexdigest()


def build(out):
    import torch
    from torch.utils.cpp_extension import load

    os.makedirs(out, exist_ok=True)
    major, minor = torch.cuda.get_device_capability()
    arch = f"sm_{major}{minor}"
    os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    flags = compile_flags(arch)
    started = time.time()
    load(name="anneal_ops",
         sources=[os.path.join(source, "anneal_ops.cpp"), os.path.join(source, "anneal_kernels.cu")],
         extra_include_paths=[source], extra_cflags=flags["cxx"], extra_cuda_cflags=flags["cuda"],
         is_python_module=False, with_cuda=True, build_directory=out, verbose=False)
    library = os.path.join(out, "anneal_ops.so")
    info = {"library": "anneal_ops.so", "torch": torch.__version__, "cuda": torch.version.cuda, "arch": arch,
            "sources": sources_fingerprint()}
    if os.environ.get("ANNEAL_BUILD_FLAGS"):
        info["build_flags"] = os.environ["ANNEAL_BUILD_FLAGS"]
    torch.ops.load_library(library)
    built = torch.ops.anneal.build_info(torch.zeros(1))
    # what the linear layers' forward GEMMs run in on this GPU, as the library itself says (its default
    # or the flags, and anneal_ops.cpp's fp8_capable), for the run's status line (FusedKernels.java)
    info["forward_gemms"] = "float8" if "float8 forward GEMMs" in built else "bfloat16"
    with open(os.path.join(out, "anneal_ops.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(f"built {library} in {time.time() - started:.0f} s: {built}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--flags" and sys.argv[2] in ("cxx", "cuda"):
        print(" ".join(compile_flags(sys.argv[3])[sys.argv[2]]))
    elif len(sys.argv) > 1 and sys.argv[1].startswith("--"):
        sys.exit(f"usage: {sys.argv[0]} [OUT_DIR]  or  {sys.argv[0]} --flags cxx|cuda ARCH")
    else:
        build(os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                              else os.path.join(root, "plugin-ssm-hybrid", "target", "native")))
