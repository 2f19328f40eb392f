#!/usr/bin/env bash
# The GPU benchmarks of issues 4 and 6, Anneal and transformers side by side in one run.
# On your machine:   mvn -B -q -DskipTests package && tools/gpu/pack.sh   (tools/gpu/pack.sh --peer for 'peer')
# On the GPU machine (device tool, carry [".gpu"]), from the repository root:
#                    bash tools/gpu/benchmarks.sh PART...   (table: the whole table of issue 12 in one call, from
#                    tools/gpu/pack.sh --table = build fused fused-kept peer-all at 8 2 16 32 64, 8 64 and 8 32 2 16
#                    rows, about 550 s on the H200 before the kept run at 8 was added, then the layers profile at 8 rows in
#                    what is left); kernels fused reference
#                    peer-all: its parts, kernels building and testing the operators, build only building them;
#                    fused-mup: the fused step with Falcon-H1's muP multipliers (examples/bench/falcon-h1-291m-mup-fused.conf);
#                    fused-kept: the fused step with the SSD scan's intermediates kept, not recomputed
#                    (examples/bench/falcon-h1-291m-fused-kept.conf, model.ssd-recompute = false; KEPT_ROWS, default 32 64);
#                    (loss: LOSS_BRANCH=attention|mamba adds a fused run with model.branch-stream set, against the same references)
#                    fused-branch: the fused step with each layer's attention on a second stream beside Mamba
#                    (examples/bench/falcon-h1-291m-fused-branch.conf, model.branch-stream = attention; BRANCH_ROWS, default 8 2);
#                    layers: the fused step's kernels by time;
#                    profile-fused: the JVM's own fused step (CUDA graphs) under libtorch's profiler at LAYER_ROWS,
#                    beside layers (what the JVM's step holds that profile_layers.py's does not);
#                    fwd train train-packed train-ndarray train-accumulate train-large profile torch roundtrip
#                    fixture-logits (every Falcon-H1 fixture's logits on the GPU against transformers')
#                    peer (= peer-all at 2 and 8 rows) real dpo-run; quick = fwd train torch roundtrip)
# Results (JSON and logs) go to $OUT/bench, packed into $OUT/bench-PARTS-HHMMSS.tgz.
# Settings: ROWS, MUP_ROWS, KEPT_ROWS, BRANCH_ROWS, EAGER_ROWS, REFERENCE_ROWS, PEER_ROWS, LAYER_ROWS (micro-batch rows of fused,
# fused-mup, fused-kept, fused-branch, fused-eager, reference, peer-all, layers), PEER_DIR (the peer kit, default .gpu/peer), PEER_CACHE_DIR (the peer's Triton cache, default /tmp/peer-triton-cache), PEER_TIMEOUT (seconds per peer run,
# default 300), DPO_TIMEOUT (seconds, default 560), CALL_SECONDS (what the device call has left when
# this script starts; table: 595 by default). Bound a part's time with these, not by wrapping
# this script in `timeout`: that stops the script but not the timed run it started (each run's own
# `timeout` is a process group of its own), which then holds the GPU's memory for the next call.
set -u
parts=" ${*:-quick} "
[[ $parts == *" quick "* ]] && parts="$parts fwd train torch roundtrip "
# 'table' is the operators built (their tests are the kernels part, in a call of their own: the
# table fills one call), Anneal's row at 2 to 64 x 2048, the kept SSD scan at 8 x 2048 (2.3% off the
# step at 32 x 2048 for about 265 MB a layer at 8 x 2048, which the peer's 22.1 GiB there leaves room
# for: issue_table.py weighs it for the 2x goal within that memory) and at 64 x 2048 (Anneal's best
# micro-batch: docs/benchmarks/2026-12-04-h200-ssd-kept) and the peer's row at 2 to 32 x 2048
# (48 x 2048 does not fit the call's 600 s: docs/benchmarks/2026-12-03-h200-table). The peer's
# goal rows come first, 8 x 2048 and its best, 32: 514 s of Anneal and peer runs took the call
# before the kept run at 64 was added (docs/benchmarks/2026-12-04-h200-table-diag-dcum), which adds 35;
# the one at 8 is not yet timed in a table call.
if [[ $parts == *" table "* ]]; then
  parts="$parts build fused fused-kept peer-all "
  ROWS=${ROWS:-8 2 16 32 64} KEPT_ROWS=${KEPT_ROWS:-8 64} PEER_ROWS=${PEER_ROWS:-8 32 2 16} PEER_TIMEOUT=${PEER_TIMEOUT:-150}
