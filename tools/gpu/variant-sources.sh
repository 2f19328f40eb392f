#!/usr/bin/env bash
# Copies the fused operators' sources and the fused layer's TorchScript of commit REV into DIR (a
# folder under the repository root, left untracked: the device tool carries it), so that
# tools/gpu/try-variants.sh "@DIR" builds and profiles that commit's operators in the same call as the
# working tree's. Flags alone (-D...) compare variants of one source; this compares two commits whose
# operators or layer differ (a changed signature, a new operator), on one machine at one time: runs on
# different calls land on machines whose rates differ by a few percent.
#   tools/gpu/variant-sources.sh main variant-main     # then: bash tools/gpu/try-variants.sh "" "@variant-main"
# Remove DIR after the call (rm -rf DIR).
set -euo pipefail
usage="usage: tools/gpu/variant-sources.sh REV DIR"
rev=${1:?$usage}
dir=${2:?$usage}
root=$(git rev-parse --show-toplevel)
cd "$root"
if ! commit=$(git rev-parse --verify --quiet "$rev^{commit}"); then
  echo "variant-sources: '$rev' names no commit here" >&2
  exit 2
fi
mkdir -p "$dir/native"
for f in anneal_kernels.cu anneal_kernels.h anneal_ops.cpp; do
  git show "$commit:plugin-ssm-hybrid/src/main/native/$f" > "$dir/native/$f"
done
git show "$commit:plugin-ssm-hybrid/src/main/resources/io/anneal/hybrid/model/FalconH1FusedLayer.torchscript" \
  > "$dir/FalconH1FusedLayer.torchscript"
echo "$commit" > "$dir/commit"
echo "$dir: the operators and the fused layer of $(git log -1 --format='%h %s' "$commit" | cut -c1-100)"
