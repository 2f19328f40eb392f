#!/usr/bin/env bash
# Builds the operators once per set of build flags, tests each build against the float64 references
# and profiles the step with it, all in one call on the GPU machine (nothing to carry). Each
# argument is one variant's flags (build_kernels.py's ANNEAL_BUILD_FLAGS); "" is the default build.
#   LAYER_ROWS=8 bash tools/gpu/try-variants.sh "" "-DANNEAL_SOME_VARIANT=1" ...
# "@DIR" is another commit's operators and fused layer, copied into DIR by
# tools/gpu/variant-sources.sh REV DIR: built from DIR/native and profiled with its layer, not
# tested (this tree's test cases call this tree's operators).
# VARIANT_TESTS=0 profiles without the tests (when the default build was tested already).
# Results: $OUT/variants.tgz, holding {build,kernels,layers}-N.* for the N-th argument (packed: the
# device tool returns only a few files a call); the printed lines say which is which.
set -u
out=${OUT:?set OUT}/variants
mkdir -p "$out"
n=0
for flags in "$@"; do
  n=$((n + 1))
  dir=plugin-ssm-hybrid/target/native-variant$n
  sources="" layer=()
  if [[ $flags == @* ]]; then
    sources=${flags#@}
    if [[ ! -f $sources/native/anneal_ops.cpp || ! -f $sources/FalconH1FusedLayer.torchscript ]]; then
      echo "== variant $n: $sources holds no operator sources (tools/gpu/variant-sources.sh REV $sources makes them)"
      continue
    fi
    echo "== variant $n: the sources of $sources ($(cut -c1-12 "$sources/commit" 2>/dev/null))"
    layer=(--source "$sources/FalconH1FusedLayer.torchscript")
    sources=$PWD/$sources/native
    flags=""
  else
    echo "== variant $n: flags '${flags}'"
  fi
  if ! ANNEAL_SOURCE_DIR="$sources" ANNEAL_BUILD_FLAGS="$flags" python3 tools/gpu/build_kernels.py "$dir" \
      > "$out/build-$n.log" 2>&1; then
    tail -5 "$out/build-$n.log"
    continue
  fi
  if [[ ${VARIANT_TESTS:-1} == 1 && -z $sources ]]; then
    python3 tools/gpu/test_kernels.py "$dir/anneal_ops.so" --out "$out/kernels-$n.json" > "$out/kernels-$n.log" 2>&1
    grep -E "^FAIL|^time (causal_conv1d_silu|ssd_scan_skip)|all operators agree|failures" "$out/kernels-$n.log"
  fi
  timeout 120 python3 tools/gpu/profile_layers.py "$dir/anneal_ops.so" --rows "${LAYER_ROWS:-8}" --graphed \
    ${layer[@]+"${layer[@]}"} --out "$out/layers-$n.json" > "$out/layers-$n.log" 2>&1
  grep -E "^== fused|graphed \(one|${VARIANT_KERNELS:-conv_(forward|backward)_kernel|ssd_combine_forward|ssd_mixing}" "$out/layers-$n.log"
done
tar czf "$OUT/variants.tgz" -C "$OUT" variants && rm -rf "$out"