fi
# 'peer' is peer-all at 2 and 8 x 2048 (the first sessions' comparison)
[[ $parts == *" peer "* ]] && parts="$parts peer-all " && PEER_ROWS=${PEER_ROWS:-2 8}
# 'loss' runs the fused path too: the operators are built first (in seconds when current); a fresh
# pack holds none, and each fused run then stopped at start (docs/benchmarks/2026-12-04-h200-ssd-kept)
[[ $parts == *" loss "* ]] && parts="$parts build "
has() { [[ $parts == *" $1 "* ]]; }
# the loss part reads the bundled data through plugin datamix, which pack.sh --table leaves out
if has loss && [[ -d .gpu/app ]] && [[ ! -d .gpu/app/plugins/datamix ]]; then
  echo "benchmarks.sh: the loss part needs plugin datamix, which this kit lacks (tools/gpu/pack.sh --table leaves it out); pack with tools/gpu/pack.sh" >&2
  exit 2
fi
root=$(pwd)
out=${OUT:?set OUT}/bench
mkdir -p "$out"
fixture=$root/plugin-ssm-hybrid/src/test/resources/fixtures/falcon-h1/mup-untied
step() { echo "== $(date +%T) $1"; }
# The device tool stops a command at 600 s, and of what a stopped call wrote under $OUT only a few
# files come back: a table call that ran past it lost the kept run and the peer's rows
# (docs/benchmarks/2026-12-04-h200-weight-recast). With CALL_SECONDS each run is bounded by what is
# left of the call, less 10 s for packing the results, and one is not started with under 15 s left;
# a skipped or stopped run is named in skipped.txt. When other work comes first in the same call,
# give what it leaves: CALL_SECONDS=$((600 - its seconds)).
call_seconds=${CALL_SECONDS:-}
[[ -z $call_seconds && $parts == *" table "* ]] && call_seconds=595
limit() { # a run's own bound in seconds, or what the call has left when that is less
  if [[ -z $call_seconds ]]; then echo "$1"; return; fi
  local left=$(( call_seconds - SECONDS - 10 ))
  if (( left < $1 )); then echo "$left"; else echo "$1"; fi
}
exec 3>&1   # bounded's own lines reach the console while a run's output goes to its log
bounded() { # label, the run's own bound in seconds, the command; 1 when skipped
  local left; left=$(limit 1000000)
  if (( left < 15 )); then
    echo "skipped: $1 (${left} s of CALL_SECONDS=$call_seconds left after $SECONDS s)" | tee -a "$out/skipped.txt" >&3
    return 1
  fi
  timeout "$(limit "$2")" "${@:3}"
  (( $? == 124 )) && echo "stopped: $1 at its bound, after $SECONDS s of the script (CALL_SECONDS=${call_seconds:-none})" \
    | tee -a "$out/skipped.txt" >&3
  return 0
}
# The fused Anneal runs load the operators built here from this tree's sources, which the packed
# plugin refuses when it carries others (a distribution packed before the last change to them):
# stop now, not after every run has started a JVM and failed (docs/benchmarks/2026-12-03-h200-diag-dcum)
if [[ -d .gpu/app ]] && { has fused || has fused-mup || has fused-kept || has fused-eager || has loss || has profile-fused; }; then
  python3 tools/gpu/check_operator_sources.py .gpu/app || exit 2
fi
# Sources the peer kit's setup.sh and says whether the fast path imports. setup.sh keeps what an
# earlier call left in /tmp/peer-kernels; a copy cut short there (an empty .so) would fail every
# import, so on failure the folder is removed and the setup tried once more. Without the fast path
# the peer's script would time the slow path and hold the GPU's memory: its runs are skipped.
peer_ready() {
  source "$1/setup.sh" > "$out/peer-setup.log" 2>&1
  if ! grep -q "peer kernels ready" "$out/peer-setup.log"; then
    rm -rf /tmp/peer-kernels
    source "$1/setup.sh" >> "$out/peer-setup.log" 2>&1
  fi
  tail -1 "$out/peer-setup.log"
  grep -q "peer kernels ready" "$out/peer-setup.log" || { echo "peer: the fast path does not import; runs skipped"; return 1; }
}

