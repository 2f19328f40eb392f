#!/usr/bin/env bash
# Wall time of the README's main job (examples/tiny-sft.conf, the full 600K-token run) through the
# assembled bin/anneal, alone and beside a competing busy process (one `yes > /dev/null` per CPU this
# process may use), with the defaults (pipeline.threads = auto for libtorch and data rendering,
# OMP_WAIT_POLICY=PASSIVE from bin/anneal). Writes one JSON object per run to OUT (JSON lines).
#
#   bash tools/bench/tiny-sft-contention.sh docs/benchmarks/2026-12-02-cpu-tiny-sft/runs.jsonl [ROUNDS]
# ANNEAL_HOME=DIR takes the distribution from DIR (a copy, so that a build can go on meanwhile).
set -euo pipefail
out=${1:?usage: tiny-sft-contention.sh OUT.jsonl [ROUNDS]}
rounds=${2:-2}
root=$(cd "$(dirname "$0")/../.." && pwd)
anneal="${ANNEAL_HOME:-$root/distribution/target/anneal-0.1.0-SNAPSHOT}/bin/anneal"
cpus=$(nproc)
mkdir -p "$(dirname "$out")"
: > "$out"
for round in $(seq 1 "$rounds"); do
  for condition in alone busy; do
    run_dir=$(mktemp -d)
    busy_pids=()
    if [ "$condition" = busy ]; then
      for _ in $(seq 1 "$cpus"); do yes > /dev/null & busy_pids+=($!); done
    fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    "$anneal" run "$root/examples/tiny-sft.conf" --quiet --set "pipeline.run-dir=\"$run_dir\"" > "$run_dir.log" 2>&1
    end=$(date +%s.%N)
    for pid in "${busy_pids[@]}"; do kill "$pid"; done
    wait 2>/dev/null || true
    threads=$(grep -m1 '^threads: ' "$run_dir.log" | sed 's/"/\\"/g')
    loss=$(tail -n1 "$run_dir/1-sft/metrics.jsonl" | sed 's/.*"loss":\([0-9.eE+-]*\).*/\1/')
    steps=$(wc -l < "$run_dir/1-sft/metrics.jsonl")
    printf '{"round":%d,"condition":"%s","busy_processes":%d,"cpus":%d,"wall_seconds":%.1f,"load_average_1m_at_start":%s,"steps":%d,"final_loss":%s,"threads_line":"%s"}\n' \
      "$round" "$condition" "$([ "$condition" = busy ] && echo "$cpus" || echo 0)" "$cpus" "$(echo "$end - $start" | bc)" \
      "$load" "$steps" "$loss" "$threads" | tee -a "$out"
    rm -rf "$run_dir" "$run_dir.log"
  done
done
