#!/usr/bin/env bash
# The one script for a GPU machine (no Maven there), run from .gpu-bundle (made by scripts/gpu-bundle.sh).
# Time on a GPU machine is short and a run can be cut off, so it measures first and hands back
# what it measured as it goes: every summary line is printed and appended to $GPU_CHECK_OUT/summary.txt
# the moment it is known, with every phase's log beside it; every phase runs under its own timeout.
#
#   --quick  the first look (< 5 min): versions, the d12 bf16 bench with the per-kernel profile
#            with flash attention (tensor cores) and with the materialized attention, flash with
#            CUDA graphs, the gpu-tagged tests
#   (full)   the check after a change (< 10 min): the above, more bench modes (B=32 flash, without
#            cuBLASLt, float32/TF32), d24 and d48 in bf16 with flash, training + resume on the GPU
#            (float32; bf16 with flash), scripts/launch.sh with NCCL (world size 1)
#
# Usage: source .gpu-bundle/env.sh; GPU_CHECK_OUT=DIR scripts/gpu-check.sh [--quick]
# Without a GPU it says so, writes that to the summary and exits 0.
# The gpu-tagged test classes run one JVM each (GPU_CHECK_TEST_CLASSES overrides the list, CLASS or
# CLASS#method), so an illegal memory access, which poisons every later CUDA call of its process,
# fails one summary line and not the rest. GPU_CHECK_TINY=1 shrinks the benches to d2, T=64, B=2
# (how the project's tests run this script on the CUDA library stand-ins).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $a (expected --quick)" >&2; exit 2 ;;
  esac
done
out="${GPU_CHECK_OUT:-}"
if [[ -z "$out" ]]; then out="$(mktemp -d /tmp/gpu-check.XXXXXX)"; fi
mkdir -p "$out" || { echo "gpu-check: cannot create GPU_CHECK_OUT=$out" >&2; exit 2; }
summary_file="$out/summary.txt"
: > "$summary_file"
echo "gpu-check: results in $out (summary.txt and one log per phase)"
started=$SECONDS
failures=0

# One summary line, now: to stdout and the summary file.
say() { echo "SUMMARY: $*"; echo "$*" >> "$summary_file"; }
# phase NAME SECONDS CMD...: runs CMD under a timeout with its output in NAME.log (and on stdout).
phase() {
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s, $((SECONDS - started))s so far)"
  timeout --kill-after=10 "$limit" "$@" > >(tee "$out/$name.log") 2>&1
  local rc=$?
  if [[ $rc == 124 || $rc == 137 ]]; then say "$name: TIMED OUT after ${limit}s"; fi
  return $rc
}

if [[ -z "${JAVA:-}" || -z "${CP:-}" ]]; then
  if [[ -f .gpu-bundle/env.sh ]]; then source .gpu-bundle/env.sh; else
    say "gpu-check: no .gpu-bundle (run scripts/gpu-bundle.sh after mvn package)"; exit 2; fi
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  say "gpu-check: SKIPPED: no NVIDIA GPU on this machine (nvidia-smi finds none)"
  exit 0
fi
# A CUDA forward-compatibility libcuda (…/compat) only works with a matching kernel driver; with the
# machine's own driver it fails with "unsupported display driver / cuda driver combination".
LD_LIBRARY_PATH="$(echo "${LD_LIBRARY_PATH:-}" | tr ':' '\n' | grep -v '/compat$' | paste -sd: -)"
export LD_LIBRARY_PATH
JAVA_OPTS="$(echo "$JAVA_OPTS" | sed -E "s#-Djava.library.path=[^ ]*#-Djava.library.path=$LD_LIBRARY_PATH#")"
export GPT2_KERNEL_CACHE="${GPT2_KERNEL_CACHE:-$out/kernel-cache}"

