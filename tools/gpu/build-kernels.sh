#!/usr/bin/env bash
# One command to build the fused GPU operators on a GPU machine, against the torch that DJL loads
# there (on the project's GPU machine: the pip torch 2.11 / CUDA 13 that ../shared/device/run
# points DJL at). Puts anneal_ops.so and anneal_ops.json into OUT_DIR (default
# plugin-ssm-hybrid/target/native) and, when an assembled distribution is at .gpu/app, into its
# plugins/ssm-hybrid/native/ too, where the hybrid plugin looks at start.
#   bash tools/gpu/build-kernels.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-plugin-ssm-hybrid/target/native}
python3 tools/gpu/build_kernels.py "$out"
if [ -d .gpu/app/plugins/ssm-hybrid ]; then
  mkdir -p .gpu/app/plugins/ssm-hybrid/native
  cp "$out/anneal_ops.so" "$out/anneal_ops.json" .gpu/app/plugins/ssm-hybrid/native/
fi
