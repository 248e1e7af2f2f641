#!/usr/bin/env bash
# The original's overfit check: train on one batch of Tiny Shakespeare (--overfit_single_batch 1)
# and pass only if the loss falls below a threshold. Prepares the data when it is missing.
#
# Usage: scripts/overfit_smoke.sh [--model d4] [--steps 60] [--threshold 1.0] [--device cpu]
#                                 [--input input.txt] [-- extra gpt2 train flags]
#   --model d12 --steps 100 runs the full-size model (slow on a CPU: seconds per step).
#   Offline: --input FILE or GPT2_TINYSHAKESPEARE=FILE names a local copy of input.txt; otherwise
#   data/tinyshakespeare/input.txt or ../shared/data/tinyshakespeare/input.txt is used when present,
#   and the standard file is downloaded when none is.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model=d4; steps=60; threshold=1.0; device=cpu; input="${GPT2_TINYSHAKESPEARE:-}"; extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --threshold) threshold="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "overfit_smoke: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

data=data/tinyshakespeare
if [[ ! -f "$data/tiny_shakespeare_train.bin" ]]; then
  if [[ -z "$input" ]]; then
    for c in "$data/input.txt" ../shared/data/tinyshakespeare/input.txt; do
      [[ -f "$c" ]] && { input="$c"; break; }
    done
  fi
  if [[ -n "$input" ]]; then
    scripts/gpt2 prepare tinyshakespeare --input "$input"
  else
    scripts/gpt2 prepare tinyshakespeare   # downloads the standard input.txt
  fi
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "overfit_smoke: $model, $steps steps on one batch, pass if the last loss < $threshold"
scripts/gpt2 train --model "$model" --device "$device" \
  --input_train_bin "$data/tiny_shakespeare_train.bin" --input_val_bin "$data/tiny_shakespeare_val.bin" \
  --batch_size 4 --sequence_length 64 --total_batch_size 256 --overfit_single_batch 1 \
  --num_iterations "$steps" --learning_rate 1e-3 --val_loss_every 0 --sample_every 0 \
  "${extra[@]}" | tee "$out/train.log"

last="$(grep -E '^step +[0-9]+/' "$out/train.log" | tail -1 | sed -E 's/.*\| loss ([0-9.]+) \|.*/\1/')"
if [[ -z "$last" ]]; then echo "overfit_smoke: FAIL (no step lines)"; exit 1; fi
if awk -v l="$last" -v t="$threshold" 'BEGIN { exit !(l < t) }'; then
  echo "overfit_smoke: PASS (final loss $last < $threshold)"
else
  echo "overfit_smoke: FAIL (final loss $last >= $threshold)"; exit 1
fi