# ---------------------------------------------------------------- versions first
say "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
say "date: $(date -u +%Y-%m-%dT%H:%MZ); mode: $([[ $quick == 1 ]] && echo quick || echo full)"
libs=""
for l in libcudart.so libcublas.so libcublasLt.so libnvrtc.so libnccl.so; do
  f="$(echo "$LD_LIBRARY_PATH" | tr ':' '\n' | while read -r d; do [[ -n "$d" ]] && ls "$d"/$l.* 2>/dev/null; done | head -1)"
  libs+=" ${l%.so}=$( [[ -n "$f" ]] && basename "$(readlink -f "$f")" || echo missing)"
done
say "cuda libraries:$libs"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
# the CLI as a command line (timeout runs commands, not shell functions); JAVA_OPTS split into words
gpt2=($JAVA $JAVA_OPTS -cp "$CP" gpt2.cli.Main)
# the JUnit console: the bundle's standalone jar, or GPU_CHECK_JUNIT (a command line)
if [[ -n "${GPU_CHECK_JUNIT:-}" ]]; then read -r -a junit <<< "$GPU_CHECK_JUNIT"
else junit=($JAVA $JAVA_OPTS -jar .gpu-bundle/lib/junit-platform-console-standalone-*.jar); fi

# ---------------------------------------------------------------- benches (before the tests)
# bench NAME LIMIT ENV... -- ARGS...: a T=1024 bench (d12 unless ARGS name a --model); its "median step",
# plan and attention lines go to the summary, and with --profile 1 the whole per-kernel table.
bench() {
  local name="$1" limit="$2"; shift 2
  local envs=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  local model=(--model d12) args=("$@")
  [[ " $* " == *" --model "* ]] && model=()
  local shape=(--sequence_length 1024)
  if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then  # the script's own test: small, whatever the phase asks
    model=(); shape=(--sequence_length 64)
    args=("${args[@]}" --model d2 --batch_size 2 --steps 2)
  fi
  phase "$name" "$limit" env "${envs[@]}" "${gpt2[@]}" bench "${model[@]}" \
    "${shape[@]}" --device cuda --json "${args[@]}"
  local line plan attention graphs
  line="$(grep -E '^median step' "$out/$name.log" | sed -E 's/ \| peak memory [^|]*//')"
  plan="$(grep -E '^per step:' "$out/$name.log" | head -1)"
  attention="$(grep -E '^attention:' "$out/$name.log" | head -1)"
  graphs="$(grep -E '^CUDA graphs:' "$out/$name.log" | head -1)"
  if [[ -n "$line" ]]; then
    say "$name: $line"; [[ -n "$plan" ]] && say "$name: $plan"; [[ -n "$attention" ]] && say "$name: $attention"
    [[ -n "$graphs" ]] && say "$name: $graphs"
    # the profile table, whole, into the summary: it is what the GPU minutes are for
    [[ " $* " == *" --profile 1 "* ]] && awk '/^per-kernel profile/,/^per step:/' "$out/$name.log" >> "$summary_file"
    # with graphs on, a bench that never replayed one measured the step without them
    if [[ " ${envs[*]} " == *" GPT2_CUDA_GRAPHS=1 "* && -z "$graphs" ]]; then
      say "$name: FAILED (GPT2_CUDA_GRAPHS=1 but no CUDA graph was launched$(grep -m1 -oE 'CUDA graphs off[^;]*' "$out/$name.log" | sed 's/^/: /'))"
      failures=$((failures + 1))
    fi
  else say "$name: FAILED ($(grep -E 'rror|Exception' "$out/$name.log" | head -1))"; failures=$((failures + 1)); fi
}

