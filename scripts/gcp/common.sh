# shellcheck shell=bash
# common.sh: settings and helpers for scripts/gcp/*.sh. Sourced by them, not run.
#
# Settings (environment variables; each script says which it needs):
#   PROJECT          the GCP project; default: `gcloud config get-value project`
#   ZONE             the VM's zone (default us-central1-a); its region holds the bucket
#   VM_NAME          the VM's name (default spottrain)
#   MACHINE_TYPE     default g2-standard-8 (8 vCPUs, 32 GB, one NVIDIA L4)
#   GPU_TYPE         default nvidia-l4
#   GPU_COUNT        the VM's GPUs; default: the number an accelerator-optimized MACHINE_TYPE
#                    comes with (a2-highgpu-2g: 2, g2-standard-24: 2; create-vm.sh wants it to
#                    agree), else 1, the count of --accelerator (N1). startup.sh starts one
#                    trainer process per GPU it finds (--nproc-per-node).
#   IMAGE            the container image URL (Artifact Registry), for create-vm.sh
#   BUCKET           the bucket's name, without gs:// (checkpoints go to gs://BUCKET/REMOTE_PREFIX)
#   REMOTE_PREFIX    the folder in the bucket (default spottrain)
#   EXPERIMENT       the experiment to train (default resnet50-ondemand)
#   RUN_DIR          the run dir inside the container (default runs/EXPERIMENT): the run's copy
#                    in the bucket is gs://BUCKET/REMOTE_PREFIX/RUN_DIR, where watch.sh reads the
#                    event log (set it too when TRAIN_ARGS sets run_dir)
#   TRAIN_ARGS       extra arguments of `spottrain train`, split on white space, e.g.
#                    "--set train.epochs=10 --set data.path=/data/cifar-100-binary.tar.gz"
#   DATA             optional gs:// URL of a data file that the VM downloads into /data and
#                    passes as data.path (e.g. gs://BUCKET/data/cifar-100-binary.tar.gz)
#   REMOTE_GRACE     seconds the trainer may spend uploading its emergency checkpoint after a
#                    preemption notice (checkpoint.remote_grace; default 25, at most 28: GCP
#                    stops the VM 30 s after the notice)
#   SERVICE_ACCOUNT  the VM's service account (default: the project's default compute one)
#   IMAGE_FAMILY, IMAGE_PROJECT, BOOT_DISK_SIZE   the VM's boot disk (create-vm.sh)
#
# Conventions: errors are one line on stderr naming the setting; exit status 2 for a missing or
# invalid setting or argument, 1 for a failed operation. Scripts are meant for bash >= 3.2 (the
# one macOS ships): no associative arrays, no ${x^^}, empty arrays expanded with ${a[@]+...}.

# shellcheck disable=SC2034 # used by the scripts that source this file
GCP_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PROG=$(basename -- "$0")

# log MESSAGE...: one timestamped line on stdout.
log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$PROG" "$*"; }

# die MESSAGE...: a bad setting or argument; one line on stderr, exit 2.
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 2
}

# fail MESSAGE...: an operation failed; one line on stderr, exit 1.
fail() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# usage: prints the script's header comment (from line 2 to the first line that is no comment).
usage() { sed -n '2,${/^#/!q;s/^# \{0,1\}//p;}' "$0"; }

# parse_help ARGS...: --help or -h prints the usage and exits 0.
parse_help() {
	local arg
	for arg in "$@"; do
		case $arg in
		-h | --help)
			usage
			exit 0
			;;
		esac
	done
}

