#!/usr/bin/env bash
# Exports what tools/onnx/check_onnx.py and compare_transformers.py check, into .onnx-check/ (git-ignored,
# about 10 MB): the six transformers fixtures of plugin-ssm-hybrid and a tiny-sft model trained for
# 10 steps (with its tokenizer files, so transformers can load it and render the chat template).
# Run here after `mvn -B -q -DskipTests install` (the assembled distribution and the onnx plugin's tree).
#
#   bash tools/onnx/export_for_check.sh
#   # then where Python has onnx, onnxruntime, torch and transformers (the GPU machine, carrying .onnx-check):
#   python3 tools/onnx/check_onnx.py .onnx-check > check.json
#   python3 tools/onnx/compare_transformers.py --checkpoint .onnx-check/tiny-sft-final --onnx .onnx-check/tiny-sft-onnx --threads 2 > compare.json
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=0.1.0-SNAPSHOT
anneal="$root/distribution/target/anneal-$version/bin/anneal"
export ANNEAL_PLUGINS="$root/distribution/target/anneal-plugin-onnx-$version/plugins"
out="$root/.onnx-check"
rm -rf "$out" && mkdir -p "$out"
fixtures="$root/plugin-ssm-hybrid/src/test/resources/fixtures/falcon-h1"
for c in untied-defaults long-chunk32 groups2-tied-mup rmsnorm-gate-groups2 mup-untied rmsnorm-before-gate-biases; do
  "$anneal" export onnx --checkpoint "$fixtures/$c" --out "$out/fixture-$c"
done
"$anneal" run "$root/examples/tiny-sft.conf" --quiet --set pipeline.run-dir="$out/run" --set 'stages[0].token-budget="40960"' >/dev/null
cp -r "$out/run/1-sft/final" "$out/tiny-sft-final" && rm -rf "$out/run"
"$anneal" export onnx --checkpoint "$out/tiny-sft-final" --out "$out/tiny-sft-onnx"
du -sh "$out"
