#!/usr/bin/env python3
"""Whether an assembled distribution's ssm-hybrid plugin carries this working tree's operator sources.

The plugin jar holds the fused operators' sources (io/anneal/hybrid/kernels/, from
plugin-ssm-hybrid/src/main/native), and the plugin refuses an anneal_ops.so built from other sources
(FusedKernels: their fingerprints differ). On the GPU machine the library is built from the working
tree, so a distribution assembled before the last change to src/main/native fails every fused run
there, each after its JVM start: session 31 lost a whole table call (550 s of device time) to a
distribution packed between two edits. tools/gpu/pack.sh checks before it packs, benchmarks.sh
before its first Anneal run.

    python3 tools/gpu/check_operator_sources.py DIST    # DIST: distribution/target/anneal-*, .gpu/app

Exit 0 when every source in the jar equals the working tree's and none is missing; 2 otherwise,
naming the files and the command that rebuilds the distribution.
"""
import glob
import os
import sys
import zipfile

PREFIX = "io/anneal/hybrid/kernels/"
TREE = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plugin-ssm-hybrid",
                                    "src", "main", "native"))


def differences(dist, tree):
    """The problems found, as sentences; empty when the jar and the tree agree."""
    jars = glob.glob(os.path.join(dist, "plugins", "ssm-hybrid", "plugin-ssm-hybrid-*.jar"))
    if len(jars) != 1:
        return [f"{dist}/plugins/ssm-hybrid holds {len(jars)} plugin-ssm-hybrid jars, expected 1"]
    with zipfile.ZipFile(jars[0]) as jar:
        packed = {name[len(PREFIX):]: jar.read(name) for name in jar.namelist()
                  if name.startswith(PREFIX) and not name.endswith("/")}
    local = {name: open(os.path.join(tree, name), "rb").read() for name in sorted(os.listdir(tree))
             if os.path.isfile(os.path.join(tree, name))}
    problems = [f"{name} differs" for name in sorted(packed.keys() & local.keys()) if packed[name] != local[name]]
    problems += [f"{name} is in the jar only" for name in sorted(packed.keys() - local.keys())]
    problems += [f"{name} is in the working tree only" for name in sorted(local.keys() - packed.keys())]
    return [f"{jars[0]}: {p} (against {tree})" for p in problems]


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0] + "\nusage: python3 tools/gpu/check_operator_sources.py DIST",
              file=sys.stderr)
        return 2
    problems = differences(argv[1], TREE)
    if problems:
        print("check_operator_sources: the distribution's operator sources are not the working tree's, so the "
              "plugin would refuse the operators built from the tree on the GPU machine:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        print("rebuild it first: mvn -B -q -o -DskipTests install, then tools/gpu/pack.sh", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
