#!/usr/bin/env bash
# create-vm.sh: creates the Spot VM that trains: a GPU, the termination action STOP (a preempted
# VM is stopped, keeping its disk, and can be started again: watch.sh does it), a Deep Learning
# VM image (NVIDIA driver, docker, NVIDIA container toolkit) and startup.sh as its startup
# script, which runs the container at every boot. Checkpoints go to gs://BUCKET/REMOTE_PREFIX.
#
#   PROJECT=my-project BUCKET=my-ckpts IMAGE=us-central1-docker.pkg.dev/my-project/spottrain/spottrain:cuda \
#     TRAIN_ARGS="--set train.epochs=10" DATA=gs://my-ckpts/data/cifar-100-binary.tar.gz \
#     scripts/gcp/create-vm.sh
#
# The command is `gcloud compute instances create VM_NAME --provisioning-model=SPOT
# --instance-termination-action=STOP --maintenance-policy=TERMINATE --machine-type=MACHINE_TYPE
# --accelerator=type=GPU_TYPE,count=GPU_COUNT --image-family=IMAGE_FAMILY
# --image-project=IMAGE_PROJECT --boot-disk-size=BOOT_DISK_SIZE --scopes=cloud-platform
# --metadata=... --metadata-from-file=startup-script=.../startup.sh`. Accelerator-optimized
# machine types (a2-, a3-, a4-, g2-, g4-: g2-standard-8 comes with one L4) bring their GPUs, so
# --accelerator is passed only for the others (n1-standard-8 with GPU_TYPE=nvidia-tesla-t4).
# The metadata carries startup.sh's parameters (spottrain-image, -experiment, -remote, -args,
# -grace, -data, and -gpus: GPU_COUNT, the machine type's own count for a2-, a3-, a4- and g2-,
# which startup.sh falls back on when nvidia-smi lists no GPU) and install-nvidia-driver=True;
# values holding commas (TRAIN_ARGS) are passed with gcloud's ^DELIM^ escaping (`gcloud topic
# escaping`). On a machine of several GPUs (a2-highgpu-2g, g2-standard-24, n1-standard-16 with
# GPU_COUNT=4), startup.sh starts spottrain with --nproc-per-node = the GPU count.
#
# Settings (environment, see common.sh): IMAGE and BUCKET (required), PROJECT, ZONE, VM_NAME,
# MACHINE_TYPE, GPU_TYPE, GPU_COUNT (derived from MACHINE_TYPE where it brings its GPUs), EXPERIMENT, TRAIN_ARGS, DATA, REMOTE_PREFIX, REMOTE_GRACE,
# SERVICE_ACCOUNT, IMAGE_FAMILY (default common-cu124-debian-11), IMAGE_PROJECT (default
# deeplearning-platform-release), BOOT_DISK_SIZE (default 100GB).
# Exit status: 0 created, 1 the VM exists already or gcloud failed (e.g.
# ZONE_RESOURCE_POOL_EXHAUSTED: no spot capacity in ZONE), 2 a setting is missing or invalid.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

no_args "$@"
load_settings
require IMAGE "the container image, e.g. export IMAGE=$REGION-docker.pkg.dev/$PROJECT/spottrain/spottrain:cuda"
require BUCKET "the bucket for checkpoints (bucket.sh creates it)"
IMAGE_FAMILY=${IMAGE_FAMILY:-common-cu124-debian-11}
IMAGE_PROJECT=${IMAGE_PROJECT:-deeplearning-platform-release}
BOOT_DISK_SIZE=${BOOT_DISK_SIZE:-100GB}
if ! [[ $BOOT_DISK_SIZE =~ ^[0-9]+(GB|TB)$ ]]; then
	die "BOOT_DISK_SIZE must be a size like 100GB (got '$BOOT_DISK_SIZE')"
fi
builtin_gpus=$(machine_gpus "$MACHINE_TYPE")
if [ -n "$builtin_gpus" ] && [ "$GPU_COUNT" != "$builtin_gpus" ]; then
	die "GPU_COUNT is $GPU_COUNT, but MACHINE_TYPE $MACHINE_TYPE comes with $builtin_gpus GPUs (leave GPU_COUNT unset)"
fi
startup=$GCP_DIR/startup.sh
if [ ! -r "$startup" ]; then
	fail "cannot read the startup script $startup"
fi

if vm_exists; then
	fail "VM $VM_NAME exists already in $ZONE (teardown.sh deletes it; VM_NAME picks another name)"
fi

metadata=(
	"spottrain-image=$IMAGE"
	"spottrain-experiment=$EXPERIMENT"
	"spottrain-remote=$REMOTE"
	"spottrain-grace=$REMOTE_GRACE"
	"spottrain-gpus=$GPU_COUNT"
	"install-nvidia-driver=True"
)
if [ -n "$TRAIN_ARGS" ]; then
	metadata+=("spottrain-args=$TRAIN_ARGS")
fi
if [ -n "$DATA" ]; then
	metadata+=("spottrain-data=$DATA")
fi

metadata_flag=$(gcloud_dict "${metadata[@]}")
startup_flag=$(gcloud_dict "startup-script=$startup")
flags=(
	--project="$PROJECT"
	--zone="$ZONE"
	--machine-type="$MACHINE_TYPE"
	--provisioning-model=SPOT
	--instance-termination-action=STOP
	--maintenance-policy=TERMINATE
	--image-family="$IMAGE_FAMILY"
	--image-project="$IMAGE_PROJECT"
	--boot-disk-size="$BOOT_DISK_SIZE"
	--scopes=cloud-platform
	--labels=app=spottrain
	--metadata="$metadata_flag"
	--metadata-from-file="$startup_flag"
)
case $MACHINE_TYPE in
a2-* | a3-* | a4-* | a4x-* | g2-* | g4-*)
	log "$MACHINE_TYPE comes with its GPUs: no --accelerator"
	;;
*) flags+=(--accelerator="type=$GPU_TYPE,count=$GPU_COUNT") ;;
esac
if [ -n "$SERVICE_ACCOUNT" ]; then
	flags+=(--service-account="$SERVICE_ACCOUNT")
fi

log "creating spot VM $VM_NAME ($MACHINE_TYPE, $GPU_COUNT x $GPU_TYPE) in $ZONE; checkpoints: $REMOTE/$RUN_DIR"
gcloud compute instances create "$VM_NAME" "${flags[@]}" ||
	fail "creating VM $VM_NAME in $ZONE failed (ZONE_RESOURCE_POOL_EXHAUSTED: no spot capacity now; capacity.sh lists other zones)"
log "created $VM_NAME; its startup script runs the container at every boot (serial console: gcloud compute instances get-serial-port-output $VM_NAME --zone=$ZONE)"
