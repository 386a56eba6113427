#!/usr/bin/env bash
# ResNet-50 (CIFAR stem, 100 classes) training throughput of spottrain's Go loop against PyTorch
# eager on the same GPU, batch, precision and memory format, side by side in one run, with the
# fraction of the GPU's peak FLOP/s (7.8 GFLOP per image per training step).
# Env: BATCH (256), ROUNDS (2), PYTHON (python3), GOFLAGS_TAGS (-tags cuda),
#      PEAK_BF16 / PEAK_FP32 in TFLOP/s (H100 SXM dense: 989 bf16, 495 tf32).
set -euo pipefail
cd "$(dirname "$0")/../.."
BATCH=${BATCH:-256}
ROUNDS=${ROUNDS:-2}
PYTHON=${PYTHON:-python3}
read -ra TAGS <<<"${GOFLAGS_TAGS:--tags cuda}"
PEAK_BF16=${PEAK_BF16:-989}
PEAK_FP32=${PEAK_FP32:-495}
go test "${TAGS[@]}" -c -o /tmp/spottrain-torch.test ./torch/
for mode in fp32:0 bf16:1; do
	name=${mode%:*} bf16=${mode#*:}
	peak=$PEAK_FP32
	[[ $bf16 == 1 ]] && peak=$PEAK_BF16
	pyflags=(--device cuda --batch "$BATCH" --channels-last --seconds 10)
	[[ $bf16 == 1 ]] && pyflags+=(--bf16)
	go_best=0 py_best=0
	for _ in $(seq "$ROUNDS"); do
		g=$(SPOTTRAIN_BENCH_DEVICE=cuda SPOTTRAIN_BENCH_BATCH=$BATCH SPOTTRAIN_BENCH_BF16=$bf16 SPOTTRAIN_BENCH_CHANNELS_LAST=1 \
			/tmp/spottrain-torch.test -test.run '^$' -test.bench ResNet50Step -test.benchtime 10s |
			awk '/ResNet50Step/ {for (i=1;i<=NF;i++) if ($i=="images/s") print $(i-1)}')
		p=$($PYTHON scripts/bench/resnet_step.py "${pyflags[@]}" | awk '{print $2}')
		echo "$name channels_last batch $BATCH: Go $g images/s, PyTorch $p images/s" >&2
		go_best=$(echo "$g $go_best" | awk '{print ($1 > $2) ? $1 : $2}')
		py_best=$(echo "$p $py_best" | awk '{print ($1 > $2) ? $1 : $2}')
	done
	awk -v n="$name" -v g="$go_best" -v p="$py_best" -v peak="$peak" -v b="$BATCH" 'BEGIN {
		printf "%s, channels_last, batch %d: spottrain %.0f images/s, PyTorch eager %.0f images/s, ratio %.3fx; %.1f%% of %d TFLOP/s peak (PyTorch %.1f%%)\n",
			n, b, g, p, g / p, 100 * g * 7.8 / 1000 / peak, peak, 100 * p * 7.8 / 1000 / peak
	}'
done
