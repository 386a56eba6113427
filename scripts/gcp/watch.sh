#!/usr/bin/env bash
# watch.sh: keeps the spot VM going until the run is complete. Every WATCH_INTERVAL seconds:
# 1. reads the run's event log in the bucket (gs://BUCKET/REMOTE_PREFIX/RUN_DIR/events.jsonl,
#    uploaded by the trainer after each checkpoint and at exit): when its last line is an exit
#    event with code 0, the run is complete: prints "run complete", runs teardown.sh (the VM
#    only) if TEARDOWN=1 and exits 0. Code 2 (spottrain refused its input) cannot be cured by
#    starting again: exits 1.
# 2. reads the VM's status: TERMINATED or STOPPED (preempted, and stopped by
#    --instance-termination-action=STOP) means `gcloud compute instances start`; the startup
#    script then starts the container, which resumes. A failed start (ZONE_RESOURCE_POOL_EXHAUSTED:
#    no spot capacity now) is retried after START_BACKOFF seconds, doubled after each failure up
#    to START_BACKOFF_MAX. After START_RETRIES failures in a row, with FALLBACK_ZONES set, the VM
#    is deleted and created again in the next fallback zone (create-vm.sh, so IMAGE and the other
#    create settings are needed): its fresh disk resumes from the bucket. Without fallback zones
#    it goes on retrying.
# One timestamped line per action or change. Run it where it can stay up (tmux, a small VM,
# Cloud Shell), e.g.:
#
#   PROJECT=my-project BUCKET=my-ckpts FALLBACK_ZONES="us-east4-a europe-west4-a" IMAGE=... \
#     TEARDOWN=1 scripts/gcp/watch.sh
#
# Settings (environment, see common.sh): BUCKET (required), PROJECT, ZONE, VM_NAME, EXPERIMENT,
# RUN_DIR, REMOTE_PREFIX, WATCH_INTERVAL (default 60), START_RETRIES (default 5), START_BACKOFF
# (default 30), START_BACKOFF_MAX (default 600), FALLBACK_ZONES (space-separated zones, default
# none), TEARDOWN (1: delete the VM when the run is complete; default 0), and with FALLBACK_ZONES
# what create-vm.sh needs (IMAGE, TRAIN_ARGS, DATA, ...).
# Exit status: 0 the run is complete, 1 the run failed with exit 2, the VM is missing, or it
# could not be created in any fallback zone, 2 a setting is missing or invalid.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

no_args "$@"
load_settings
require BUCKET "the bucket that holds the run's checkpoints and event log"
WATCH_INTERVAL=${WATCH_INTERVAL:-60}
START_RETRIES=${START_RETRIES:-5}
START_BACKOFF=${START_BACKOFF:-30}
START_BACKOFF_MAX=${START_BACKOFF_MAX:-600}
TEARDOWN=${TEARDOWN:-0}
check_int WATCH_INTERVAL 0
check_int START_RETRIES 1
check_int START_BACKOFF 0
check_int START_BACKOFF_MAX 0
check_int TEARDOWN 0 1
fallback=()
read -r -d '' -a fallback <<<"${FALLBACK_ZONES:-}" || true
for zone in ${fallback[@]+"${fallback[@]}"}; do
	check_zone FALLBACK_ZONES "$zone"
done
if [ "${#fallback[@]}" -gt 0 ]; then
	require IMAGE "FALLBACK_ZONES recreates the VM with create-vm.sh, which needs the image"
fi
export ZONE VM_NAME

