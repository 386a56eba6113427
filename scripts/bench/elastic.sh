#!/usr/bin/env bash
# Issue 17: the time a lost machine costs a group of 2 machines (one rank each, here both on
# 127.0.0.1), with an elastic group (distributed.min_nodes=1: the survivor goes on alone from the
# newest committed checkpoint, without a restart) against a static one (min_nodes=0: every machine
# exits 75 and the job is started again from that checkpoint, here at once, on both machines, the
# best case of a restart: no VM to wait for). In each round, node 1's launcher is SIGKILLed once
# node 0 has committed the checkpoint of step KILL_AFTER and trained 5 steps beyond it; the time
# lost is from the kill until the job's newest progress event is again at the step it had reached
# when the machine was lost, read from node 0's events.jsonl. Each number is the median of ROUNDS
# rounds; static and elastic rounds alternate so that drift in the machine's load hits both.
# Env: BIN (default bin/spottrain, built if missing), ROUNDS (default 3), KILL_AFTER (default 40),
# PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/spottrain}
ROUNDS=${ROUNDS:-3}
KILL_AFTER=${KILL_AFTER:-40}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ -x $BIN ]] || go build -o "$BIN" ./cmd/spottrain
export OPENBLAS_NUM_THREADS=1
base=$(mktemp -d)
trap 'rm -rf "$base"; kill $(jobs -p) 2>/dev/null || true' EXIT
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

# node RUN MIN_NODES PORT RANK: starts node RANK's launcher in the background; $! is its pid.
node() {
  "$BIN" train --experiment lstm-ondemand --nnodes 2 --node-rank "$4" --master-addr 127.0.0.1 --master-port "$3" \
    --set threads=1 --set run_dir="$1/node$4" --set data.lstm.days=365 --set train.epochs=1 --set train.batch_size=32 \
    --set train.log_every=1 --set checkpoint.every_steps=10 --set checkpoint.every_seconds=0 \
    --set distributed.timeout=10s --set distributed.min_nodes="$2" --set preemption.notice=none \
    >>"$1/node$4.log" 2>&1 &
}

# events RUN: node 0's events as "time type step" lines (epoch seconds).
events() {
  "$PYTHON" - "$1/node0/events.jsonl" <<'EOF'
import json, sys, datetime
for line in open(sys.argv[1]):
    e = json.loads(line)
    t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")[:26] + "+00:00").timestamp()
    print(f'{t:.3f} {e["type"]} {e.get("step", e.get("at_step", -1))} {e["incarnation"]}')
EOF
}

# round MIN_NODES: one round; prints the seconds lost.
round() {
  local run=$base/r$RANDOM port n0 n1 killed at
  mkdir -p "$run"
  port=$(free_port)
  node "$run" "$1" "$port" 0; n0=$!
  node "$run" "$1" "$port" 1; n1=$!
  until [[ -f $run/node0/events.jsonl ]] && events "$run" | awk -v s=$((KILL_AFTER + 5)) '$2 == "progress" && $3 >= s {f = 1} END {exit !f}'; do
    sleep 0.05
  done
  kill -9 "$n1"; killed=$(date +%s.%N)
  wait "$n1" 2>/dev/null || true
  at=$(events "$run" | awk '$2 == "progress" {s = $3} END {print s}')
  if [[ $1 == 0 ]]; then # a static group: node 0 exits 75; both machines start again
    wait "$n0" 2>/dev/null || true
    node "$run" "$1" "$port" 0; n0=$!
    node "$run" "$1" "$port" 1; n1=$!
  fi
  until events "$run" | awk -v t="$killed" -v s="$at" '$1 > t && $2 == "progress" && $3 >= s {f = 1} END {exit !f}'; do
    sleep 0.05
  done
  events "$run" | awk -v t="$killed" -v s="$at" '$1 > t && $2 == "progress" && $3 >= s {printf "%.2f\n", $1 - t; exit}'
  kill "$n0" 2>/dev/null || true; kill "$n1" 2>/dev/null || true
  wait 2>/dev/null || true
}

static=() elastic=()
for ((i = 0; i < ROUNDS; i++)); do
  static+=("$(round 0)")
  elastic+=("$(round 1)")
  echo "round $((i + 1)): static restart ${static[-1]} s, elastic ${elastic[-1]} s" >&2
done
s=$(printf '%s\n' "${static[@]}" | median)
e=$(printf '%s\n' "${elastic[@]}" | median)
printf 'time lost to a machine lost at step %d+5 (median of %d, from the kill until the step reached is trained again):\n' "$KILL_AFTER" "$ROUNDS"
printf '  static group, restarted at once:  %6.2f s\n  elastic group, no restart:        %6.2f s   (%.2fx less)\n' "$s" "$e" "$(awk -v a="$s" -v b="$e" 'BEGIN {print a / b}')"