# The peer's Triton kernels (mamba_ssm's SSD, compiled and autotuned on first use: about 130 s of a
# fresh machine's first peer run, ../shared/device/peer/README.md, which a short call's bound cut
# off, docs/benchmarks/2026-12-05-h100-experiments-one-by-one) kept from call to call in Triton's
# own cache: the kit's triton-cache.tgz (tools/gpu/pack.sh copies tools/gpu/cache/peer-triton-cache.tgz
# there) fills TRITON_CACHE_DIR before the runs; a cache the runs grew comes back in the results as
# peer-triton-cache.tgz, to keep as tools/gpu/cache/peer-triton-cache.tgz. Entries of another
# Triton, torch or GPU do not match and are compiled again, as without the cache. With
# TRITON_CACHE_AUTOTUNING=1 Triton keeps the autotuner's choices there too, so a cached kernel skips
# its timing runs as well; a choice made on an H100 may then serve an H200 (both sm_90).
peer_cache=${PEER_CACHE_DIR:-/tmp/peer-triton-cache}
peer_cache_in() {
  export TRITON_CACHE_DIR=$peer_cache TRITON_CACHE_AUTOTUNING=1
  mkdir -p "$peer_cache"
  if [[ -f $1/triton-cache.tgz ]] && tar xzf "$1/triton-cache.tgz" -C "$peer_cache"; then
    echo "peer: Triton's kernels from the kit's cache ($(find "$peer_cache" -type f | wc -l) files)"
  else
    echo "peer: no Triton cache in the kit: its kernels compile on first use (about 130 s on a fresh machine)"
  fi
  peer_cache_files=$(find "$peer_cache" -type f | wc -l)
}
peer_cache_out() {
  local now
  now=$(find "$peer_cache" -type f | wc -l)
  ((now > peer_cache_files)) || return 0
  tar czf "$out/peer-triton-cache.tgz" -C "$peer_cache" . \
    && echo "peer: Triton's cache grew from $peer_cache_files to $now files: peer-triton-cache.tgz in the results" \
      "($(du -h "$out/peer-triton-cache.tgz" | cut -f1)); keep it as tools/gpu/cache/peer-triton-cache.tgz for tools/gpu/pack.sh"
}

if has build || has kernels; then
  step "fused operators: build against this torch"
  bash tools/gpu/build-kernels.sh > "$out/kernels-build.log" 2>&1; tail -2 "$out/kernels-build.log"
fi
if has kernels; then
  step "fused operators: test against the float64 references"
  python3 tools/gpu/test_kernels.py plugin-ssm-hybrid/target/native/anneal_ops.so --out "$out/kernels.json" \
    > "$out/kernels.log" 2>&1; grep -v "^ok " "$out/kernels.log" | tail -12
fi
bench_step() { # label config rows [extra options]; 3 warm-up steps: 2 eager, then the CUDA graphs' capture
  bounded "Anneal $1 ${3}x2048" 240 bash .gpu/run bin/anneal bench-train "$2" --rows "$3" --sequence-length 2048 \
    --warmup 3 --steps 8 "${@:4}" --out "$out/anneal-$1-${3}x2048.json" > "$out/anneal-$1-${3}x2048.log" 2>&1 || return 0
  grep -E "kernels:|graphs:|tokens/s|allocator:|rror" "$out/anneal-$1-${3}x2048.log" | tail -5
}
if has fused; then
  for rows in ${ROWS:-2 8 16 32}; do
    step "Anneal, fused operators, each step replayed as CUDA graphs, $rows x 2048"
    bench_step fused examples/bench/falcon-h1-291m-fused.conf "$rows"
  done
fi
# where the fused step's time goes, kernel by kernel (the fused layer's TorchScript driven from
# Python, the same operator library; needs the kernels part or build-kernels.sh first); rows, then
# profile_layers.py's options
layers_step() {
  step "the fused step's kernels by time, $1 x 2048 (tools/gpu/profile_layers.py)"
  bounded "the profile at $1 x 2048" 120 python3 tools/gpu/profile_layers.py plugin-ssm-hybrid/target/native/anneal_ops.so \
    --rows "$1" --graphed "${@:2}" --out "$out/layers-${1}x2048.json" > "$out/layers-${1}x2048.log" 2>&1 || return 0
  grep -A8 "^== fused" "$out/layers-${1}x2048.log" || tail -5 "$out/layers-${1}x2048.log"
  grep "graphed (one CUDA graph" "$out/layers-${1}x2048.log"
}
if has layers; then
  for rows in ${LAYER_ROWS:-8}; do layers_step "$rows" --shapes; done
