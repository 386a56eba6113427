#!/usr/bin/env bash
# SIGTERM to exit with a ResNet-50-sized checkpoint: the LSTM demo with one layer of hidden 2430
# (23.8M parameters) and SGD momentum, so the state is ~190 MB. Sends SIGTERM after the 3rd step
# and reports the time until the process has exited with its emergency checkpoint durable, as
# measured here and as the run's events record it: the part spent finishing the step in progress
# (on 2 CPU cores a step of this model takes seconds; on a GPU a ResNet-50 step takes ~0.1 s) and
# the checkpoint's blocking and persist times. ROUNDS (default 3) repetitions.
# Env: BIN (default bin/spottrain, built if missing), RUN_DIR (default a temp dir: local disk).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin/spottrain}
ROUNDS=${ROUNDS:-3}
[[ -x $BIN ]] || go build -o "$BIN" ./cmd/spottrain
base=${RUN_DIR:-$(mktemp -d)}
for r in $(seq "$ROUNDS"); do
	dir=$base/sigterm-$r
	rm -rf "$dir"
	log=$(mktemp)
	"$BIN" demo --set run_dir="$dir" --set model.lstm.hidden_size=2430 --set model.lstm.num_layers=1 \
		--set optimizer.name=sgd --set optimizer.momentum=0.9 --set data.lstm.days=30 \
		--set data.lstm.lookback_hours=24 --set train.batch_size=2 --set train.log_every=1 \
		--set checkpoint.every_seconds=0 >"$log" 2>&1 &
	pid=$!
	until grep -q '^step 3/' "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
		sleep 0.05
	done
	t0=$(date +%s%N)
	kill -TERM $pid
	code=0
	wait $pid || code=$?
	t1=$(date +%s%N)
	[[ $code == 75 ]] || { echo "exit $code, want 75"; cat "$log"; exit 1; }
	size=$(du -sm "$dir"/step-* | awk '{print $1}')
	event_ms=$(grep '"type":"exit"' "$dir/events.jsonl" | sed 's/.*"signal_to_exit_ms":\([0-9]*\).*/\1/')
	step_ms=$(grep '"type":"signal_received"' "$dir/events.jsonl" | sed 's/.*"wait_ms":\([0-9]*\).*/\1/')
	commit=$(grep '"type":"emergency_checkpoint"' "$dir/events.jsonl" | sed 's/.*"blocking_ms":\([0-9.]*\).*"persist_ms":\([0-9.]*\).*/blocking \1 ms, persist \2 ms/')
	printf 'round %d: SIGTERM to exit %d ms (exit event: %s ms, of which %s ms finishing the step in progress; checkpoint %s MB: %s)\n' \
		"$r" $(((t1 - t0) / 1000000)) "$event_ms" "$step_ms" "$size" "$commit"
	rm -f "$log"
	[[ -n ${RUN_DIR:-} ]] || rm -rf "$dir"
done
[[ -n ${RUN_DIR:-} ]] || rm -rf "$base"
