#!/usr/bin/env bash
# torchrun for gpt2: one JVM per GPU with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set.
#
#   scripts/launch.sh --nproc_per_node=N [--nnodes=M --node_rank=K --master_addr=A --master_port=P] COMMAND ARGS...
#   (as torchrun: --nproc-per-node etc. too, and --nproc_per_node N as well as --nproc_per_node=N)
#   e.g. scripts/launch.sh --nproc_per_node=2 train --input_train_bin 'data/fineweb-edu/*_train_*.bin' ...
#
# Each output line is prefixed with its rank. If a rank exits non-zero or dies, the others are
# stopped and the launcher exits with that rank's code, naming it. SIGINT/SIGTERM reach every rank.
#
# Under SLURM:
#   srun --ntasks-per-node=GPUS scripts/launch.sh COMMAND ...    (one task per GPU; no --nproc_per_node)
#     each task is one rank: RANK, WORLD_SIZE, LOCAL_RANK come from SLURM_PROCID, SLURM_NTASKS,
#     SLURM_LOCALID, MASTER_ADDR (unless set) from the first host of SLURM_JOB_NODELIST.
#   srun --ntasks-per-node=1 scripts/launch.sh --nproc_per_node=GPUS COMMAND ...   (one launcher per node)
#     --nnodes, --node_rank and --master_addr default to SLURM_NNODES, SLURM_NODEID and that host.
#   MASTER_PORT (or --master_port) defaults to 29500.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The first host of a SLURM host list: "gpu[003-010,012],cpu1" -> gpu003 (padding kept).
first_host() {
  local s="$1" out="" depth=0 i c in_range=0 skip=0
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    if [[ $c == "[" ]]; then depth=1; in_range=1; skip=0; continue; fi
    if [[ $c == "]" ]]; then depth=0; in_range=0; continue; fi
    if (( depth == 0 )) && [[ $c == "," ]]; then break; fi
    if (( in_range )); then
      if [[ $c == "," || $c == "-" ]]; then skip=1; fi
      (( skip )) || out+="$c"
    else
      out+="$c"
    fi
  done
  echo "$out"
}

slurm_master() {
  if [[ -n "${MASTER_ADDR:-}" ]]; then echo "$MASTER_ADDR"; return; fi
  local list="${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}"
  [[ -n "$list" ]] || { echo "launch: under SLURM, neither MASTER_ADDR nor SLURM_JOB_NODELIST names the master host" >&2; exit 2; }
  first_host "$list"
}

nproc=1; nnodes=1; node_rank=0; master_addr=127.0.0.1; master_port="${MASTER_PORT:-29500}"
nproc_given=0; nnodes_given=0; node_rank_given=0; master_given=0
# What each value's error names: the flag as the user spelled it, or the variable it came from.
nproc_from=--nproc_per_node; nnodes_from=--nnodes; node_rank_from=--node_rank; master_port_from=--master_port
[[ -n "${MASTER_PORT:-}" ]] && master_port_from=MASTER_PORT
# torchrun's spellings: --nproc_per_node or --nproc-per-node (any option, _ or -), with =VALUE or VALUE.
while [[ $# -gt 0 ]]; do
  [[ "$1" == --* ]] || break
  flag="${1%%=*}"
  name="${flag#--}"; name="${name//-/_}"
  case "$name" in
    standalone) shift; continue ;;
    nproc_per_node|nnodes|node_rank|master_addr|master_port) ;;
    *) echo "launch: unknown option $flag (launch options: --nproc_per_node, --nnodes, --node_rank, --master_addr, --master_port, --standalone)" >&2; exit 2 ;;
  esac
  if [[ "$1" == *=* ]]; then
    value="${1#*=}"; shift
  else
    [[ $# -ge 2 && "$2" != --* ]] || { echo "launch: $flag needs a value ($flag=VALUE or $flag VALUE)" >&2; exit 2; }
    value="$2"; shift 2
  fi
  case "$name" in
    nproc_per_node) nproc="$value"; nproc_given=1; nproc_from="$flag" ;;
    nnodes) nnodes="$value"; nnodes_given=1; nnodes_from="$flag" ;;
    node_rank) node_rank="$value"; node_rank_given=1; node_rank_from="$flag" ;;
    master_addr) master_addr="$value"; master_given=1 ;;
    master_port) master_port="$value"; master_port_from="$flag" ;;
  esac
done
[[ $# -gt 0 ]] || { echo "launch: no command (e.g. train ...)" >&2; exit 2; }

if [[ -n "${SLURM_PROCID:-}" && -z "${RANK:-}" ]]; then
  if (( ! nproc_given )); then
    # srun with one task per GPU: this task is one rank
    [[ -n "${SLURM_NTASKS:-}" ]] || { echo "launch: SLURM_PROCID is set but SLURM_NTASKS is not" >&2; exit 2; }
    export RANK="$SLURM_PROCID" WORLD_SIZE="$SLURM_NTASKS" LOCAL_RANK="${SLURM_LOCALID:-0}"
    MASTER_ADDR="$(slurm_master)" || exit 2
    export MASTER_ADDR MASTER_PORT="$master_port"
    exec "$root/scripts/gpt2" "$@"
  fi
  # one launcher per node
  (( nnodes_given )) || { nnodes="${SLURM_NNODES:-1}"; nnodes_from=SLURM_NNODES; }
  (( node_rank_given )) || { node_rank="${SLURM_NODEID:-0}"; node_rank_from=SLURM_NODEID; }
  if (( ! master_given )); then master_addr="$(slurm_master)" || exit 2; fi
fi
# A positive whole number (0 ranks would start nothing and report success).
positive() { [[ "$1" =~ ^[0-9]+$ ]] && (( 10#$1 >= 1 )); }
positive "$nproc" || { echo "launch: $nproc_from must be a whole number of at least 1, got '$nproc'" >&2; exit 2; }
positive "$nnodes" || { echo "launch: $nnodes_from must be a whole number of at least 1, got '$nnodes'" >&2; exit 2; }
[[ "$node_rank" =~ ^[0-9]+$ ]] && (( 10#$node_rank < 10#$nnodes )) \
  || { echo "launch: $node_rank_from must be a whole number from 0 to $((10#$nnodes - 1)) ($nnodes_from is $nnodes), got '$node_rank'" >&2; exit 2; }
[[ "$master_port" =~ ^[0-9]+$ ]] && (( 10#$master_port >= 1 && 10#$master_port <= 65535 )) \
  || { echo "launch: $master_port_from must be a port number from 1 to 65535, got '$master_port'" >&2; exit 2; }
[[ -n "$master_addr" ]] || { echo "launch: --master_addr must name a host, got ''" >&2; exit 2; }
nproc=$((10#$nproc)); nnodes=$((10#$nnodes)); node_rank=$((10#$node_rank)); master_port=$((10#$master_port))
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
