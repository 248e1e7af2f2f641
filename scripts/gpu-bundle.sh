#!/usr/bin/env bash
# Packs what a GPU machine needs to run this project's GPU checks without Maven or a JDK into
# .gpu-bundle/ at the project's root (git-ignored):
#   .gpu-bundle/jre.txz     a jlink'd Java 25 runtime (~15 MB, xz)
#   .gpu-bundle/lib/        the runtime and test dependency jars, and
#                           junit-platform-console-standalone-VERSION.jar: a launcher jar whose manifest
#                           runs JUnit's console from the junit-platform-console jars beside it
#   .gpu-bundle/classes/    target/classes (main) and target/test-classes (test)
#   .gpu-bundle/env.sh      to source there: sets JAVA, CP, JAVA_OPTS and the CUDA library path
#
# Here, after a build (mvn -B -q package -DskipTests, or test-compile):
#   scripts/gpu-bundle.sh
# There (a GPU machine: no Maven, maybe no Java, maybe no network), in the project root:
#   source .gpu-bundle/env.sh                      # prints the java and the CUDA library folders it found
#   GPU_CHECK_OUT=DIR scripts/gpu-check.sh --quick # or without --quick: the full check (README, "On a GPU")
# Take the checkout with .gpu-bundle along (the bundle is about 30 MB).
#
# The GPU machine needs the NVIDIA driver and the CUDA 13 libraries (libcudart, libcublas,
# libcublasLt, libnvrtc, libnccl; from a CUDA toolkit or NVIDIA's pip wheels): env.sh searches
# /usr/local/cuda*, /usr/local/nvidia, /usr/lib/x86_64-linux-gnu and /opt for them and puts their
# folders on LD_LIBRARY_PATH and java.library.path; if it finds the wrong ones, set LD_LIBRARY_PATH
# after sourcing it. Kernels are compiled there by NVRTC for that GPU's own architecture.
#
# Environment: JDK25 (the JDK to jlink; default $JAVA_HOME when it is a JDK 25, else
# /usr/lib/jvm/temurin-25-jdk-amd64), MVN (default mvn; "mvn -o" offline), BUNDLE_EXCLUDE (an
# extended regex of jar names left out; default: DuckDB, cuda-redist, OpenBLAS's natives and
# other platforms: without OpenBLAS's natives the CPU backend uses its pure-Java GEMM there),
# JRE_MODULES (the runtime's modules).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
case "${1:-}" in
  -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
  "") ;;
  *) echo "gpu-bundle: unknown argument $1 (it takes none; see --help)" >&2; exit 2 ;;
esac

if [[ ! -d target/classes || ! -f pom.xml ]]; then
  echo "gpu-bundle: no build in $root/target; build first: mvn -B -q package -DskipTests" >&2
  exit 2
