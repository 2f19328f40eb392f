#!/usr/bin/env bash
# Compiles the fused operators' sources (plugin-ssm-hybrid/src/main/native) on a machine without a
# GPU or a Python torch, so that a change to them is known to compile before a GPU call is spent on
# it (a build that fails there costs the call's start and its build).
#
#   bash tools/gpu/compile-check.sh                      # the default build
#   bash tools/gpu/compile-check.sh "" "-DANNEAL_X=0"    # one build per argument, as try-variants.sh
#
# - anneal_ops.cpp's operator schemas (its TORCH_LIBRARY block): parsed by libtorch's own parser
#   (tools/gpu/schema_check.cpp, linked against DJL's CPU libtorch from ~/.djl.ai or the local Maven
#   repository), once for all builds: a schema it refuses compiles everywhere and aborts the
#   operators' load on the GPU machine.
# - anneal_kernels.cu: nvcc, compiled for real (-arch=sm_90, the H200's), as build_kernels.py does.
#   Both compiles take build_kernels.py's own flags from it (--flags), and the CUDA one torch's
#   extension builder's too (no implicit half and bfloat16 conversions: a kernel that relies on
#   one compiles with plain nvcc and fails in the GPU machine's build).
# - launch_probe.cpp, linked against the kernels' object and run: a kernel launch that fails (every
#   one, on a machine without a GPU) must come back as an error naming CUDA's, not pass in silence.
# - anneal_ops.cpp: g++ -fsyntax-only against libtorch's headers. Where no torch headers are given
#   (TORCH_INCLUDE=DIR, a torch's include/ folder), Debian's libtorch-cuda-dev is fetched once into
#   ${XDG_CACHE_HOME:-~/.cache}/anneal/ and checked against its SHA-256. It is torch 2.6, older than
#   the GPU machine's 2.11: an API newer than 2.6 fails here while it builds there (say so in the
#   commit and rely on the GPU build). The CUDA toolkit's cuBLAS, cuSPARSE and cuSOLVER headers,
#   which the torch headers include for their types only, come from tools/gpu/compile-check-stubs
#   where the toolkit has none (they are searched after the toolkit's own).
#
# ANNEAL_SOURCE_DIR checks other sources than the tree's (as build_kernels.py).
# Exit 0: every schema parses and every build compiles. 2: one does not; the parser's or the
# compiler's errors are printed, with the file and line. 3: this machine cannot check (no nvcc or
# g++, no torch headers to be had, or no DJL libtorch for the schema parser).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
source_dir=${ANNEAL_SOURCE_DIR:-$root/plugin-ssm-hybrid/src/main/native}
stubs=$root/tools/gpu/compile-check-stubs
deb_url=http://deb.debian.org/debian/pool/contrib/p/pytorch-cuda/libtorch-cuda-dev_2.6.0+dfsg-7+b1_amd64.deb
deb_sha256=8906705aa8824b1ad3783b80688accd5bc05fedd97d0ccb40cb461f8f43f5182

cannot() { echo "compile-check: cannot check on this machine: $*" >&2; exit 3; }