# no_args ARGS...: for scripts that take no arguments besides --help.
no_args() {
	parse_help "$@"
	if [ $# -gt 0 ]; then
		die "unexpected argument '$1' (settings are environment variables; see --help)"
	fi
}

# require NAME [HINT]: the setting NAME must be set.
require() {
	if [ -z "${!1:-}" ]; then
		die "$1 is not set${2:+: $2}"
	fi
}

# check_int NAME MIN [MAX]: the setting NAME must be an integer within MIN..MAX.
check_int() {
	local name=$1 min=$2 max=${3:-} value=${!1:-}
	if ! [[ $value =~ ^[0-9]+$ ]] || [ "$value" -lt "$min" ] || { [ -n "$max" ] && [ "$value" -gt "$max" ]; }; then
		die "$name must be an integer from $min${max:+ to $max} (got '$value')"
	fi
}

# check_zone NAME VALUE: VALUE must look like a zone (us-central1-a).
check_zone() {
	if ! [[ $2 =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]]; then
		die "$1 must name zones like us-central1-a (got '$2')"
	fi
}

# machine_gpus MACHINE_TYPE: the number of GPUs an accelerator-optimized machine type comes with
# (a2-highgpu-2g: 2, a3-highgpu-8g: 8, g2-standard-24: 2), from its name; nothing for the other
# types (N1 gets its GPUs from --accelerator, GPU_COUNT of them) and for names it does not know.
machine_gpus() {
	local n
	case $1 in
	a2-*-*g | a3-*-*g | a4-*-*g | a4x-*-*g)
		n=${1##*-}
		n=${n%g}
		if [[ $n =~ ^[0-9]+$ ]]; then
			printf '%s\n' "$n"
		fi
		;;
	g2-standard-4 | g2-standard-8 | g2-standard-12 | g2-standard-16 | g2-standard-32) echo 1 ;;
	g2-standard-24) echo 2 ;;
	g2-standard-48) echo 4 ;;
	g2-standard-96) echo 8 ;;
	esac
}