fi
jdk="${JDK25:-}"
if [[ -z "$jdk" && -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/jlink" ]] \
   && "$JAVA_HOME/bin/java" -XshowSettings:properties -version 2>&1 | grep -qE 'java.specification.version = (2[5-9]|[3-9][0-9])'; then
  jdk="$JAVA_HOME"
fi
jdk="${jdk:-/usr/lib/jvm/temurin-25-jdk-amd64}"
if [[ ! -x "$jdk/bin/jlink" ]]; then
  echo "gpu-bundle: no JDK 25 with jlink at $jdk; set JDK25 (or JAVA_HOME) to one" >&2
  exit 2
fi
read -r -a mvn <<< "${MVN:-mvn}"
exclude="${BUNDLE_EXCLUDE:-duckdb|redist|openblas-.*-linux|-sources|-javadoc|arm64|ppc64le|windows|macosx|android|ios}"
out=.gpu-bundle
rm -rf "$out/lib" "$out/classes" "$out/jre" "$out/javacpp-cache"
mkdir -p "$out/lib" "$out/classes"

"${mvn[@]}" -q -B dependency:copy-dependencies -DincludeScope=test -DoutputDirectory="$out/lib"
for f in "$out"/lib/*.jar; do
  if basename "$f" | grep -Eq "$exclude"; then rm -f "$f"; fi
done
# The JUnit console as `java -jar`: a manifest naming the console's jars beside it (no download).
console="$(cd "$out/lib" && ls junit-platform-console-[0-9]*.jar 2>/dev/null | head -1)"
if [[ -z "$console" ]]; then
  echo "gpu-bundle: the test dependencies have no junit-platform-console jar (see pom.xml)" >&2
  exit 1
fi
version="${console#junit-platform-console-}"; version="${version%.jar}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
{
  echo "Main-Class: org.junit.platform.console.ConsoleLauncher"
  # manifest lines are at most 72 bytes: continuation lines start with a space
  echo "Class-Path: $(cd "$out/lib" && ls junit-*.jar opentest4j-*.jar apiguardian-*.jar open-test-reporting-*.jar 2>/dev/null | paste -sd' ' -)" \
    | fold -w 70 | sed '2,$s/^/ /'
} > "$tmp/manifest.txt"
"$jdk/bin/jar" --create --file "$out/lib/junit-platform-console-standalone-$version.jar" --manifest "$tmp/manifest.txt"

cp -r target/classes "$out/classes/main"
[[ -d target/test-classes ]] && cp -r target/test-classes "$out/classes/test"

if [[ ! -f "$out/jre.txz" ]]; then
  "$jdk/bin/jlink" --add-modules "${JRE_MODULES:-java.base,java.logging,java.management,java.xml,jdk.incubator.vector,jdk.unsupported}" \
    --strip-debug --no-header-files --no-man-pages --output "$tmp/jre" 2>/dev/null
  tar cJf "$out/jre.txz" -C "$tmp" jre
fi

cat > "$out/env.sh" <<'ENV'
# Source this on the GPU machine: sets JAVA, CP, JAVA_OPTS and LD_LIBRARY_PATH (scripts/gpu-bundle.sh made it).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The runtime is unpacked outside the bundle, so a bundle that was sourced here can still be carried.
if [ -z "${GPT2_JRE:-}" ] || [ ! -x "$GPT2_JRE/jre/bin/java" ]; then
  GPT2_JRE=$(mktemp -d)
  tar xJf "$here/jre.txz" -C "$GPT2_JRE" 2>/dev/null \
    || python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$here/jre.txz" "$GPT2_JRE"
fi
export GPT2_JRE JAVA="$GPT2_JRE/jre/bin/java"
libdirs=$(find /usr/local/cuda* /usr/local/nvidia /usr/lib/x86_64-linux-gnu /opt \
  \( -name 'libcudart.so.13*' -o -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' -o -name 'libnvrtc.so.13*' \
     -o -name 'libnccl.so.2*' -o -name 'libcuda.so.1' -o -name 'libnvJitLink.so.13*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CP="$here/classes/main:$here/classes/test:$(ls "$here"/lib/*.jar | grep -v console-standalone | paste -sd: -)"
export JAVA_OPTS="--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Djava.library.path=$LD_LIBRARY_PATH -Dorg.bytedeco.javacpp.cachedir=$GPT2_JRE/javacpp-cache"
# The gpu-tagged tests by hand:  $JAVA $JAVA_OPTS -jar "$here"/lib/junit-platform-console-standalone-*.jar execute -cp "$CP" --scan-classpath "$here/classes/test" --include-tag gpu
echo "env.sh: JAVA=$JAVA; CUDA library dirs: ${libdirs:-none found}" >&2
ENV
du -sh "$out" "$out"/jre.txz "$out"/lib "$out"/classes
total=$(du -sm "$out" | cut -f1)
[[ "$total" -le 56 ]] || echo "gpu-bundle: warning: $out is ${total} MB; keep it small (BUNDLE_EXCLUDE, JRE_MODULES)" >&2
echo "gpu-bundle: done; on the GPU machine: source $out/env.sh; GPU_CHECK_OUT=DIR scripts/gpu-check.sh --quick"
