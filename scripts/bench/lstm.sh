#!/usr/bin/env bash
# Runs the LSTM training-step benchmark of the Go loop, a pure C++ loop and PyTorch eager on the same
# libtorch, sizes and thread count, and prints steps/s of each and the ratios.
# Env: THREADS (default 2), ROUNDS (default 3: the best of each is kept), GO, GOFLAGS_TAGS, PYTHON.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
best() { sort -g | tail -1; }
# Debian's OpenBLAS starts its own threads inside each libtorch thread: 2 x 2 threads on 2 cores make
# PyTorch ~5x slower here. One BLAS thread per libtorch thread for every contender.
export OPENBLAS_NUM_THREADS=1
# Rounds interleave the contenders so that drift in machine load hits all of them alike.
go_rates=() cpp_rates=() py_rates=()
for _ in $(seq "$ROUNDS"); do
	# shellcheck disable=SC2086 # GOFLAGS_TAGS is "" or "-tags NAME": two words on purpose
	out=$(SPOTTRAIN_BENCH_THREADS=$THREADS $GO test ${GOFLAGS_TAGS:-} -run '^$' -bench 'BenchmarkLSTMStep' -benchtime 3s -count 1 ./torch/)
	echo "$out" | grep -E '^Benchmark' >&2
	go_rates+=("$(echo "$out" | awk '/LSTMStep\/go/ {for (i=1;i<=NF;i++) if ($i=="steps/s") print $(i-1)}')")
	cpp_rates+=("$(echo "$out" | awk '/LSTMStep\/cpp/ {for (i=1;i<=NF;i++) if ($i=="steps/s") print $(i-1)}')")
	py=$(OMP_NUM_THREADS=$THREADS $PYTHON scripts/bench/lstm_step.py --threads "$THREADS")
	echo "$py" >&2
	py_rates+=("$(echo "$py" | awk '{print $2}')")
done
go_rate=$(printf '%s\n' "${go_rates[@]}" | best)
cpp_rate=$(printf '%s\n' "${cpp_rates[@]}" | best)
py_rate=$(printf '%s\n' "${py_rates[@]}" | best)
awk -v g="$go_rate" -v c="$cpp_rate" -v p="$py_rate" -v t="$THREADS" 'BEGIN {
	printf "LSTM train step (batch 64, lookback 48, 8 features, hidden 64, 2 layers, horizon 24, Adam, clip 1.0), %d threads, best of rounds\n", t
	printf "%-26s %10.1f steps/s\n", "Go loop (spottrain)", g
	printf "%-26s %10.1f steps/s\n", "C++ loop (same shim)", c
	printf "%-26s %10.1f steps/s\n", "PyTorch eager (python3)", p
	printf "Go / PyTorch: %.3fx   Go / C++: %.3fx (%.1f%% slower)\n", g / p, g / c, 100 * (1 - g / c)
}'