# the step with flash attention on the tensor cores, and the materialized attention beside it
bench bench-bf16-b16-flash-profile 150 GPT2_CUBLASLT=1 -- --batch_size 16 --dtype bfloat16 --steps 10 --flash 1 --profile 1
bench bench-bf16-b16-profile 90 GPT2_CUBLASLT=1 -- --batch_size 16 --dtype bfloat16 --steps 10 --flash 0 --profile 1
# the flash step again with its micro-batches replayed as CUDA graphs (the gpu tests check the bits)
bench bench-bf16-b16-flash-graphs 90 GPT2_CUBLASLT=1 GPT2_CUDA_GRAPHS=1 -- --batch_size 16 --dtype bfloat16 --steps 10 --flash 1
if [[ $quick == 0 ]]; then
  bench bench-bf16-b32-flash 90 GPT2_CUBLASLT=1 -- --batch_size 32 --dtype bfloat16 --steps 10 --flash 1
  # the tensor-core kernels with their tiles loaded through registers instead of cp.async
  bench bench-bf16-b16-flash-sync-profile 90 GPT2_CUBLASLT=1 GPT2_FLASH_ASYNC=0 -- --batch_size 16 --dtype bfloat16 --steps 10 --flash 1 --profile 1
  bench bench-bf16-b16-nolt 90 GPT2_CUBLASLT=0 -- --batch_size 16 --dtype bfloat16 --steps 10 --flash 1
  bench bench-fp32-tf32-b16 90 GPT2_CUBLASLT=0 -- --batch_size 16 --dtype float32 --tensorcores 1 --steps 5
  # bigger models on one GPU: GPT-2 medium (350M) and XL (1.5B) shapes, bf16, flash attention
  bench bench-d24-bf16-b16-flash 120 GPT2_CUBLASLT=1 -- --model d24 --batch_size 16 --dtype bfloat16 --steps 5 --flash 1
  bench bench-d48-bf16-b8-flash 180 GPT2_CUBLASLT=1 -- --model d48 --batch_size 8 --dtype bfloat16 --steps 3 --flash 1
  # the modern recipe (RoPE, QK-norm, ReLU², soft cap; AdamW here) with its kernels in the profile
  bench bench-d12-modern-bf16-b16-flash-profile 120 GPT2_CUBLASLT=1 -- --model d12-modern --batch_size 16 --dtype bfloat16 --steps 5 --flash 1 --profile 1
fi

# ---------------------------------------------------------------- gpu-tagged tests
# One JVM per class, each under its own limit: a fault (an illegal address poisons every later CUDA
# call of its process) or a hang costs one line, and the other classes still run.
# (GpuTestClassesTest keeps this list equal to the gpu-tagged classes.)
test_classes=(gpt2.backend.cuda.CudaParityTest gpt2.cli.GpuCommandsTest)
[[ $quick == 0 ]] && test_classes+=(gpt2.backend.cuda.CudaParityFusedTest)
[[ -n "${GPU_CHECK_TEST_CLASSES:-}" ]] && read -r -a test_classes <<< "$GPU_CHECK_TEST_CLASSES"
for cls in "${test_classes[@]}"; do
  name="gpu-tests-${cls##*.}"; name="${name//#/-}"
  if [[ "$cls" == *"#"* ]]; then select=(--select-method "$cls"); else select=(--select-class "$cls"); fi
  phase "$name" 240 "${junit[@]}" execute -cp "$CP" \
    "${select[@]}" --include-tag gpu --details=tree --disable-banner --disable-ansi-colors
  tests_rc=$?
  count() { grep -E "[0-9]+ $1" "$out/$name.log" | grep -oE '[0-9]+' | head -1; }
  found="$(count 'tests found')"; ok="$(count 'tests successful')"; failed="$(count 'tests failed')"
  aborted="$(count 'containers aborted')"
  counts="${ok:-0} of ${found:-?} passed, ${failed:-?} failed, ${aborted:-0} test classes skipped"
  if [[ $tests_rc == 0 && "${ok:-0}" -gt 0 ]]; then say "$name: PASS ($counts)"
  elif [[ $tests_rc == 0 ]]; then say "$name: NOTHING RAN ($counts: $(grep -oE 'Assumption failed: [^[]*' "$out/$name.log" | head -1))"
    failures=$((failures + 1))
  elif [[ $tests_rc == 124 || $tests_rc == 137 ]]; then failures=$((failures + 1))  # the phase said TIMED OUT
  else say "$name: FAIL (rc $tests_rc; $counts)"
    grep -E '✘' "$out/$name.log" | head -10 >> "$summary_file"; failures=$((failures + 1)); fi
