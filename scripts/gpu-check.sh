#!/usr/bin/env bash
# GPU checks, on a machine with an NVIDIA GPU and a CUDA libtorch (CGO flags from LIBTORCH through
# the Makefile, or from .gpu/env.sh, packed beforehand with scripts/gpu-pack.sh): builds with -tags cuda, runs the test suite (the torch
# tests on CUDA), preempts a demo run on CUDA and resumes it there and on the CPU, runs the GPU
# benchmarks, and prints a summary. Logs go to $OUT (default /tmp/gpu-check).
# Env: PYTHON (a python3 with the same PyTorch; default python3), STAGES (a regular expression: run
# only the stages it matches; the build always runs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gpu-check}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
summary=()
stage() { # stage NAME CMD...: runs CMD, logs to $OUT/NAME.log, records PASS/FAIL
	local name=$1; shift
	[[ $name == build || $name =~ ${STAGES:-.} ]] || return 0
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
# Not scripts/...: the GCP scripts' tests need shellcheck, which a GPU machine without apt lacks.
mapfile -t pkgs < <(go list ./... | grep -v '/scripts/')
stage all-tests env SPOTTRAIN_TEST_PYTHON="$(command -v "$PYTHON")" go test -tags cuda -count=1 "${pkgs[@]}"
stage build go build -tags cuda -o bin/spottrain ./cmd/spottrain

# The LSTM on CUDA, preempted once by SIGTERM, resumed on CUDA, preempted again, resumed on the
# CPU (the device is a change that keeps resume), then finished on CUDA.
preempt() { # preempt RUN_DIR DEVICE STEP [FLAGS]: start, SIGTERM after "step STEP/", expect 75
	local dir=$1 dev=$2 step=$3; shift 3
	bin/spottrain train --experiment lstm-ondemand --set run_dir="$dir" --set device="$dev" \
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
	preempt "$dir" cuda 200 && preempt "$dir" cuda 600 && preempt "$dir" cpu 700 &&
		bin/spottrain train --experiment lstm-ondemand --set run_dir="$dir" --set device=cuda &&
		bin/spottrain ckpt verify "$dir" && grep -m 10 -E '"(signal_to_exit_ms|resume)"' "$dir/events.jsonl"
}
stage demo-preempt-resume resume_demo

# ResNet on synthetic CIFAR-shaped data: bf16 + channels_last on CUDA, preempted, resumed on the
# CPU (device and precision are changes that keep resume), preempted again, finished on CUDA.
resnet_resume() {
	local dir=$OUT/resnet-run
	rm -rf "$dir"
	local common=(--experiment resnet50-ondemand --set run_dir="$dir" --set data.source=synthetic-cifar
		--set data.resnet.synthetic_samples=4096 --set data.resnet.classes=10 --set model.resnet.width=0.25 --set train.epochs=2
		--set train.batch_size=128 --set train.log_every=2 --set schedule.warmup_steps=8)
	run_until() { # run_until DEVICE STEP PRECISION: SIGTERM after "step STEP/", expect 75
		bin/spottrain train "${common[@]}" --set device="$1" --set train.precision="$3" >"$OUT/resnet-$1-$2.out" 2>&1 &
		local pid=$!
		until grep -q "^step $2/" "$OUT/resnet-$1-$2.out" 2>/dev/null; do
			kill -0 $pid 2>/dev/null || { cat "$OUT/resnet-$1-$2.out"; return 1; }
			sleep 0.2
		done
		kill -TERM $pid
		local code=0
		wait $pid || code=$?
		cat "$OUT/resnet-$1-$2.out"
		[[ $code == 75 ]] || { echo "exit $code, want 75"; return 1; }
	}
	run_until cuda 10 bf16 && run_until cpu 12 fp32 &&
		bin/spottrain train "${common[@]}" --set device=cuda --set train.precision=bf16 &&
		bin/spottrain ckpt verify "$dir"
}
stage resnet-preempt-resume resnet_resume
stage bench-resnet env PYTHON="$PYTHON" bash scripts/bench/resnet.sh

# Process groups on the GPU (issue 16): NCCL with one rank (the variables set by hand: rank 0 hosts
# the store), two ranks with Gloo on CUDA tensors sharing the one GPU, and the ResNet-50 step with
# a one-rank NCCL group against none (the group's overhead: bucketing, the sums, the decisions).
group_gpu() {
	local common=(--experiment lstm-ondemand --set device=cuda --set train.epochs=1 --set train.log_every=20)
	rm -rf "$OUT/group-nccl" "$OUT/group-gloo2"
	WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29561 bin/spottrain train "${common[@]}" \
		--set run_dir="$OUT/group-nccl" --set distributed.backend=nccl &&
		grep -m1 group_stats "$OUT/group-nccl/events.jsonl" &&
		bin/spottrain train "${common[@]}" --set device=cuda:0 --set run_dir="$OUT/group-gloo2" \
			--nproc-per-node 2 --set distributed.backend=gloo &&
		grep -m1 group_stats "$OUT/group-gloo2/events.jsonl"
}
stage group-gpu group_gpu
resnet_group_overhead() {
	local common=(--experiment resnet50-ondemand --set data.source=synthetic-cifar --set data.resnet.synthetic_samples=8192
		--set train.epochs=1 --set train.max_steps=40 --set train.log_every=5 --set device=cuda)
	for i in 1 2; do
		rm -rf "$OUT/rn-off" "$OUT/rn-on"
		bin/spottrain train "${common[@]}" --set run_dir="$OUT/rn-off" | grep -E '^step 40/'
		WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((29570 + i)) bin/spottrain train "${common[@]}" \
			--set run_dir="$OUT/rn-on" --set distributed.backend=nccl | grep -E '^step 40/|gradient sums'
	done
}
stage bench-group-resnet resnet_group_overhead

stage bench-lstm-cuda bash -c "SPOTTRAIN_BENCH_DEVICE=cuda go test -tags cuda -run '^\$' -bench LSTMStep -benchtime 3s -count 3 ./torch/ && for i in 1 2 3; do $PYTHON scripts/bench/lstm_step.py --device cuda; done"
stage bench-checkpoint go test -tags cuda -run '^$' -bench Checkpoint -benchtime 5x ./train/

echo
echo "== gpu-check summary =="
printf '%s\n' "${summary[@]}"
grep -hE '^Benchmark|python_steps_per_s|images/s' "$OUT"/bench-*.log
[[ "${summary[*]}" != *FAIL* ]]
