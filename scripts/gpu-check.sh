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

# dtype, tensorcores, GPT2_CUBLASLT (1: bias and GELU in cuBLASLt's GEMM epilogues), --flash
for mode in "float32 1 0 0" "float32 1 1 0" "float32 1 0 1" "bfloat16 0 0 0" "bfloat16 0 1 0" "bfloat16 0 1 1"; do
  set -- $mode
  echo "== bench d12 B=16 T=1024 dtype $1 tensorcores $2 cublaslt $3 flash $4"
  GPT2_CUBLASLT=$3 $JAVA $JAVA_OPTS -cp "$CP" gpt2.cli.Main bench --model d12 --batch_size 16 --sequence_length 1024 \
    --steps 5 --device cuda --dtype "$1" --tensorcores "$2" --flash "$4" 2>&1 | tee /tmp/gpu-bench.log
  line="$(grep -E '^median step' /tmp/gpu-bench.log || echo 'bench failed')"
  summary+=("bench d12 B16 T1024 dtype=$1 tensorcores=$2 cublaslt=$3 flash=$4: $line")
done

echo "== gpt2 train on the GPU: 6 steps with a checkpoint at 3, then resume from it"
work="$(mktemp -d)"
gpt2() { $JAVA $JAVA_OPTS -cp "$CP" gpt2.cli.Main "$@"; }
gpt2 prepare fineweb-edu README.md --separator '## ' --shard_size 4000 --output_dir "$work/data" 2>/dev/null
common=(--device cuda --model d2 --input_train_bin "$work/data/edu_fineweb_train_*.bin"
  --input_val_bin "$work/data/edu_fineweb_val_*.bin" --batch_size 4 --sequence_length 64 --total_batch_size 512
  --num_iterations 6 --learning_rate 1e-3 --val_loss_every 3 --val_max_steps 2 --sample_every 3 --save_every_niter 3
  --overfit_single_batch 0)
gpt2 train "${common[@]}" --output_dir "$work/run" 2>&1 | tee /tmp/gpu-train.log
gpt2 train "${common[@]}" --output_dir "$work/resumed" --load_chkpoint_file "$work/run/checkpoint_00000003" 2>&1 | tee /tmp/gpu-resume.log
full="$(grep -E '^step +[4-6]/' /tmp/gpu-train.log | sed -E 's/ \| [0-9.]+ ms.*//')"
resumed="$(grep -E '^step +[4-6]/' /tmp/gpu-resume.log | sed -E 's/ \| [0-9.]+ ms.*//')"
if [[ -n "$full" && "$full" == "$resumed" ]]; then resume_ok=PASS; else resume_ok=FAIL; fi
summary+=("train on GPU + resume from step 3: $resume_ok (steps 4-6 identical: loss, norm, lr)")

echo "== the same in bf16 mixed precision with flash attention"
gpt2 train "${common[@]}" --dtype bfloat16 --flash 1 --output_dir "$work/run16" 2>&1 | tee /tmp/gpu-train16.log
gpt2 train "${common[@]}" --dtype bfloat16 --flash 1 --output_dir "$work/resumed16" \
  --load_chkpoint_file "$work/run16/checkpoint_00000003" 2>&1 | tee /tmp/gpu-resume16.log
full16="$(grep -E '^step +[4-6]/' /tmp/gpu-train16.log | sed -E 's/ \| [0-9.]+ ms.*//')"
resumed16="$(grep -E '^step +[4-6]/' /tmp/gpu-resume16.log | sed -E 's/ \| [0-9.]+ ms.*//')"
if [[ -n "$full16" && "$full16" == "$resumed16" ]]; then resume16_ok=PASS; else resume16_ok=FAIL; fi
summary+=("train on GPU in bf16 with flash attention + resume from step 3: $resume16_ok (steps 4-6 identical)")

echo "== scripts/launch.sh --nproc_per_node=1 train on the GPU (NCCL with world size 1, full path)"
export GPT2_CLASSPATH="$CP" JAVA_HOME="$(dirname "$(dirname "$JAVA")")" GPT2_JAVA_OPTS="$JAVA_OPTS"
scripts/launch.sh --nproc_per_node=1 --master_port=29611 train "${common[@]}" --output_dir "$work/launched" \
  --zero_stage 0 2>&1 | tee /tmp/gpu-launch.log
launched="$(grep -E '^\[rank 0\] step +[4-6]/' /tmp/gpu-launch.log | sed -E 's/^\[rank 0\] //; s/ \| [0-9.]+ ms.*//')"
if [[ -n "$launched" && "$launched" == "$full" ]]; then launch_ok=PASS; else launch_ok=FAIL; fi
summary+=("launch.sh + NCCL world 1: $launch_ok (steps 4-6 equal the plain run's)")

echo "== summary"
printf '%s\n' "${summary[@]}"
[[ $tests_rc == 0 && $resume_ok == PASS && $resume16_ok == PASS && $launch_ok == PASS ]]
