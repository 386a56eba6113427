#!/usr/bin/env bash
# GPU checks, on a machine with an NVIDIA GPU and a CUDA libtorch (CGO flags from LIBTORCH through
# the Makefile, or from ../shared/gpu/env.sh): builds with -tags cuda, runs the test suite (the torch
# tests on CUDA), preempts a demo run on CUDA and resumes it there and on the CPU, runs the GPU
# benchmarks, and prints a summary. Logs go to $OUT (default /tmp/gpu-check).
# Env: PYTHON (a python3 with the same PyTorch; default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
summary=()
stage() { # stage NAME CMD...: runs CMD, logs to $OUT/NAME.log, records PASS/FAIL
	local name=$1; shift
	local t0=$SECONDS
	if "$@" >"$OUT/$name.log" 2>&1; then
		summary+=("PASS $name ($((SECONDS - t0)) s)")
	else
		summary+=("FAIL $name ($((SECONDS - t0)) s): see $OUT/$name.log")
		tail -20 "$OUT/$name.log"
	fi
}
nvidia-smi -L
go version

stage vet go vet -tags cuda ./...
stage torch-tests-cuda env SPOTTRAIN_TEST_DEVICE=cuda go test -tags cuda -count=1 -v ./torch/
stage all-tests env SPOTTRAIN_TEST_PYTHON="$(command -v "$PYTHON")" go test -tags cuda -count=1 ./...
stage build go build -tags cuda -o bin/spottrain ./cmd/spottrain

# A demo run on CUDA, preempted once by SIGTERM, resumed on CUDA, preempted again, resumed on the
# CPU (a config change: --force), then finished on CUDA.
preempt() { # preempt RUN_DIR DEVICE STEP [FLAGS]: start, SIGTERM after "step STEP/", expect 75
	local dir=$1 dev=$2 step=$3; shift 3
	bin/spottrain train --config configs/lstm-solar.yaml --set run_dir="$dir" --set device="$dev" \
		--set train.log_every=10 "$@" >"$OUT/preempt-$dev-$step.out" 2>&1 &
	local pid=$!
	until grep -q "^step $step/" "$OUT/preempt-$dev-$step.out" 2>/dev/null; do
		kill -0 $pid 2>/dev/null || { echo "exited before step $step"; cat "$OUT/preempt-$dev-$step.out"; return 1; }
		sleep 0.2
	done
	kill -TERM $pid
	wait $pid
	local code=$?
	cat "$OUT/preempt-$dev-$step.out"
	[[ $code == 75 ]] || { echo "exit $code, want 75"; return 1; }
}
resume_demo() {
	local dir=$OUT/run
	rm -rf "$dir"
	preempt "$dir" cuda 200 && preempt "$dir" cuda 600 && preempt "$dir" cpu 700 --force &&
		bin/spottrain train --config configs/lstm-solar.yaml --set run_dir="$dir" --set device=cuda --force &&
		bin/spottrain ckpt verify "$dir" && grep -E '"(signal_to_exit_ms|resume)"' "$dir/events.jsonl" | head
}
stage demo-preempt-resume resume_demo

stage bench-lstm-cuda bash -c "SPOTTRAIN_BENCH_DEVICE=cuda go test -tags cuda -run '^\$' -bench LSTMStep -benchtime 3s -count 3 ./torch/ && for i in 1 2 3; do $PYTHON scripts/bench/lstm_step.py --device cuda; done"
stage bench-checkpoint go test -tags cuda -run '^$' -bench Checkpoint -benchtime 5x ./train/

echo
echo "== gpu-check summary =="
printf '%s\n' "${summary[@]}"
grep -hE '^Benchmark|python_steps_per_s' "$OUT"/bench-*.log
[[ "${summary[*]}" != *FAIL* ]]
