#!/usr/bin/env bash
# The GPT-2 recipe and the modern recipe side by side on the CPU: same model size (d4: 4 layers,
# 4 heads, 128 channels), same data, same tokens, same seed. Prints both validation curves and the
# fraction of the GPT-2 recipe's tokens the modern one needs to reach its final validation loss, and
# draws both curves into OUT/recipe.png.
#
#   GPT-2 recipe:  --model d4 (LayerNorm, learned positions, GELU, biases, tied head), AdamW
#                  (0.9, 0.95, weight decay 0.1), warmup then cosine to 10% (nanoGPT / llm.c)
#   modern recipe: --model d4-modern (RoPE, QK-norm, ReLU², no biases, parameter-free RMSNorm,
#                  zero-init projections and head, untied head, logit softcap 15), Muon for the
#                  hidden matrices + AdamW (0.8, 0.95) for embedding and head, warmup-constant-warmdown
#
# Usage: benchmarks/recipe.sh [--seed 1337] [--steps 300] [--out runs/recipe-SEED] [--threads N]
#                             [--input input.txt] [--train GLOB --val GLOB] [--device cpu]
#   Data: Tiny Shakespeare by default (prepared when missing, offline from --input FILE,
#   $GPT2_TINYSHAKESPEARE or data/tinyshakespeare/input.txt); --train/--val take other shards.
#   An existing OUT is refused (nothing is overwritten). About 8 minutes on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seed=1337; steps=300; out=""; threads=""; input=""; train=""; val=""; device=cpu
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --input) input="$2"; shift 2 ;;
    --train) train="$2"; shift 2 ;;
    --val) val="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    *) echo "recipe: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "recipe: --steps must be a positive integer, got '$steps'" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "recipe: --seed must be a non-negative integer, got '$seed'" >&2; exit 2; }
out="${out:-runs/recipe-$seed}"
if [[ -e "$out" ]]; then echo "recipe: --out $out already exists; pick another folder or remove it" >&2; exit 2; fi
if [[ -n "$train" || -n "$val" ]]; then
  [[ -n "$train" && -n "$val" ]] || { echo "recipe: --train and --val go together" >&2; exit 2; }
else
  data=data/tinyshakespeare
  # prepare itself keeps shards already there, and finds $GPT2_TINYSHAKESPEARE or data/tinyshakespeare/input.txt
  [[ -f "$data/tiny_shakespeare_train.bin" ]] || scripts/gpt2 prepare tinyshakespeare ${input:+--input "$input"}
  train="$data/tiny_shakespeare_train.bin"; val="$data/tiny_shakespeare_val.bin"
fi
mkdir -p "$out"

# the same tokens for both: B 8 x T 128 = 1,024 tokens a step; validation 15 times over the run
# (every 20 steps of 300) on the same 16 batches (16,384 tokens)
every=$(( steps / 15 > 0 ? steps / 15 : 1 ))
common=(--input_train_bin "$train" --input_val_bin "$val" --device "$device" --seed "$seed"
        --batch_size 8 --sequence_length 128 --total_batch_size 1024 --num_iterations "$steps"
        --overfit_single_batch 0 --val_loss_every "$every" --val_max_steps 16 --sample_every 0 --save_every_niter 0
        --grad_clip 1.0)
[[ -n "$threads" ]] && common+=(--threads "$threads")
warmup=$(( steps / 15 ))

# a run's log goes to OUT/NAME.log; its validation lines and summary are shown as they come
run() {
  local name="$1"; shift
  echo "recipe: $name -> $out/$name"
  if ! scripts/gpt2 train "${common[@]}" --output_dir "$out/$name" "$@" 2>&1 | tee "$out/$name.log" \
       | awk '/val loss|mean step time/ { print "  " $0; fflush() }'; then
    tail -3 "$out/$name.log" >&2
    echo "recipe: the $name run failed (see $out/$name.log)" >&2
    exit 1
  fi
}

run gpt2 --model d4 \
  --learning_rate 3e-3 --warmup_iters "$warmup" --learning_rate_decay_frac 0.1 --weight_decay 0.1 \
  --beta1 0.9 --beta2 0.95
run modern --model d4-modern \
  --optimizer muon --muon_lr 0.02 --muon_momentum 0.95 --embedding_lr 0.2 --head_lr 0.004 \
  --learning_rate 3e-3 --lr_schedule wsd --warmup_iters 0 --warmdown_frac 0.4 --learning_rate_decay_frac 0.0 \
  --weight_decay 0 --beta1 0.8 --beta2 0.95

scripts/gpt2 plot "$out/gpt2" "$out/modern" --out "$out/recipe.png" | tee "$out/comparison.txt"