fi
if has fused-mup; then
  # the same step with Falcon-H1's muP multipliers (what they cost a real recipe's model)
  for rows in ${MUP_ROWS:-8}; do
    step "Anneal, fused operators, Falcon-H1's muP multipliers, CUDA graphs, $rows x 2048"
    bench_step fused-mup examples/bench/falcon-h1-291m-mup-fused.conf "$rows"
  done
fi
if has fused-kept; then
  # the SSD scan keeping its intermediates for the backward: a large micro-batch's setting (memory
  # for time; anneal_ops.cpp, ssd_scan_any)
  for rows in ${KEPT_ROWS:-32 64}; do
    step "Anneal, fused operators, the SSD scan's intermediates kept, CUDA graphs, $rows x 2048"
    bench_step fused-kept examples/bench/falcon-h1-291m-fused-kept.conf "$rows"
  done
fi
if has fused-branch; then
  # each layer's two mixers overlapping on two streams (anneal_ops.cpp, branch_*)
  for rows in ${BRANCH_ROWS:-8 2}; do
    step "Anneal, fused operators, attention beside Mamba on two streams, CUDA graphs, $rows x 2048"
    bench_step fused-branch examples/bench/falcon-h1-291m-fused-branch.conf "$rows"
  done
fi
if has fused-eager; then
  for rows in ${EAGER_ROWS:-2 8}; do
    step "Anneal, fused operators, launched eagerly (no CUDA graphs), $rows x 2048"
    bench_step fused-eager examples/bench/falcon-h1-291m-fused.conf "$rows" --cuda-graphs off
  done
fi
if has reference; then
  for rows in ${REFERENCE_ROWS:-2 8}; do
    step "Anneal, TorchScript reference layers, $rows x 2048"
    bench_step reference examples/bench/falcon-h1-291m-reference.conf "$rows"
  done
