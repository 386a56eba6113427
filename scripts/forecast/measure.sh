#!/usr/bin/env bash
# Trains the LSTM forecaster on the three data sets of docs/forecasting.md and evaluates each by
# daylight against the four baselines: the synthetic default, a PVGIS-format file of
# scripts/forecast/pv_history.py's own weather (G(i) and Gb/Gd/Gr variants) and the same plant as a
# generic CSV of power and temperature. Extra arguments go to every `spottrain train` (e.g.
# --set model.lstm.target=cliper_residual). OUT (default forecast-runs) receives the data, the run
# dirs and, per data set, NAME.txt with the evaluation's table and skill by horizon.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-forecast-runs}
BIN=${BIN:-bin/spottrain}
mkdir -p "$OUT"
data=$(realpath "$OUT")/data
[ -f "$data/generic.csv" ] || /usr/bin/python3 scripts/forecast/pv_history.py --out "$data" --years 3 --seed 7

# measure NAME [--set ...]: trains (or resumes) $OUT/NAME and evaluates it.
measure() {
	local name=$1
	shift
	"$BIN" train --experiment lstm-ondemand --set name="forecast-$name" --set run_dir="$OUT/$name" "$@" "${EXTRA[@]}" >"$OUT/$name.log"
	"$BIN" evaluate "$OUT/$name" | tee "$OUT/$name.txt"
}
EXTRA=("$@")
measure synthetic
measure pvgis-gi --set data.source=pvgis --set data.path="$data/pvgis-gi.csv"
measure pvgis-comp --set data.source=pvgis --set data.path="$data/pvgis-comp.csv"
measure generic --set data.source=csv --set data.path="$data/generic.csv" \
	--set data.lstm.latitude=40.42 --set data.lstm.longitude=-3.7 --set data.lstm.capacity_kw=4.2