# load_settings: the settings every script shares, with defaults, validated. PROJECT comes from
# gcloud's config when it is not set.
load_settings() {
	if [ -z "${PROJECT:-}" ]; then
		PROJECT=$(gcloud config get-value project 2>/dev/null || true)
	fi
	require PROJECT "export PROJECT=my-project (or gcloud config set project my-project)"
	if ! [[ $PROJECT =~ ^[a-z][-a-z0-9.:]*[a-z0-9]$ ]]; then
		die "PROJECT is not a project ID (got '$PROJECT')"
	fi
	export PROJECT

	ZONE=${ZONE:-us-central1-a}
	check_zone ZONE "$ZONE"
	# shellcheck disable=SC2034 # used by the scripts that source this file
	REGION=${ZONE%-*}

	VM_NAME=${VM_NAME:-spottrain}
	if ! [[ $VM_NAME =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]]; then
		die "VM_NAME must be lower-case letters, digits and hyphens, starting with a letter (got '$VM_NAME')"
	fi

	MACHINE_TYPE=${MACHINE_TYPE:-g2-standard-8}
	GPU_TYPE=${GPU_TYPE:-nvidia-l4}
	if ! [[ $MACHINE_TYPE =~ ^[a-z][-a-z0-9]*$ ]]; then
		die "MACHINE_TYPE is not a machine type (got '$MACHINE_TYPE')"
	fi
	if [ -z "${GPU_COUNT:-}" ]; then
		GPU_COUNT=$(machine_gpus "$MACHINE_TYPE")
	fi
	GPU_COUNT=${GPU_COUNT:-1}
	check_int GPU_COUNT 1 16
	if ! [[ $GPU_TYPE =~ ^[a-z][-a-z0-9]*$ ]]; then
		die "GPU_TYPE is not an accelerator type like nvidia-l4 (got '$GPU_TYPE')"
	fi

	EXPERIMENT=${EXPERIMENT:-resnet50-ondemand}
	if ! [[ $EXPERIMENT =~ ^[A-Za-z0-9][-A-Za-z0-9._]*$ ]]; then
		die "EXPERIMENT is not an experiment name (got '$EXPERIMENT')"
	fi
	RUN_DIR=${RUN_DIR:-runs/$EXPERIMENT}
	RUN_DIR=${RUN_DIR%/}
	if ! [[ $RUN_DIR =~ ^[-A-Za-z0-9._/]+$ ]] || [[ $RUN_DIR == /* ]]; then
		die "RUN_DIR must be a relative path like runs/NAME (got '$RUN_DIR')"
	fi
	REMOTE_PREFIX=${REMOTE_PREFIX:-spottrain}
	REMOTE_PREFIX=${REMOTE_PREFIX%/}
	if ! [[ $REMOTE_PREFIX =~ ^[-A-Za-z0-9._/]+$ ]] || [[ $REMOTE_PREFIX == /* ]]; then
		die "REMOTE_PREFIX must be a folder like spottrain (got '$REMOTE_PREFIX')"
	fi

	REMOTE_GRACE=${REMOTE_GRACE:-25}
	check_int REMOTE_GRACE 1 28

	TRAIN_ARGS=${TRAIN_ARGS:-}
	SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-}
	if [ -n "$SERVICE_ACCOUNT" ] && ! [[ $SERVICE_ACCOUNT =~ ^[^@[:space:]]+@[^@[:space:]]+$ ]]; then
		die "SERVICE_ACCOUNT must be an email like NAME@PROJECT.iam.gserviceaccount.com (got '$SERVICE_ACCOUNT')"
	fi
	DATA=${DATA:-}
	if [ -n "$DATA" ] && ! [[ $DATA =~ ^gs://[^/[:space:]]+/[^[:space:]]*[^/[:space:]]$ ]]; then
		die "DATA must be the gs:// URL of a file (got '$DATA')"
	fi
	IMAGE=${IMAGE:-}
	if [ -n "$IMAGE" ] && ! [[ $IMAGE =~ ^[^[:space:]]+$ ]]; then
		die "IMAGE must be an image URL without spaces (got '$IMAGE')"
	fi

	BUCKET=${BUCKET:-}
	if [ -n "$BUCKET" ]; then
		case $BUCKET in
		gs://*) die "BUCKET is the bucket's name, without gs:// (got '$BUCKET')" ;;
		esac
		if ! [[ $BUCKET =~ ^[a-z0-9][-a-z0-9._]{1,220}[a-z0-9]$ ]]; then
			die "BUCKET is not a bucket name (lower-case letters, digits, - _ .; got '$BUCKET')"
		fi
		REMOTE=gs://$BUCKET/$REMOTE_PREFIX
		# shellcheck disable=SC2034 # used by the scripts that source this file
		EVENTS_URL=$REMOTE/$RUN_DIR/events.jsonl
	fi
}

# default_service_account: SERVICE_ACCOUNT, or the project's default compute service account
# (PROJECT_NUMBER-compute@developer.gserviceaccount.com).
default_service_account() {
	if [ -n "$SERVICE_ACCOUNT" ]; then
		printf '%s\n' "$SERVICE_ACCOUNT"
		return
	fi
	local number
	number=$(gcloud projects describe "$PROJECT" --format='value(projectNumber)') ||
		fail "cannot read the project number of $PROJECT (gcloud projects describe failed); set SERVICE_ACCOUNT"
	if ! [[ $number =~ ^[0-9]+$ ]]; then
		fail "unexpected project number '$number' for $PROJECT; set SERVICE_ACCOUNT"
	fi
	printf '%s-compute@developer.gserviceaccount.com\n' "$number"
}

# gcloud_dict KEY=VALUE...: one value for a gcloud dict flag (--metadata=...). Items are joined
# with commas, or, when a value holds a comma, with a delimiter that appears in none of them,
# declared by gcloud's ^DELIM^ prefix (`gcloud topic escaping`).
gcloud_dict() {
	local all candidate delim="" item out=""
	all=$(printf '%s\n' "$@")
	case $all in
	*,*)
		for candidate in '|' ';' '~' '#' '@@' '|||' ':::'; do
			case $all in
			*"$candidate"*) continue ;;
			esac
			delim=$candidate
			break
		done
		if [ -z "$delim" ]; then
			die "cannot pass these metadata values to gcloud: they contain every delimiter tried (, | ; ~ # @@ ||| :::)"
		fi
		;;
	*) delim=, ;;
	esac
	for item in "$@"; do
		out=${out:+$out$delim}$item
	done
	if [ "$delim" != , ]; then
		out="^$delim^$out"
	fi
	printf '%s\n' "$out"
}

# gcloud_not_found TEXT: whether TEXT is gcloud's error for a resource that does not exist.
gcloud_not_found() {
	case $1 in
	*"was not found"* | *"not found: 404"* | *"HTTPError 404"* | *"matched no objects"*) return 0 ;;
	esac
	return 1
}

# vm_exists: whether VM_NAME exists in ZONE.
vm_exists() {
	gcloud compute instances describe "$VM_NAME" --project="$PROJECT" --zone="$ZONE" --format='value(name)' >/dev/null 2>&1
}