# check_run: exits when the remote event log says the run ended for good.
last_exit=""
check_run() {
	local events line code
	events=$(gcloud storage cat "$EVENTS_URL" --project="$PROJECT" 2>/dev/null) || return 0
	line=$(printf '%s\n' "$events" | awk 'NF { last = $0 } END { print last }')
	local type_re='"type"[[:space:]]*:[[:space:]]*"exit"' code_re='"code"[[:space:]]*:[[:space:]]*(-?[0-9]+)'
	if ! [[ $line =~ $type_re ]] || ! [[ $line =~ $code_re ]]; then
		return 0
	fi
	code=${BASH_REMATCH[1]}
	case $code in
	0)
		log "run complete: $line"
		if [ "$TEARDOWN" = 1 ]; then
			log "TEARDOWN=1: deleting VM $VM_NAME in $ZONE"
			"$GCP_DIR/teardown.sh"
		fi
		exit 0
		;;
	2)
		log "the trainer refused its input (exit 2), starting it again would not help: $line"
		fail "run failed with exit 2 (bad input): see the event log $EVENTS_URL; fix the settings and create the VM again"
		;;
	esac
	if [ "$line" != "$last_exit" ]; then
		last_exit=$line
		log "last exit in the event log: code $code ($line)"
	fi
}

# move_vm: deletes the VM and creates it in the next fallback zone that takes it.
next_fallback=0
move_vm() {
	local out
	log "giving up on $ZONE after $START_RETRIES failed starts: deleting VM $VM_NAME there"
	if ! out=$(gcloud compute instances delete "$VM_NAME" --project="$PROJECT" --zone="$ZONE" --quiet 2>&1) &&
		! gcloud_not_found "$out"; then
		printf '%s\n' "$out" >&2
		fail "deleting VM $VM_NAME in $ZONE failed"
	fi
	while [ "$next_fallback" -lt "${#fallback[@]}" ]; do
		ZONE=${fallback[$next_fallback]}
		next_fallback=$((next_fallback + 1))
		log "creating VM $VM_NAME in fallback zone $ZONE (it resumes from $REMOTE)"
		if "$GCP_DIR/create-vm.sh"; then
			log "VM $VM_NAME now runs in $ZONE (use ZONE=$ZONE for teardown.sh or a new watch.sh)"
			return 0
		fi
		log "creating VM $VM_NAME in $ZONE failed"
	done
	fail "no fallback zone took VM $VM_NAME; the checkpoints are safe in $REMOTE/$RUN_DIR: create the VM later (create-vm.sh)"
}

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT

log "watching VM $VM_NAME in $ZONE and the event log $EVENTS_URL every ${WATCH_INTERVAL}s"
failures=0
backoff=$START_BACKOFF
last_status=""
while :; do
	check_run
	if ! status=$(gcloud compute instances describe "$VM_NAME" --project="$PROJECT" --zone="$ZONE" --format='value(status)' 2>"$errors"); then
		if gcloud_not_found "$(cat "$errors")"; then
			fail "VM $VM_NAME not found in $ZONE (deleted? moved to a fallback zone by an earlier watch.sh? set ZONE)"
		fi
		log "reading the VM's status failed: $(awk 'NF { last = $0 } END { print last }' "$errors")"
		sleep "$WATCH_INTERVAL"
		continue
	fi
	if [ "$status" != "$last_status" ]; then
		log "VM $VM_NAME in $ZONE is $status"
		last_status=$status
	fi
	case $status in
	TERMINATED | STOPPED)
		log "starting VM $VM_NAME in $ZONE"
		if out=$(gcloud compute instances start "$VM_NAME" --project="$PROJECT" --zone="$ZONE" 2>&1); then
			log "started VM $VM_NAME"
			failures=0
			backoff=$START_BACKOFF
			last_status=""
		else
			failures=$((failures + 1))
			reason=$(printf '%s\n' "$out" | grep -m 1 -o 'ZONE_RESOURCE_POOL_EXHAUSTED[A-Z_]*' || printf '%s\n' "$out" | awk 'NF { last = $0 } END { print last }')
			log "start failed ($failures of $START_RETRIES): $reason"
			if [ "$failures" -ge "$START_RETRIES" ] && [ "$next_fallback" -lt "${#fallback[@]}" ]; then
				move_vm
				failures=0
				backoff=$START_BACKOFF
				last_status=""
			else
				log "retrying in ${backoff}s"
				sleep "$backoff"
				backoff=$((backoff * 2))
				if [ "$backoff" -gt "$START_BACKOFF_MAX" ]; then
					backoff=$START_BACKOFF_MAX
				fi
				continue
			fi
		fi
		;;
	esac
	sleep "$WATCH_INTERVAL"
done