done

if [[ $quick == 1 ]]; then
  say "gpu-check done in $((SECONDS - started))s with $failures failure(s)"
  [[ $failures == 0 ]]; exit
fi

# ---------------------------------------------------------------- training on the GPU, resume
work="$out/train"
mkdir -p "$work"
# text to train on: this checkout's own sources (the bundle's Java runtime has no java.sql for parquet)
cat README.md src/main/java/gpt2/*/*.java > "$work/input.txt"
"${gpt2[@]}" prepare tinyshakespeare --input "$work/input.txt" --output_dir "$work/data" > "$out/prepare.log" 2>&1
common=(--device cuda --model d2 --input_train_bin "$work/data/*_train.bin"
  --input_val_bin "$work/data/*_val.bin" --batch_size 4 --sequence_length 64 --total_batch_size 512
  --num_iterations 6 --learning_rate 1e-3 --val_loss_every 3 --val_max_steps 2 --sample_every 3 --save_every_niter 3
  --overfit_single_batch 0)
steps() { grep -E '^(\[rank 0\] )?step +[4-6]/' "$1" | sed -E 's/^\[rank 0\] //; s/ \| [0-9.]+ ms.*//'; }
# resume_check NAME EXTRA...: 6 steps with a checkpoint at 3, then 4-6 again from it; equal lines pass
resume_check() {
  local name="$1"; shift
  phase "$name" 60 "${gpt2[@]}" train "${common[@]}" "$@" --output_dir "$work/$name-run"
  phase "$name-resumed" 60 "${gpt2[@]}" train "${common[@]}" "$@" --output_dir "$work/$name-resumed" \
    --load_chkpoint_file "$work/$name-run/checkpoint_00000003"
  local full resumed
  full="$(steps "$out/$name.log")"; resumed="$(steps "$out/$name-resumed.log")"
  if [[ -n "$full" && "$full" == "$resumed" ]]; then say "$name + resume from step 3: PASS (steps 4-6 identical)"
  else say "$name + resume from step 3: FAIL"; failures=$((failures + 1)); fi
}
resume_check train-fp32
resume_check train-bf16-flash --dtype bfloat16 --flash 1
GPT2_CUDA_GRAPHS=1 resume_check train-bf16-flash-graphs --dtype bfloat16 --flash 1
if grep -q "CUDA graphs off" "$out"/train-bf16-flash-graphs*.log; then
  say "train bf16 flash with CUDA graphs: FAIL (graphs turned themselves off: $(grep -h -m1 -oE 'CUDA graphs off[^;]*' "$out"/train-bf16-flash-graphs*.log | head -1))"
  failures=$((failures + 1))
elif [[ -n "$(steps "$out/train-bf16-flash-graphs.log")" && "$(steps "$out/train-bf16-flash-graphs.log")" == "$(steps "$out/train-bf16-flash.log")" ]]; then
  say "train bf16 flash with CUDA graphs: PASS (steps 4-6 equal the run without)"
else say "train bf16 flash with CUDA graphs: FAIL"; failures=$((failures + 1)); fi

export GPT2_CLASSPATH="$CP" JAVA_HOME="$(dirname "$(dirname "$JAVA")")" GPT2_JAVA_OPTS="$JAVA_OPTS"
phase launch-nccl 60 scripts/launch.sh --nproc_per_node=1 --master_port=29611 train "${common[@]}" \
  --output_dir "$work/launched" --zero_stage 0
if [[ -n "$(steps "$out/launch-nccl.log")" && "$(steps "$out/launch-nccl.log")" == "$(steps "$out/train-fp32.log")" ]]; then
  say "launch.sh + NCCL world 1: PASS (steps 4-6 equal the plain run's)"
else say "launch.sh + NCCL world 1: FAIL"; failures=$((failures + 1)); fi

say "gpu-check done in $((SECONDS - started))s with $failures failure(s)"
[[ $failures == 0 ]]
