#!/usr/bin/env bash
# Data-parallel training on this machine (issue 16), measured through the CLI, each number the median
# of ROUNDS runs read from the run's events.jsonl (scripts/bench/dist_events.py), printed as ratios
# against their targets:
#   - scaling: samples/s of 2 ranks x 1 thread against 1 rank x 1 thread (--nproc-per-node 2 against
#     1) for the LSTM (lstm-ondemand) at two global batches, where compute dominates, and for
#     resnet-small; samples/s over the steady state (progress events after the first interval,
#     intervals with an evaluation or checkpoint left out); target >= 1.8x;
#   - collective efficiency of the 2-rank runs: group_stats' bare_ms / reduce_ms (a bare allreduce of
#     the gradients' bytes against the sums inside the step, which include waiting for the slower
#     rank); target >= 90%;
#   - overhead of a 1-process group (one worker with torchrun's variables set by hand, hosting the
#     TCPStore) against the same run without them; target <= 3%;
#   - notice -> exit: SIGTERM to one worker of a 2-rank LSTM run once it trains; the time from the
#     kill to the launcher's exit, and the exit event's signal_to_exit_ms, against the step in
#     progress; target <= 1 s beyond it; the status must be 75 with an emergency checkpoint.
# Runs are serial and interleaved (1 rank, 2 ranks, ...) so that drift in the machine's load hits
# both alike; the load average is printed at the start and the end. 2.5 minutes on 2 quiet cores,
# up to 6.5 under a load average of 5.
# Env: BIN (default bin/spottrain, built if missing), ROUNDS (default 3), RUN_DIR (default a temp
# dir, removed), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/spottrain}
ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ -x $BIN ]] || go build -o "$BIN" ./cmd/spottrain
# Debian's OpenBLAS starts its own threads inside each libtorch thread: one each, as threads=1 says.
export OPENBLAS_NUM_THREADS=1
base=${RUN_DIR:-$(mktemp -d)}
mkdir -p "$base"
runs=0
ev() { "$PYTHON" scripts/bench/dist_events.py "$@"; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# train NPROC EXPERIMENT BATCH STEPS LOG_EVERY [VAR=value...]: a fresh run of 1-thread ranks, no
# periodic checkpoint; sets $dir to its run dir. NPROC 0: one process, launched without the flag,
# with the variables given (a group set by hand).
train() {
	local np=$1 exp=$2 batch=$3 steps=$4 every=$5
	shift 5
	runs=$((runs + 1))
	dir=$base/run-$runs
	local flag=()
	[[ $np == 0 ]] || flag=(--nproc-per-node "$np")
	if ! env "$@" "$BIN" train --experiment "$exp" "${flag[@]}" --set run_dir="$dir" --set threads=1 \
		--set train.batch_size="$batch" --set train.max_steps="$steps" --set train.log_every="$every" \
		--set checkpoint.every_seconds=0 >"$dir.log" 2>&1; then
		echo "run $dir failed:" >&2
		tail -20 "$dir.log" >&2
		exit 1
	fi
}

echo "machine: $(nproc) cores, $(uname -m), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# scale NAME EXPERIMENT BATCH STEPS LOG_EVERY: samples/s of 1 rank and 2 ranks, and the 2-rank
# runs' allreduce times.
scale() {
	local name=$1 exp=$2 batch=$3 steps=$4 every=$5 one=() two=() eff=() ms1=() ms2=()
	for _ in $(seq "$ROUNDS"); do
		train 1 "$exp" "$batch" "$steps" "$every"
		read -r r ms < <(ev rate "$dir/events.jsonl" "$batch" 1)
		one+=("$r") ms1+=("$ms")
		train 2 "$exp" "$batch" "$steps" "$every"
		read -r r ms < <(ev rate "$dir/events.jsonl" "$batch" 1)
		two+=("$r") ms2+=("$ms")
		read -r reduce bare < <(ev group "$dir/events.jsonl")
		eff+=("$(ratio "$bare" "$reduce") $reduce $bare")
	done
	local r1 r2 e
	r1=$(printf '%s\n' "${one[@]}" | median)
	r2=$(printf '%s\n' "${two[@]}" | median)
	e=$(printf '%s\n' "${eff[@]}" | sort -g | awk -v n="${#eff[@]}" 'NR == int((n + 1) / 2)')
	printf '%-34s 1 rank %8.1f samples/s (%6.1f ms/step)  2 ranks %8.1f samples/s (%6.1f ms/step)  2 ranks / 1 rank: %sx (target >= 1.8x)\n' \
		"$name" "$r1" "$(printf '%s\n' "${ms1[@]}" | median)" "$r2" "$(printf '%s\n' "${ms2[@]}" | median)" "$(ratio "$r2" "$r1")"
	echo "  rounds (samples/s): 1 rank ${one[*]}; 2 ranks ${two[*]}"
	read -r ef reduce bare <<<"$e"
	printf '%-34s allreduce in the step %.2f ms, bare %.2f ms: efficiency %.1f%% (target >= 90%%)\n' \
		"  $name, 2 ranks" "$reduce" "$bare" "$(awk -v x="$ef" 'BEGIN {print 100 * x}')"
}

echo
echo "Scaling: samples/s of the steady state, 2 ranks x 1 thread against 1 rank x 1 thread (global batch; median of $ROUNDS)"
scale "LSTM lstm-ondemand, batch 256" lstm-ondemand 256 20 4
scale "LSTM lstm-ondemand, batch 512" lstm-ondemand 512 20 4
scale "resnet-small, batch 128" resnet-small-ondemand 128 12 3

echo
echo "Overhead of a 1-process group (WORLD_SIZE=1 RANK=0 ..., rank 0 hosts the TCPStore) against none: LSTM batch 256, 1 thread (median of $ROUNDS)"
off=() on=()
for _ in $(seq "$ROUNDS"); do
	train 0 lstm-ondemand 256 20 4
	off+=("$(ev rate "$dir/events.jsonl" 256 1 | cut -d' ' -f1)")
	train 0 lstm-ondemand 256 20 4 WORLD_SIZE=1 RANK=0 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT="$(free_port)"
	ev group "$dir/events.jsonl" >/dev/null # the group was on
	on+=("$(ev rate "$dir/events.jsonl" 256 1 | cut -d' ' -f1)")
done
r_off=$(printf '%s\n' "${off[@]}" | median)
r_on=$(printf '%s\n' "${on[@]}" | median)
echo "  rounds (samples/s): off ${off[*]}; on ${on[*]}"
printf 'group off %.1f samples/s, group on %.1f samples/s: overhead %.1f%% (target <= 3%%)\n' "$r_off" "$r_on" \
	"$(awk -v a="$r_off" -v b="$r_on" 'BEGIN {print 100 * (a / b - 1)}')"

echo
echo "Notice -> exit: SIGTERM to one worker (the last started) of a 2-rank LSTM run, batch 512, once 3 steps are logged"
runs=$((runs + 1))
dir=$base/run-$runs
"$BIN" train --experiment lstm-ondemand --nproc-per-node 2 --set run_dir="$dir" --set threads=1 \
	--set train.batch_size=512 --set train.log_every=1 --set checkpoint.every_seconds=0 >"$dir.log" 2>&1 &
pid=$!
until [[ -f $dir/events.jsonl ]] && (($(grep -c '"type":"progress"' "$dir/events.jsonl") >= 3)); do
	kill -0 $pid 2>/dev/null || { tail -20 "$dir.log"; exit 1; }
	sleep 0.02
done
worker=$(pgrep -P $pid | tail -1)
t0=$(date +%s%N)
kill -TERM "$worker"
code=0
wait $pid || code=$?
t1=$(date +%s%N)
read -r event_ms exit_code emergencies wait_ms < <(ev exit "$dir/events.jsonl")
read -r _ step_ms < <(ev rate "$dir/events.jsonl" 512 0)
kill_ms=$(((t1 - t0) / 1000000))
printf 'kill -> launcher exit %d ms; rank 0 exit event: signal_to_exit_ms %s, finishing the step %s ms; a step %.0f ms (this run)\n' \
	"$kill_ms" "$event_ms" "$wait_ms" "$step_ms"
printf 'kill -> exit less one whole step: %.0f ms (target <= 1000 ms beyond the step in progress); launcher status %d (want 75), exit event code %s, emergency checkpoints %s (want 1)\n' \
	"$(awk -v k="$kill_ms" -v s="$step_ms" 'BEGIN {print k - s}')" "$code" "$exit_code" "$emergencies"
[[ $code == 75 && $emergencies -ge 1 ]] || { echo "FAIL: want status 75 and an emergency checkpoint" >&2; tail -20 "$dir.log" >&2; exit 1; }

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $runs runs"
[[ -n ${RUN_DIR:-} ]] || rm -rf "$base"
