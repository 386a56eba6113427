#!/usr/bin/env bash
# The job-size study of docs/study/nodes.md: a tiny LSTM trained as a job of 1, 2 and 4 simulated
# machines (interrupts.machines: a rank per machine, all on this box, each machine interrupted on
# its own by the Poisson pattern at 1 per machine-hour), under each checkpoint strategy, with
# repetitions and an on-demand baseline per size; then the report, with the model of savings and
# break-even for 1 to 256 machines fitted to these runs. Runs that completed are skipped. About
# 15 minutes on 2 cores (REPS=6 MACHINES="1 2" then adds 3 repetitions at 1 and 2 machines in 4).
#
#   scripts/study-nodes.sh [RUNS_DIR] [OUT_DIR]     defaults: study-runs/nodes docs/study/nodes
#   REPS=3 MACHINES="1 2 4" scripts/study-nodes.sh
set -euo pipefail

runs=${1:-study-runs/nodes}
out=${2:-docs/study/nodes}
reps=${REPS:-3}
machines=${MACHINES:-1 2 4}
bin=${SPOTTRAIN:-bin/spottrain}

# The tiny job: 480 steps of a 32-unit LSTM on a year of synthetic PV data, one thread per rank.
tiny=()
for kv in device=cpu threads=1 data.lstm.days=365 data.lstm.lookback_hours=24 data.lstm.horizon_hours=6 \
  model.lstm.hidden_size=32 model.lstm.num_layers=1 train.epochs=20 train.batch_size=256 train.log_every=5 \
  preemption.notice=none distributed.timeout=5s; do
  tiny+=(--set "$kv")
done
for n in $machines; do
  "$bin" batch lstm-ondemand lstm-fixed-poisson lstm-adaptive-poisson lstm-milestone-poisson --reps "$reps" \
    --runs-dir "$runs/m$n" "${tiny[@]}" --set "interrupts.machines=$n"
done
"$bin" analyze "$runs" --out "$out" --gpu nvidia-l4