command -v python3 > /dev/null || cannot "no python3 on PATH (build_kernels.py --flags names the build's flags)"
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null) || cannot "no nvcc on PATH or in /usr/local/cuda/bin"
command -v g++ > /dev/null || cannot "no g++ on PATH"
# nvcc may be a wrapper script: ask it where the toolkit's headers are (its dry run names them).
cuda_include=$("$nvcc" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/.* INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
[[ -f $cuda_include/cuda_runtime_api.h ]] || cannot "$nvcc names no CUDA include folder with cuda_runtime_api.h"
[[ -f $source_dir/anneal_ops.cpp && -f $source_dir/anneal_kernels.cu ]] \
  || { echo "compile-check: $source_dir holds no anneal_ops.cpp and anneal_kernels.cu" >&2; exit 2; }

torch_headers() {
  if [[ -n ${TORCH_INCLUDE:-} ]]; then
    [[ -f $TORCH_INCLUDE/torch/library.h ]] || cannot "TORCH_INCLUDE=$TORCH_INCLUDE holds no torch/library.h"
    echo "$TORCH_INCLUDE"
    return
  fi
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/anneal/libtorch-cuda-dev-2.6.0
  if [[ ! -f $cache/usr/include/torch/library.h ]]; then
    local tmp
    tmp=$(mktemp -d) || cannot "no temporary folder"
    echo "compile-check: fetching torch 2.6's headers (Debian's libtorch-cuda-dev, 2.4 MB) into $cache" >&2
    curl -sSfL --connect-timeout 20 --max-time 120 -o "$tmp/headers.deb" "$deb_url" || cannot "could not fetch $deb_url"
    echo "$deb_sha256  $tmp/headers.deb" | sha256sum -c --quiet - >&2 || cannot "$deb_url is not the file pinned here"
    (cd "$tmp" && ar x headers.deb && mkdir -p tree && tar -xf data.tar.* -C tree) \
      || cannot "could not unpack $deb_url (needs ar and tar)"
    mkdir -p "$(dirname "$cache")" && rm -rf "$cache" && mv "$tmp/tree" "$cache"
    rm -rf "$tmp"
  fi
  echo "$cache/usr/include"
}
torch_include=$(torch_headers) || exit $?

# libtorch's CPU library (for its schema parser): DJL's, unpacked where DJL put it, or from the
# pytorch-native-cpu jar the build fetched into the local Maven repository (once, into the cache)
libtorch_cpu() {
  local found
  found=$(ls -d "$HOME"/.djl.ai/pytorch/*-cpu-linux-x86_64 2>/dev/null | while read -r dir; do
    [[ -f $dir/libtorch_cpu.so && -f $dir/libc10.so ]] && echo "$dir"; done | sort | tail -1)
  [[ -n $found ]] && { echo "$found"; return; }
  local jar cache=${XDG_CACHE_HOME:-$HOME/.cache}/anneal/libtorch-cpu
  jar=$(ls "${MAVEN_REPOSITORY:-$HOME/.m2/repository}"/ai/djl/pytorch/pytorch-native-cpu/*/pytorch-native-cpu-*-linux-x86_64.jar \
    2>/dev/null | sort -V | tail -1)
  [[ -n $jar ]] || cannot "no libtorch for the schema check: neither ~/.djl.ai/pytorch nor DJL's pytorch-native-cpu jar in ~/.m2 (build first: mvn -B -DskipTests install)"
  cache=$cache/$(basename "$jar" .jar)
  if [[ ! -f $cache/libtorch_cpu.so ]]; then
    echo "compile-check: unpacking libtorch's CPU library from $jar into $cache" >&2
    mkdir -p "$cache" && python3 - "$jar" "$cache" <<'PY' || cannot "could not unpack $jar"
import os, sys, zipfile
jar, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(jar) as z:
    for name in z.namelist():
        if name.startswith("pytorch/cpu/linux-x86_64/") and not name.endswith("/"):
            with z.open(name) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
                dst.write(src.read())
PY
  fi
  echo "$cache"
}

# Every schema of the operators' TORCH_LIBRARY block through libtorch's own parser: one it refuses
# compiles everywhere and aborts the library's load on the GPU machine (a whole call lost)
libtorch_dir=$(libtorch_cpu) || exit $?
schema_work=$(mktemp -d)
if ! g++ -std=c++17 -O0 -I"$torch_include" -I"$torch_include/torch/csrc/api/include" "$root/tools/gpu/schema_check.cpp" \
    -o "$schema_work/schema_check" -L"$libtorch_dir" -ltorch_cpu -lc10 -Wl,-rpath,"$libtorch_dir" > "$schema_work/gxx.log" 2>&1; then
  head -20 "$schema_work/gxx.log"
  rm -rf "$schema_work"
  cannot "tools/gpu/schema_check.cpp does not build against $libtorch_dir"
fi
schema_failed=0
if schemas=$("$schema_work/schema_check" "$source_dir/anneal_ops.cpp" 2>&1); then
  echo "compile-check: the operators' schemas parse ($schemas, libtorch's parser from $libtorch_dir)"
else
  echo "compile-check: an operator's schema does not parse (the library would not load):"
  echo "$schemas" | head -40
  schema_failed=1
fi
rm -rf "$schema_work"

# torch.utils.cpp_extension's COMMON_NVCC_FLAGS (torch 2.6 to 2.11), which it adds to every CUDA compile
torch_nvcc_flags=(-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
                  -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr)
# build_kernels.py's flags for one compile (cxx or cuda) of a variant's flags
build_flags() { ANNEAL_BUILD_FLAGS="$2" python3 "$root/tools/gpu/build_kernels.py" --flags "$1" sm_90; }

# "NAME (S bytes stack, T bytes spill stores); ..." of the kernels ptxas -v gave a stack frame or
# spills in LOG, names demangled where c++filt is, without their parameters; "none" when there is none
spilling_kernels() {
  local found
  found=$(grep -A1 "Function properties for" "$1" | grep -v "^--" | paste - - \
    | sed -n 's/.*Function properties for \([^ ]*\).* \([0-9]*\) bytes stack frame, \([0-9]*\) bytes spill stores.*/\1 \2 \3/p' \
    | awk '$2 != 0 || $3 != 0')
  [[ -n $found ]] || { echo none; return; }
  local demangle=cat
  command -v c++filt > /dev/null && demangle=c++filt
  while read -r name stack spills; do
    printf '%s (%s bytes stack, %s bytes spill stores); ' \
      "$(echo "$name" | $demangle | sed 's/^void //; s/(anonymous namespace):://; s/([^()]*)$//')" "$stack" "$spills"
  done <<< "$found" | sed 's/; $//'
}

[[ $# -gt 0 ]] || set -- ""
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=$schema_failed
for flags in "$@"; do
  label=${flags:-default}
  broken=0
  cuda_flags=$(build_flags cuda "$flags") && cxx_flags=$(build_flags cxx "$flags") \
    || { echo "compile-check: tools/gpu/build_kernels.py --flags failed ($label)"; failed=1; continue; }
  # shellcheck disable=SC2086 # flags are words, as build_kernels.py splits ANNEAL_BUILD_FLAGS
  if ! "$nvcc" -std=c++17 -arch=sm_90 "${torch_nvcc_flags[@]}" $cuda_flags -I"$source_dir" -Xptxas -v \
      -c "$source_dir/anneal_kernels.cu" -o "$work/kernels.o" > "$work/nvcc.log" 2>&1; then
    echo "compile-check: anneal_kernels.cu does not compile ($label):"
    grep -E "error|warning" "$work/nvcc.log" | head -40
    broken=1
  fi
  # shellcheck disable=SC2086
  if ! g++ -std=c++17 -fsyntax-only -Wall -Werror=return-type -I"$source_dir" -I"$torch_include" \
      -I"$torch_include/torch/csrc/api/include" -I"$cuda_include" -idirafter "$stubs" \
      $cxx_flags "$source_dir/anneal_ops.cpp" > "$work/gxx.log" 2>&1; then
    echo "compile-check: anneal_ops.cpp does not compile ($label):"
    grep -E "error" "$work/gxx.log" | head -40
    broken=1
  elif grep -q "anneal_ops.cpp.*warning" "$work/gxx.log"; then
    echo "compile-check: anneal_ops.cpp compiles with warnings ($label):"
    grep -A3 "anneal_ops.cpp.*warning" "$work/gxx.log" | head -40
  fi
  if [[ $broken == 1 ]]; then failed=1; continue; fi
  # a launch that fails (every launch, without a GPU) must be reported, not pass in silence
  if ! "$nvcc" -std=c++17 -arch=sm_90 -I"$source_dir" "$root/tools/gpu/launch_probe.cpp" "$work/kernels.o" \
      -o "$work/launch_probe" > "$work/probe.log" 2>&1; then
    echo "compile-check: tools/gpu/launch_probe.cpp does not link against anneal_kernels.cu ($label):"
    grep -E "error|undefined" "$work/probe.log" | head -20
    failed=1
    continue
  fi
  if ! probe=$("$work/launch_probe" 2>&1); then
    echo "compile-check: a failed kernel launch is not reported ($label): $probe"
    failed=1
    continue
  fi
  echo "compile-check: $label compiles (anneal_kernels.cu with nvcc for sm_90, anneal_ops.cpp against $torch_include)"
  echo "compile-check: $label, a kernel launch that fails: $probe"
  # ptxas's report of each kernel: those that keep values in local memory (a stack frame or spills),
  # which a change to a kernel can add without a word from the compiler (NativeSourcesCompileIT
  # holds the default build to the kernels known to)
  echo "compile-check: $label, kernels with a stack frame or spills (ptxas): $(spilling_kernels "$work/nvcc.log")"
done
[[ $failed == 0 ]] || exit 2
