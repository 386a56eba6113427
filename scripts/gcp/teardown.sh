#!/usr/bin/env bash
# teardown.sh: deletes the VM (and its boot disk); a VM that is gone already is fine. With
# --delete-bucket it removes the bucket too, with every checkpoint and event log in it, after a
# confirmation read from stdin (y or yes) unless --yes is given.
#
#   scripts/gcp/teardown.sh                          # the VM only: the checkpoints stay
#   BUCKET=my-ckpts scripts/gcp/teardown.sh --delete-bucket [--yes]
#
# A stopped (TERMINATED) VM bills for its disk, a running one for everything, a bucket for what
# it stores: delete what you no longer need. Before --delete-bucket, copy what you want to keep:
# gcloud storage cp -r gs://BUCKET/spottrain/runs/EXPERIMENT runs/ (then bin/spottrain ckpt
# export runs/EXPERIMENT writes the weights as safetensors).
#
# Settings (environment, see common.sh): PROJECT, ZONE (where the VM is: watch.sh logs the zone
# it moved the VM to), VM_NAME, BUCKET (for --delete-bucket).
# Exit status: 0 deleted (or already gone), 1 gcloud failed or the confirmation was refused
# (nothing deleted then), 2 a setting or argument is missing or invalid.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

parse_help "$@"
delete_bucket=0 yes=0
for arg in "$@"; do
	case $arg in
	--delete-bucket) delete_bucket=1 ;;
	--yes | -y) yes=1 ;;
	*) die "unknown argument '$arg' (see --help)" ;;
	esac
done
load_settings
if [ "$delete_bucket" = 1 ]; then
	require BUCKET "--delete-bucket needs the bucket's name"
	if [ "$yes" != 1 ]; then
		printf 'Delete gs://%s and everything in it (checkpoints, event logs)? [y/N] ' "$BUCKET" >&2
		answer=""
		read -r answer || true
		case $answer in
		y | Y | yes | YES) ;;
		*) fail "not confirmed: nothing deleted (--yes skips the question)" ;;
		esac
	fi
fi

# gone_ok DESCRIPTION CMD...: runs CMD; its failure for a resource that does not exist is fine.
gone_ok() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1); then
		log "deleted $what"
	elif gcloud_not_found "$out"; then
		log "$what is gone already"
	else
		printf '%s\n' "$out" >&2
		fail "deleting $what failed"
	fi
}

gone_ok "VM $VM_NAME in $ZONE" gcloud compute instances delete "$VM_NAME" --project="$PROJECT" --zone="$ZONE" --quiet
if [ "$delete_bucket" = 1 ]; then
	gone_ok "gs://$BUCKET" gcloud storage rm --recursive "gs://$BUCKET" --project="$PROJECT"
fi
