#!/usr/bin/env bash
# Pack the assembled distribution for the GPU machine (../shared/device/pack.sh), with what
# Anneal needs there: a Java runtime with the JDK modules its libraries require (java.desktop for
# plots and commons-lang3, java.compiler for errorprone's annotations, ...), and the tokenizers jar
# cut to its linux-x86_64 native library so the working tree stays under the 64 MiB transfer limit.
#   tools/gpu/pack.sh            the distribution (for: benchmarks.sh fwd train torch roundtrip real)
#   tools/gpu/pack.sh --peer     only transformers' fast-path kernels (for: benchmarks.sh peer)
#   tools/gpu/pack.sh --with-peer  both, for one run of the whole table (benchmarks.sh kernels fused reference peer-all)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
dist=$(ls -d distribution/target/anneal-*/ | head -1)
mkdir -p .git/info
export JLINK_MODULES=java.base,java.desktop,java.management,java.compiler,java.logging,jdk.unsupported,java.xml,java.naming,jdk.zipfs,java.sql,java.scripting,java.instrument,jdk.jfr
if [ "${1:-}" = --peer ]; then
  PEER=1 ../shared/device/pack.sh "$dist"
  rm -rf .gpu/app .gpu/jre.tar.xz .gpu/torch   # the peer run needs Python only
else
  [ "${1:-}" = --with-peer ] && export PEER=1
  ../shared/device/pack.sh "$dist"
  python3 - <<'PY'
import glob, os, zipfile
for jar in glob.glob('.gpu/app/plugins/datamix/tokenizers-*.jar'):
    tmp = jar + '.tmp'
    with zipfile.ZipFile(jar) as src, zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as dst:
        for entry in src.infolist():
            name = entry.filename
            if name.startswith('native/lib/') and 'linux-x86_64' not in name and not name.endswith(('.properties', '/')):
                continue
            dst.writestr(entry, src.read(name))
    os.replace(tmp, jar)
PY
fi
echo "tools/gpu/pack.sh: $(du -sh .gpu | cut -f1) in .gpu"
