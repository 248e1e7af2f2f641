#!/usr/bin/env bash
# Runs the JMH op benchmarks (src/test/java/gpt2/bench/OpBenchmarks.java) and the end-to-end step
# (gpt2 bench). Usage: benchmarks/run-jmh.sh [JMH args...]   (default: 1 fork, 3 x 1 s warm-up, 5 x 1 s)
set -euo pipefail
cd "$(dirname "$0")/.."
export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
mvn -q -B test-compile
cp="target/test-classes:target/classes:$(mvn -q -B dependency:build-classpath -Dmdep.outputFile=/dev/stdout -Dmdep.includeScope=test)"
args=("$@")
[[ ${#args[@]} -eq 0 ]] && args=(-f 1 -wi 3 -w 1s -i 5 -r 1s)
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -cp "$cp" \
  org.openjdk.jmh.Main gpt2.bench.OpBenchmarks "${args[@]}"
mvn -q -B package -DskipTests
scripts/gpt2 bench --model gpt2 --batch_size 4 --sequence_length 64 --steps 10 --device cpu --json
