#!/usr/bin/env bash
# With conv-channels-per-thread.patch applied: builds the operators with 1 (today's kernels), 2 and 4
# conv channels a thread, tests each against the float64 references and profiles the step with each,
# all in one call on the GPU machine (nothing to carry):
#   LAYER_ROWS=8 bash tools/gpu/pending/try-conv-variants.sh      results in $OUT/conv-variants
# Keep the fastest that passes: set ANNEAL_CONV_CHANNELS's default in anneal_kernels.cu to it.
set -u
out=${OUT:?set OUT}/conv-variants
mkdir -p "$out"
for v in 1 2 4; do
  dir=plugin-ssm-hybrid/target/native-conv$v
  echo "== conv channels a thread: $v"
  if ! ANNEAL_NVCC_FLAGS=-DANNEAL_CONV_CHANNELS=$v python3 tools/gpu/build_kernels.py "$dir" > "$out/build-$v.log" 2>&1; then
    tail -5 "$out/build-$v.log"
    continue
  fi
  python3 tools/gpu/test_kernels.py "$dir/anneal_ops.so" --out "$out/kernels-conv$v.json" > "$out/kernels-conv$v.log" 2>&1
  grep -E "^FAIL|causal_conv1d_silu 8x|all operators agree|failures" "$out/kernels-conv$v.log"
  timeout 120 python3 tools/gpu/profile_layers.py "$dir/anneal_ops.so" --rows "${LAYER_ROWS:-8}" \
    --out "$out/layers-conv$v.json" > "$out/layers-conv$v.log" 2>&1
  grep -E "^== fused|conv_(forward|backward)_kernel" "$out/layers-conv$v.log"
done
