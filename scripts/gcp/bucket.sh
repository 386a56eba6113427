#!/usr/bin/env bash
# bucket.sh: creates the bucket for spottrain's checkpoints if it is missing and lets the VM's
# service account read and write it. Idempotent: run it again at will.
#
#   BUCKET=my-ckpts PROJECT=my-project scripts/gcp/bucket.sh
#
# - `gcloud storage buckets describe gs://BUCKET`: when the bucket exists, nothing is created;
#   otherwise `gcloud storage buckets create gs://BUCKET --location=REGION
#   --uniform-bucket-level-access` in the region of ZONE (so uploads stay in the region).
# - `gcloud storage buckets add-iam-policy-binding`: roles/storage.objectAdmin on the bucket for
#   SERVICE_ACCOUNT, by default the project's default compute service account
#   (PROJECT_NUMBER-compute@developer.gserviceaccount.com). objectAdmin, not objectCreator: the
#   trainer lists, reads and deletes old checkpoints too (checkpoint.keep).
#
# Settings (environment, see common.sh): BUCKET (required), PROJECT, ZONE (default us-central1-a;
# the bucket's location is its region), SERVICE_ACCOUNT.
# Exit status: 0 done, 1 a gcloud command failed, 2 a setting is missing or invalid.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

no_args "$@"
load_settings
require BUCKET "the name of the bucket for checkpoints, e.g. export BUCKET=$PROJECT-spottrain"

if gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT" --format='value(name)' >/dev/null 2>&1; then
	log "gs://$BUCKET exists"
else
	log "creating gs://$BUCKET in $REGION"
	gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" --location="$REGION" --uniform-bucket-level-access ||
		fail "creating gs://$BUCKET failed (bucket names are global: one taken by another project cannot be used)"
fi

sa=$(default_service_account)
log "granting roles/storage.objectAdmin on gs://$BUCKET to $sa"
gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
	--member="serviceAccount:$sa" --role=roles/storage.objectAdmin >/dev/null ||
	fail "granting roles/storage.objectAdmin on gs://$BUCKET to $sa failed"
log "checkpoints will go to gs://$BUCKET/${REMOTE_PREFIX}"
