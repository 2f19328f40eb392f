#!/usr/bin/env bash
# Builds the operators once per set of build flags, tests each build against the float64 references
# and profiles the step with it, all in one call on the GPU machine (nothing to carry). Each
# argument is one variant's flags (build_kernels.py's ANNEAL_BUILD_FLAGS); "" is the default build.
#   LAYER_ROWS=8 bash tools/gpu/try-variants.sh "" "-DANNEAL_SOME_VARIANT=1" ...
# "@DIR" is another commit's operators and fused layer, copied into DIR by
# tools/gpu/variant-sources.sh REV DIR: built from DIR/native and profiled with its layer, not
# tested (this tree's test cases call this tree's operators).
# "+ARGS" profiles the build before it again with ARGS added (profile_layers.py's options, e.g.
# "+--branch-stream attention"; "+" alone repeats its profile): no build and no tests of its own, so
# one build's settings alternate within the call ("" "+--keep-ssd" "+" "+--keep-ssd").
# VARIANT_TESTS=0 profiles without the tests (when the default build was tested already).
# VARIANT_ONLY=OPERATORS tests every build after the first tested with only those operators' cases
# (test_kernels.py --only, comma-separated, checks without timings): a flag that changes the linear
# layers needs "linear,silu_mul_linear,lm_head,layer", not the whole suite again on each build.
# PROFILE_ARGS adds arguments to every profile (e.g. "--sdp flash").
# All builds run at once first (each is one nvcc process, about 35 s; the machine has 16 cores),
# then the tests and profiles run one after another, so that no two share the GPU.
# Results: $OUT/variants.tgz, holding {build,kernels,layers}-N.* for the N-th argument (packed: the
# device tool returns only a few files a call); the printed lines say which is which.
set -u
out=${OUT:?set OUT}/variants
mkdir -p "$out"
declare -a dirs sources_of layers_of pids extra_of base_of unbuilt label_of
n=0
built=0
for flags in "$@"; do
  n=$((n + 1))
  label_of[n]="'$flags'"
  if [[ $flags == +* ]]; then
    if ((built == 0)); then
      echo "== variant $n: '$flags' profiles the build before it, and there is none"
      dirs[n]=""
      continue
    fi
    echo "== variant $n: variant $built's build, profiled with '${flags#+}'"
    label_of[n]="variant $built's build ${flags#+}"
    [[ -n ${flags#+} ]] || label_of[n]="variant $built's build again"
    base_of[n]=$built extra_of[n]=${flags#+}
    continue
  fi
  built=$n
  dirs[n]=plugin-ssm-hybrid/target/native-variant$n
  sources="" layer=""
  if [[ $flags == @* ]]; then
    sources=${flags#@}
    if [[ ! -f $sources/native/anneal_ops.cpp || ! -f $sources/FalconH1FusedLayer.torchscript ]]; then
      echo "== variant $n: $sources holds no operator sources (tools/gpu/variant-sources.sh REV $sources makes them)"
      dirs[n]="" unbuilt[n]="has no sources"
      continue
    fi
    echo "== variant $n: the sources of $sources ($(cut -c1-12 "$sources/commit" 2>/dev/null))"
    layer=$sources/FalconH1FusedLayer.torchscript
    sources=$PWD/$sources/native
    flags=""
  else
    echo "== variant $n: flags '${flags}'"
  fi
  sources_of[n]=$sources
  layers_of[n]=$layer
  ANNEAL_SOURCE_DIR="$sources" ANNEAL_BUILD_FLAGS="$flags" python3 tools/gpu/build_kernels.py "${dirs[n]}" \
    > "$out/build-$n.log" 2>&1 &
  pids[n]=$!
done
for ((i = 1; i <= n; i++)); do
  [[ -n ${dirs[i]:-} ]] || continue   # a "+" variant builds nothing
  if ! wait "${pids[i]}"; then
    echo "== variant $i: the build failed"
    tail -5 "$out/build-$i.log"
    dirs[i]="" unbuilt[i]="failed to build"
  fi
done
for ((i = 1; i <= n; i++)); do
  b=${base_of[i]:-$i}   # the variant whose build this one profiles: itself, or the build before a "+"
  dir=${dirs[b]:-}
  [[ -n $dir || $b == "$i" ]] || echo "== variant $i: not profiled, variant $b ${unbuilt[b]}"
  [[ -n $dir ]] || continue
  echo "== variant $i"
  if [[ ${VARIANT_TESTS:-1} == 1 && -z ${sources_of[b]} && $b == "$i" ]]; then
    subset=()   # the first build tested runs every case
    [[ -z ${VARIANT_ONLY:-} || -z ${first_tested:-} ]] || subset=(--only "$VARIANT_ONLY" --checks-only)
    first_tested=${first_tested:-$i}
    python3 tools/gpu/test_kernels.py "$dir/anneal_ops.so" ${subset[@]+"${subset[@]}"} --out "$out/kernels-$i.json" \
      > "$out/kernels-$i.log" 2>&1
    grep -E "^FAIL|^time (causal_conv1d_silu|ssd_scan_skip)|all operators agree|failures" "$out/kernels-$i.log"
  fi
  layer=()
  [[ -z ${layers_of[b]} ]] || layer=(--source "${layers_of[b]}")
  # PROFILE_ARGS is split into words on purpose: several arguments in one variable.
  # shellcheck disable=SC2086
  timeout 120 python3 tools/gpu/profile_layers.py "$dir/anneal_ops.so" --rows "${LAYER_ROWS:-8}" --graphed \
    ${layer[@]+"${layer[@]}"} ${PROFILE_ARGS:-} ${extra_of[i]:-} --out "$out/layers-$i.json" > "$out/layers-$i.log" 2>&1
  grep -E "^== fused|graphed \(one|${VARIANT_KERNELS:-conv_(forward|backward)_kernel|ssd_combine_forward|ssd_mixing}" \
    "$out/layers-$i.log"
done
# the variants side by side: each one's graphed step (the figure that decides), or why there is none
echo "== summary: the graphed step of each variant (LAYER_ROWS=${LAYER_ROWS:-8} rows of 2048)"
for ((i = 1; i <= n; i++)); do
  graphed=$(grep -h "graphed (one CUDA graph" "$out/layers-$i.log" 2>/dev/null | sed 's/^ *graphed (one CUDA graph a step): //')
  # the eager profile's kernels and, where two streams overlap, the device's busy time
  kernels=$(sed -n 's/^== fused.*, \(kernels [0-9.]* ms in [0-9]* launches[^,]*\),.*/\1/p' "$out/layers-$i.log" 2>/dev/null)
  echo "   $i ${label_of[i]}: ${graphed:-no graphed step (see its lines above)}${kernels:+; eager profile: $kernels}"
done
tar czf "$OUT/variants.tgz" -C "$OUT" variants && rm -rf "$out"
