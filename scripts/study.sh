#!/usr/bin/env bash
# The CPU study of docs/study/: every checkpoint strategy under every interrupt pattern, with
# repetitions, for the LSTM and the small ResNet, plus the LSTM under kills only (no notice), then
# the report. Runs that completed before are skipped, so an interrupted study goes on where it
# stopped. About 90 minutes on 2 cores.
#
#   scripts/study.sh [RUNS_DIR] [OUT_DIR]     defaults: study-runs docs/study
#   REPS=3 MODELS="lstm resnet-small" scripts/study.sh
set -euo pipefail

runs=${1:-study-runs}
out=${2:-docs/study}
reps=${REPS:-3}
models=${MODELS:-lstm resnet-small}
bin=${SPOTTRAIN:-bin/spottrain}

for m in $models; do
  "$bin" batch "$m-*" --reps "$reps" --runs-dir "$runs/notice"
done
# Kills only: every interruption is a SIGKILL, so only checkpoints already written save work.
"$bin" batch 'lstm-fixed-*' 'lstm-adaptive-*' 'lstm-milestone-*' --reps "$reps" \
  --runs-dir "$runs/kill-only" --set interrupts.no_notice_share=1
# Both models priced as one GPU, so their savings compare.
"$bin" analyze "$runs" --out "$out" --gpu nvidia-l4
