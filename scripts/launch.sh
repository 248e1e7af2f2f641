#!/usr/bin/env bash
# torchrun for gpt2: one JVM per GPU with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set.
#
#   scripts/launch.sh --nproc_per_node=N [--nnodes=M --node_rank=K --master_addr=A --master_port=P] COMMAND ARGS...
#   e.g. scripts/launch.sh --nproc_per_node=2 train --input_train_bin 'data/fineweb-edu/*_train_*.bin' ...
#
# Each output line is prefixed with its rank. If a rank exits non-zero or dies, the others are
# stopped and the launcher exits with that rank's code, naming it. SIGINT/SIGTERM reach every rank.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

nproc=1; nnodes=1; node_rank=0; master_addr=127.0.0.1; master_port=29500
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nproc_per_node=*) nproc="${1#*=}" ;;
    --nnodes=*) nnodes="${1#*=}" ;;
    --node_rank=*) node_rank="${1#*=}" ;;
    --master_addr=*) master_addr="${1#*=}" ;;
    --master_port=*) master_port="${1#*=}" ;;
    --standalone) ;;
    --nproc_per_node|--nnodes|--node_rank|--master_addr|--master_port)
      echo "launch: write $1=VALUE" >&2; exit 2 ;;
    --*) echo "launch: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
[[ $# -gt 0 ]] || { echo "launch: no command (e.g. train ...)" >&2; exit 2; }
for v in nproc nnodes node_rank master_port; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "launch: --$v must be a number, got '${!v}'" >&2; exit 2; }
done
world=$((nproc * nnodes))

pids=(); ranks=()
stop_all() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; }
trap 'stop_all' INT TERM

for ((local = 0; local < nproc; local++)); do
  rank=$((node_rank * nproc + local))
  RANK=$rank WORLD_SIZE=$world LOCAL_RANK=$local MASTER_ADDR=$master_addr MASTER_PORT=$master_port \
    "$root/scripts/gpt2" "$@" > >(sed -u "s/^/[rank $rank] /") 2> >(sed -u "s/^/[rank $rank] /" >&2) &
  pids+=($!); ranks+=($rank)
done

status=0
remaining=${#pids[@]}
while (( remaining > 0 )); do
  wait -n -p done_pid "${pids[@]}" 2>/dev/null
  code=$?
  [[ -z "${done_pid:-}" ]] && break
  remaining=$((remaining - 1))
  for i in "${!pids[@]}"; do
    if [[ "${pids[$i]}" == "$done_pid" ]]; then
      if (( code != 0 )) && (( status == 0 )); then
        status=$code
        echo "launch: rank ${ranks[$i]} exited with code $code; stopping the other ranks" >&2
        stop_all
      fi
    fi
  done
  unset done_pid
done
wait 2>/dev/null
exit $status
