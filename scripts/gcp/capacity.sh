#!/usr/bin/env bash
# capacity.sh: which zones can take the spot VM: whether each zone of ZONES offers GPU_TYPE, and
# the preemptible GPU quota of its region (limit, usage, free). Prints a table and, on the last
# line, the first zone (in the order of ZONES) that offers the GPU with GPU_COUNT free:
#
#   $ PROJECT=my-project scripts/gcp/capacity.sh
#   ZONE            GPU  QUOTA                       LIMIT  USAGE   FREE
#   us-central1-a   yes  PREEMPTIBLE_NVIDIA_L4_GPUS      1      1      0
#   us-east4-a      yes  NVIDIA_L4_GPUS                  8      0      8
#   zone: us-east4-a
#
#   ZONE=$(scripts/gcp/capacity.sh | sed -n 's/^zone: //p')
#
# Spot VMs use the region's preemptible quota (PREEMPTIBLE_<GPU>_GPUS, e.g.
# PREEMPTIBLE_NVIDIA_L4_GPUS for nvidia-l4) when the project has some, and the regular quota
# (NVIDIA_L4_GPUS) otherwise: a preemptible metric that is absent or 0 falls back to the regular
# one. QUOTA_METRIC names the regular metric when the rule "upper case, - to _, without TESLA_"
# gets it wrong. The project-wide GPUS_ALL_REGIONS quota may limit too; it is not checked.
# Free quota is not free capacity: a zone can still answer ZONE_RESOURCE_POOL_EXHAUSTED.
#
# Settings (environment, see common.sh): PROJECT, GPU_TYPE (default nvidia-l4), GPU_COUNT
# (default 1), ZONES (space-separated; default: us-central1, us-east1, us-east4, us-west1,
# europe-west1 and europe-west4 zones), QUOTA_METRIC.
# Exit status: 0 a zone fits (the last line names it), 1 none fits or gcloud failed, 2 a setting
# is missing or invalid.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

no_args "$@"
load_settings

DEFAULT_ZONES="us-central1-a us-central1-b us-central1-c us-central1-f us-east1-b us-east1-c us-east1-d us-east4-a us-east4-b us-east4-c us-west1-a us-west1-b europe-west1-b europe-west1-c europe-west4-a europe-west4-b europe-west4-c"
read -r -d '' -a zones <<<"${ZONES:-$DEFAULT_ZONES}" || true
if [ "${#zones[@]}" -eq 0 ]; then
	die "ZONES is empty"
fi
for zone in "${zones[@]}"; do
	check_zone ZONES "$zone"
done

if [ -n "${QUOTA_METRIC:-}" ]; then
	if ! [[ $QUOTA_METRIC =~ ^[A-Z0-9_]+$ ]]; then
		die "QUOTA_METRIC must be a quota metric like NVIDIA_L4_GPUS (got '$QUOTA_METRIC')"
	fi
	metric=$QUOTA_METRIC
else
	metric=$(printf '%s' "$GPU_TYPE" | sed 's/-tesla-/-/' | tr 'a-z-' 'A-Z_')_GPUS
fi
preemptible_metric=PREEMPTIBLE_$metric

# The zones offering GPU_TYPE, one per line.
offered=$(gcloud compute accelerator-types list --project="$PROJECT" --filter="name=$GPU_TYPE" \
	--format='value(zone.basename())') ||
	fail "listing the zones that offer $GPU_TYPE failed (gcloud compute accelerator-types list)"

# quota REGION: sets q_metric, q_limit, q_usage from the region's quotas (q_metric "-" when the
# region has neither metric; q_limit "?" when the region cannot be read).
quota_region=""
quota() {
	if [ "$1" = "$quota_region" ]; then
		return
	fi
	quota_region=$1
	q_metric=- q_limit=0 q_usage=0
	local lines m l u p_limit="" p_usage="" r_limit="" r_usage=""
	if ! lines=$(gcloud compute regions describe "$1" --project="$PROJECT" --flatten=quotas \
		--format='value(quotas.metric,quotas.limit,quotas.usage)'); then
		printf '%s: cannot read the quotas of region %s\n' "$PROG" "$1" >&2
		q_limit='?' q_usage='?'
		return
	fi
	while IFS=$'\t' read -r m l u; do
		l=${l%%.*} u=${u%%.*} # gcloud prints 8.0
		case $m in
		"$preemptible_metric") p_limit=$l p_usage=$u ;;
		"$metric") r_limit=$l r_usage=$u ;;
		esac
	done <<<"$lines"
	if [ -n "$p_limit" ] && [ "$p_limit" != 0 ]; then
		q_metric=$preemptible_metric q_limit=$p_limit q_usage=$p_usage
	elif [ -n "$r_limit" ]; then
		q_metric=$metric q_limit=$r_limit q_usage=$r_usage
	elif [ -n "$p_limit" ]; then
		q_metric=$preemptible_metric q_limit=0 q_usage=${p_usage:-0}
	fi
}

row() { printf '%-16s %-4s %-27s %6s %6s %6s\n' "$@"; }
row ZONE GPU QUOTA LIMIT USAGE FREE
chosen=""
for zone in "${zones[@]}"; do
	gpu=no
	if grep -qx -- "$zone" <<<"$offered"; then # (a pipe into grep -q may die of SIGPIPE: pipefail)
		gpu=yes
	fi
	quota "${zone%-*}"
	free='?'
	if [[ $q_limit =~ ^[0-9]+$ && $q_usage =~ ^[0-9]+$ ]]; then
		free=$((q_limit - q_usage))
		if [ "$free" -lt 0 ]; then
			free=0
		fi
	fi
	row "$zone" "$gpu" "$q_metric" "$q_limit" "$q_usage" "$free"
	if [ -z "$chosen" ] && [ "$gpu" = yes ] && [[ $free =~ ^[0-9]+$ ]] && [ "$free" -ge "$GPU_COUNT" ]; then
		chosen=$zone
	fi
done

if [ -z "$chosen" ]; then
	fail "no zone of ZONES offers $GPU_TYPE with $GPU_COUNT free GPU quota ($preemptible_metric or $metric); request quota (IAM & Admin > Quotas) or try other ZONES"
fi
printf 'zone: %s\n' "$chosen"