fi
if has loss; then
  # 300 steps on the bundled data: fused, fused with the SSD scan's intermediates kept, reference,
  # and the reference with another seed (its spread), the four at once on the one GPU (each needs
  # under 20 GiB); run-dir resolves against the working directory (.gpu/app)
  # LOSS_BRANCH=attention (or mamba) adds a fifth run, fused with model.branch-stream set to it,
  # compared with the same two reference runs
  step "Anneal, 300 steps of the 291M model on the bundled data: fused and fused-kept seed 1, reference seeds 1 and 7${LOSS_BRANCH:+, fused with $LOSS_BRANCH on a second stream}, in parallel"
  bash .gpu/run java -version > /dev/null 2>&1   # unpack the Java runtime once, before the runs race to
  runs=("fused 1 fused true none" "fused-kept 1 fused false none" "reference 1 reference true none"
        "reference 7 reference true none")
  candidates=("fused-1 loss-comparison" "fused-kept-1 loss-comparison-kept")
  if [[ -n ${LOSS_BRANCH:-} ]]; then
    runs+=("fused-branch 1 fused true $LOSS_BRANCH")
    candidates+=("fused-branch-1 loss-comparison-branch")
  fi
  for run in "${runs[@]}"; do
    set -- $run
    bounded "loss $1 seed $2" 300 bash .gpu/run bin/anneal run examples/bench/falcon-h1-291m-loss.conf \
      model.kernels=$3 model.ssd-recompute=$4 model.branch-stream=$5 pipeline.seed=$2 \
      pipeline.run-dir=runs/loss-$1-$2 > "$out/loss-$1-$2.log" 2>&1 &
  done
  wait
  for run in "${runs[@]}"; do
    set -- $run
    grep -E "kernels:|graphs:|results in" "$out/loss-$1-$2.log" | head -3
    cp .gpu/app/runs/loss-$1-$2/*/metrics.jsonl "$out/loss-$1-$2.metrics.jsonl"
  done
  for candidate in "${candidates[@]}"; do
    set -- $candidate
    python3 tools/bench/compare_losses.py --candidate "$out/loss-$1.metrics.jsonl" \
      --reference "$out/loss-reference-1.metrics.jsonl" --reference-other "$out/loss-reference-7.metrics.jsonl" \
      --out "$out/$2.json" | tail -25
  done
fi
if has peer-all; then
  step "transformers fast path (mamba_ssm + causal_conv1d kernels), every micro-batch"
  # the peer's kit: .gpu/peer from tools/gpu/pack.sh --table (or --peer), or a copy of
  # ../shared/device/peer in PEER_DIR
  peer_cache_in "${PEER_DIR:-.gpu/peer}"
  peer_ready "${PEER_DIR:-.gpu/peer}" && for rows in ${PEER_ROWS:-2 8 16 32}; do
    bounded "peer ${rows}x2048" "${PEER_TIMEOUT:-300}" python3 tools/bench/transformers_falcon_h1_step.py --batch "$rows" \
      --seq 2048 --label transformers-fast --autocast bfloat16 --weights bfloat16 --out "$out/hf-fast-${rows}x2048.json" \
      >> "$out/hf-fast.log" 2>&1 || continue
    tail -2 "$out/hf-fast.log"
  done
  peer_cache_out
fi
if has fwd; then
  step "Anneal forward+backward, 2 x 2048, float16 (HybridBenchmark)"
  timeout 240 bash .gpu/run java -cp 'lib/*:plugins/ssm-hybrid/*' io.anneal.hybrid.bench.HybridBenchmark \
    --out "$out/anneal-fwd-bwd.json" > "$out/anneal-fwd-bwd.log" 2>&1; tail -5 "$out/anneal-fwd-bwd.log"
fi
if has train; then
  step "Anneal full training step, 2 x 2048 = 4096-token micro-batch, float16 (bench-train)"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m.conf --rows 2 --sequence-length 2048 \
    --out "$out/anneal-step.json" > "$out/anneal-step.log" 2>&1; tail -12 "$out/anneal-step.log"
fi
if has train-packed; then
  step "Anneal full training step, 2 x 2048, 4 packed documents per row (document masks in every layer)"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m.conf --rows 2 --sequence-length 2048 \
    --documents-per-row 4 --out "$out/anneal-step-packed.json" > "$out/anneal-step-packed.log" 2>&1; tail -3 "$out/anneal-step-packed.log"
fi
if has train-ndarray; then
  step "Anneal full training step, 2 x 2048, DJL-operation layers (the reference implementation)"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m-ndarray.conf --rows 2 --sequence-length 2048 \
    --out "$out/anneal-step-ndarray.json" > "$out/anneal-step-ndarray.log" 2>&1; tail -3 "$out/anneal-step-ndarray.log"
fi
if has train-accumulate; then
  step "Anneal training step of 8 accumulated 2 x 2048 micro-batches (32,768 tokens per optimizer step)"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m.conf --rows 2 --sequence-length 2048 \
    --micro-batches 8 --warmup 2 --steps 4 --out "$out/anneal-step-accumulate.json" > "$out/anneal-step-accumulate.log" 2>&1
  tail -3 "$out/anneal-step-accumulate.log"
fi
if has train-large; then
  step "Anneal full training step, 8 x 2048 = 16,384-token micro-batch (the fast peer's best size)"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m.conf --rows 8 --sequence-length 2048 \
    --warmup 2 --steps 6 --out "$out/anneal-step-8x2048.json" > "$out/anneal-step-8x2048.log" 2>&1; tail -3 "$out/anneal-step-8x2048.log"
fi
if has profile; then
  step "Anneal full training step under libtorch's profiler (2 steps), summarised"
  timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m.conf --rows 2 --sequence-length 2048 \
    --steps 3 --profile "$out/trace.json" --out "$out/anneal-step-profiled.json" > "$out/profile.log" 2>&1; tail -3 "$out/profile.log"
  python3 tools/bench/summarize_trace.py "$out/trace.json" > "$out/profile-summary.txt" 2>&1; head -60 "$out/profile-summary.txt"
  gzip -f "$out/trace.json"
fi
if has profile-fused; then
  # bench-train profiles two more steps after the timed ones, the graphs' replays included
  for rows in ${LAYER_ROWS:-8}; do
    step "Anneal's fused step, CUDA graphs, under libtorch's profiler, $rows x 2048"
    timeout 240 bash .gpu/run bin/anneal bench-train examples/bench/falcon-h1-291m-fused.conf --rows "$rows" \
      --sequence-length 2048 --warmup 3 --steps 4 --profile "$out/trace-fused-${rows}x2048.json" \
      --out "$out/anneal-fused-profiled-${rows}x2048.json" > "$out/profile-fused-${rows}x2048.log" 2>&1
    tail -3 "$out/profile-fused-${rows}x2048.log"
    python3 tools/bench/summarize_trace.py "$out/trace-fused-${rows}x2048.json" > "$out/profile-fused-${rows}x2048-summary.txt" 2>&1
    head -40 "$out/profile-fused-${rows}x2048-summary.txt"
    gzip -f "$out/trace-fused-${rows}x2048.json"
  done
fi
if has torch; then
  step "transformers torch path, 2 x 2048"
  timeout 200 python3 tools/bench/transformers_falcon_h1_step.py --batch 2 --seq 2048 --steps 5 --label transformers-torch \
    --out "$out/hf-torch.json" > "$out/hf-torch.log" 2>&1; tail -3 "$out/hf-torch.log"
fi
if has fixture-logits; then
  # every Falcon-H1 fixture (muP multipliers, groups, the gated norm, biases, tied embeddings, chunk 32)
  # through `anneal logits --device gpu`: the fused layers when the operators load, in float32,
  # against transformers' float32 logits that the fixture holds
  step "the Falcon-H1 fixtures' logits on the GPU against transformers' (tools/gpu/compare_logits.py)"
  : > "$out/fixture-logits.jsonl"
  for dir in "$root"/plugin-ssm-hybrid/src/test/resources/fixtures/falcon-h1/*/; do
    name=$(basename "$dir")
    timeout 120 bash .gpu/run bin/anneal logits --checkpoint "$dir" --input "$dir/input.json" \
      --output "$out/logits-$name.f32" --device gpu --kernels fused > "$out/logits-$name.log" 2>&1
    python3 tools/gpu/compare_logits.py "$out/logits-$name.f32" "$dir" --log "$out/logits-$name.log" \
      >> "$out/fixture-logits.jsonl"
    rm -f "$out/logits-$name.f32"
  done
  cat "$out/fixture-logits.jsonl"
