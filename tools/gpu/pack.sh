#!/usr/bin/env bash
# Pack the assembled distribution for the GPU machine (../shared/device/pack.sh), with what
# Anneal needs there: a Java runtime with the JDK modules its libraries require (java.desktop for
# plots and commons-lang3, java.compiler for errorprone's annotations, ...), and the tokenizers jar
# cut to its linux-x86_64 native library so the working tree stays under the 64 MiB transfer limit.
#   tools/gpu/pack.sh            the distribution (for: benchmarks.sh fwd train torch roundtrip real)
#   tools/gpu/pack.sh --peer     only transformers' fast-path kernels (for: benchmarks.sh peer)
#   tools/gpu/pack.sh --table    the benchmark kit and the peer's together, for the whole table of issue 12 in one call
#                                (benchmarks.sh table): only the model's plugins (bench-train reads the model and
#                                optimizer blocks only), examples/bench, JNA's linux-x86-64 library; it says whether the
#                                kit and the tracked files fit the 64 MiB transfer, and what to move aside if not
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
dist=$(ls -d distribution/target/anneal-*/ | head -1)
if [ "${1:-}" != --peer ]; then
  # a distribution assembled before the last change to the operators' sources fails every fused run there
  python3 tools/gpu/check_operator_sources.py "$dist" || exit 2
fi
mkdir -p .git/info
export JLINK_MODULES=java.base,java.desktop,java.management,java.compiler,java.logging,jdk.unsupported,java.xml,java.naming,jdk.zipfs,java.sql,java.scripting,java.instrument,jdk.jfr
peer_cache=tools/gpu/cache/peer-triton-cache.tgz
if [ "${1:-}" = --peer ]; then
  PEER=1 ../shared/device/pack.sh "$dist"
  rm -rf .gpu/app .gpu/jre.tar.xz .gpu/torch   # the peer run needs Python only
else
  [ "${1:-}" = --table ] && export PEER=1
  ../shared/device/pack.sh "$dist"
fi
# the peer's Triton kernels compiled in an earlier call (benchmarks.sh returns peer-triton-cache.tgz;
# kept in tools/gpu/cache/, which git ignores), so that its first run does not compile them again
if [ -d .gpu/peer ] && [ -f "$peer_cache" ]; then
  cp "$peer_cache" .gpu/peer/triton-cache.tgz
  echo "tools/gpu/pack.sh: the peer's Triton cache ($(du -h "$peer_cache" | cut -f1)) in .gpu/peer"
fi
if [ "${1:-}" != --peer ]; then
  if [ "${1:-}" = --table ]; then
    rm -rf .gpu/app/plugins/datamix .gpu/app/plugins/onnx .gpu/app/plugins/dpo .gpu/app/lib/pdfbox-*.jar \
      .gpu/app/lib/fontbox-*.jar
    find .gpu/app/examples -mindepth 1 -maxdepth 1 ! -name bench -exec rm -rf {} +
  fi
  # native libraries the GPU machine never loads, cut from their jars: the tokenizers' for other
  # platforms; with --table also JNA's for other platforms and every prebuilt DJL JNI (.gpu/run puts
  # the one built for that machine's libtorch on PYTORCH_LIBRARY_PATH, where DJL looks before the jar)
  python3 - "${1:-}" <<'PY'
import glob, os, re, sys, zipfile
def cut(pattern, unused):
    for jar in glob.glob(pattern):
        tmp = jar + '.tmp'
        with zipfile.ZipFile(jar) as src, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as dst:
            for entry in src.infolist():
                if not unused(entry.filename):
                    dst.writestr(entry, src.read(entry.filename))
        os.replace(tmp, jar)
cut('.gpu/app/plugins/datamix/tokenizers-*.jar', lambda n: n.startswith('native/lib/') and 'linux-x86_64' not in n
    and not n.endswith(('.properties', '/')))
if sys.argv[1] == '--table':
    cut('.gpu/app/lib/jna-*.jar', lambda n: re.fullmatch(r'com/sun/jna/[^/]+/[^/]+', n) is not None
        and not n.endswith('.class') and '/linux-x86-64/' not in n)
    cut('.gpu/app/lib/pytorch-jni-*.jar', lambda n: n.startswith('jnilib/') and not n.endswith('/'))
PY
  if [ "${1:-}" = --table ]; then
    limit=$((64 * 1024 * 1024))
    kit=$(du -sb .gpu | cut -f1)
    # (du fails on a tracked file moved aside, docs/ during a call: the sizes of those that exist)
    tree=$({ git ls-files -z | xargs -0 du -cb 2>/dev/null || true; } | tail -1 | cut -f1)
    docs=$({ git ls-files -z docs | xargs -0 du -cb 2>/dev/null || true; } | tail -1 | cut -f1)
    echo "tools/gpu/pack.sh --table: kit $((kit / 1024 / 1024)) MiB + tracked files $((tree / 1024 / 1024)) MiB" \
      "of the $((limit / 1024 / 1024)) MiB transfer"
    if (( kit + tree > limit )); then
      echo "tools/gpu/pack.sh --table: over by $(( (kit + tree - limit) / 1024 )) KiB; docs/ holds $((docs / 1024)) KiB" \
        "of the tracked files: move it aside for the call (mv docs ../docs-aside; back after)" >&2
      if (( kit + tree - docs > limit )); then
        echo "tools/gpu/pack.sh --table: over even without docs/" >&2
        [ -f .gpu/peer/triton-cache.tgz ] && echo "tools/gpu/pack.sh --table: the peer's Triton cache takes" \
          "$(( $(stat -c %s .gpu/peer/triton-cache.tgz) / 1024 )) KiB of it: without $peer_cache the first peer run compiles its kernels" >&2
        exit 1
      fi
    fi
  fi
fi
echo "tools/gpu/pack.sh: $(du -sh .gpu | cut -f1) in .gpu"
