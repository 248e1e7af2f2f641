#!/usr/bin/env bash
# The one script for a GPU machine (no Maven there): runs the gpu-tagged tests and a short benchmark
# from .gpu-bundle (see ../shared/GPU.md), then prints a summary. Without a GPU it says so and exits 0.
# Usage: source .gpu-bundle/env.sh; scripts/gpu-check.sh
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${JAVA:-}" || -z "${CP:-}" ]]; then
  if [[ -f .gpu-bundle/env.sh ]]; then source .gpu-bundle/env.sh; else
    echo "gpu-check: no .gpu-bundle (run ../shared/tools/gpu-bundle.sh after mvn package)"; exit 2; fi
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: SKIPPED: no NVIDIA GPU on this machine (nvidia-smi finds none)"
  exit 0
fi
nvidia-smi -L
# A CUDA forward-compatibility libcuda (…/compat) only works with a matching kernel driver; with the
# machine's own driver it fails with "unsupported display driver / cuda driver combination".
LD_LIBRARY_PATH="$(echo "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -v '/compat$' | paste -sd: -)"
export LD_LIBRARY_PATH
JAVA_OPTS="$(echo "$JAVA_OPTS" | sed -E "s#-Djava.library.path=[^ ]*#-Djava.library.path=$LD_LIBRARY_PATH#")"
echo "gpu-check: LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export GPT2_KERNEL_CACHE="${GPT2_KERNEL_CACHE:-$(mktemp -d)}"
summary=()

echo "== gpu-tagged tests"
$JAVA $JAVA_OPTS -jar .gpu-bundle/lib/junit-platform-console-standalone-*.jar execute -cp "$CP" \
  --select-package gpt2.backend.cuda --include-tag gpu --details=tree --disable-banner 2>&1 | tee /tmp/gpu-tests.log
tests_rc=${PIPESTATUS[0]}
summary+=("gpu tests: $( [[ $tests_rc == 0 ]] && echo PASS || echo "FAIL (rc $tests_rc)")")

for tc in 0 1; do
  echo "== bench d12 B=16 T=1024 fp32 (tensorcores $tc)"
  $JAVA $JAVA_OPTS -cp "$CP" gpt2.cli.Main bench --model d12 --batch_size 16 --sequence_length 1024 --steps 5 \
    --device cuda --tensorcores $tc 2>&1 | tee /tmp/gpu-bench-$tc.log
  line="$(grep -E '^median step' /tmp/gpu-bench-$tc.log || echo 'bench failed')"
  summary+=("bench d12 B16 T1024 tensorcores=$tc: $line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
[[ $tests_rc == 0 ]]