fi
if has roundtrip; then
  step "checkpoint written by Anneal, loaded by transformers"
  timeout 120 bash .gpu/run bin/anneal logits --checkpoint "$fixture" --input "$fixture/input.json" \
    --output "$out/anneal.f32" --save "$out/written" > "$out/roundtrip.log" 2>&1
  python3 tools/fixtures/check_anneal_checkpoint.py --checkpoint "$out/written" --input "$fixture/input.json" \
    --anneal-logits "$out/anneal.f32" --out "$out/roundtrip.json" >> "$out/roundtrip.log" 2>&1; tail -3 "$out/roundtrip.log"
  rm -rf "$out/written" "$out/anneal.f32"
fi


if has dpo-run; then
  # issue 13 item 11: SFT then DPO of the small model, held-out rewards at every epoch
  step "a real SFT-then-DPO run on the GPU (examples/gpu-small-dpo.conf)"
  timeout ${DPO_TIMEOUT:-560} bash .gpu/run bin/anneal run examples/gpu-small-dpo.conf > "$out/dpo-run.log" 2>&1
  echo "exit $?" >> "$out/dpo-run.log"
  for stage in 1-sft 2-dpo; do
    cp .gpu/app/runs/gpu-small-dpo/$stage/metrics.jsonl "$out/dpo-run-$stage.metrics.jsonl" 2>/dev/null
  done
  grep -E "eval_|dpo: step|rewards|exit" "$out/dpo-run.log" | tail -15
fi
if has real; then
  step "a real SFT run on the GPU, interrupted and resumed"
  timeout -s INT 150 bash .gpu/run bin/anneal run examples/gpu-small-sft.conf > "$out/real-run.log" 2>&1
  echo "first part exit $?" >> "$out/real-run.log"
  timeout -s INT 110 bash .gpu/run bin/anneal run examples/gpu-small-sft.conf --resume >> "$out/real-run.log" 2>&1
  echo "resumed part exit $?" >> "$out/real-run.log"
  cp .gpu/app/runs/gpu-small-sft/1-sft/metrics.jsonl "$out/metrics.jsonl" 2>/dev/null
  # no plot here: the GPU machine's JRE lacks libharfbuzz for fonts; on your machine:
  #   anneal plot metrics.jsonl --out loss.png --metrics loss,eval_loss
  grep -v "^source " "$out/real-run.log" | tail -15
fi
if has table; then
  # the profile of the table's own kernels at 8 x 2048, with what the call has left (about 15 s of
  # the 55 that the table's runs leave: docs/benchmarks/2026-12-05-h200-float8-default took 541 s)
  has layers || layers_step 8
  step "the table of issue 12 and its goals (tools/bench/issue_table.py, also in table.md)"
  python3 tools/bench/issue_table.py "$out" --out "$out/table.md"
  [[ -f $out/skipped.txt ]] && cat "$out/skipped.txt"
fi
# a name per invocation: several invocations in one call keep every archive (the same parts twice
# used to overwrite the first one's results)
cd "$OUT" && archive="bench-$(echo $parts | tr " " "-")-$(date +%H%M%S).tgz" && tar czf "$archive" bench && rm -rf bench
