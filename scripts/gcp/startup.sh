#!/usr/bin/env bash
# startup.sh: the spot VM's startup script (create-vm.sh installs it as metadata startup-script).
# Compute Engine runs it as root at every boot, the first one and each after a preempted VM is
# started again. It starts the trainer's container, or starts it again; spottrain then resumes
# from the newest checkpoint of its run dir or, on a fresh disk, of the bucket.
#
# 1. Reads its parameters from the instance's metadata attributes (the metadata server at
#    $GCE_METADATA_HOST, default metadata.google.internal, header Metadata-Flavor: Google):
#      spottrain-image       the container image (required)
#      spottrain-remote      checkpoint.remote, e.g. gs://BUCKET/spottrain (required)
#      spottrain-experiment  the experiment (default resnet50-ondemand)
#      spottrain-args        more arguments of `spottrain train`, split on white space
#      spottrain-grace       checkpoint.remote_grace in seconds (default 25, 1 to 28)
#      spottrain-data        a gs:// file downloaded once into /data, passed as data.path
#      spottrain-gpus        the VM's GPUs as create-vm.sh knew them (default 1, 1 to 16)
# 2. Waits for the GPU driver (nvidia-smi succeeds; a Deep Learning VM installs it at the first
#    boot) and for docker; lets docker pull from Artifact Registry (gcloud auth configure-docker)
#    when the image is there. Counts the GPUs (the lines of nvidia-smi -L; spottrain-gpus when it
#    lists none) and starts that many trainer processes, one per GPU: --nproc-per-node N, with 1 GB
#    of /dev/shm for NCCL between them when N > 1 (docker gives 64 MB).
# 3. Runs the container `spottrain`, idempotently, with the host's /var/lib/spottrain/runs on
#    /work/runs and /var/lib/spottrain/data on /data:
#      none yet                  docker run -d --name spottrain --gpus all --restart on-failure:10
#                                  --stop-timeout GRACE+3 -v ... IMAGE train --experiment ...
#                                  --nproc-per-node N ...
#      running                   nothing
#      exited 0                  nothing: the run is complete
#      exited 2                  nothing: spottrain refused its input, starting it again would
#                                not help (fix the metadata: see below)
#      exited otherwise          docker start (75: stopped by a preemption notice after an
#                                emergency checkpoint; 1: a failure, maybe transient)
#    The container carries a label with a hash of its docker run arguments: when the metadata
#    changed (another image, other arguments), the old container is stopped (SIGTERM, so an
#    emergency checkpoint) and removed, and a new one is run.
#
# Test hooks (environment): SPOTTRAIN_HOST_DIR (default /var/lib/spottrain),
# SPOTTRAIN_WAIT_TRIES (default 60) and SPOTTRAIN_WAIT_SECONDS (default 10) for the driver and
# docker waits.
# Exit status: 0 the container runs (or the run is complete), 1 a failure (no GPU, no docker,
# docker failed, the container exited 2 earlier), 2 a metadata attribute is missing or invalid.
set -euo pipefail

PROG=spottrain-startup
NAME=spottrain
HOST_DIR=${SPOTTRAIN_HOST_DIR:-/var/lib/spottrain}
WAIT_TRIES=${SPOTTRAIN_WAIT_TRIES:-60}
WAIT_SECONDS=${SPOTTRAIN_WAIT_SECONDS:-10}
# Startup scripts may run with a short PATH; docker, nvidia-smi and gcloud live in these.
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin
METADATA_URL="http://${GCE_METADATA_HOST:-metadata.google.internal}/computeMetadata/v1/instance/attributes"
# Docker cannot restart on some exit codes and not others: on-failure restarts after 75 (a
# SIGTERM without the VM going away: resume), after 1 (often transient: the network or the
# bucket at boot) and after 2 (bad input: useless). The cap bounds the useless restarts: docker
# waits 100 ms before the first and doubles the wait each time, so 10 restarts span about 100 s,
# enough to ride out a short outage; then the container stays exited and this script does not
# start one that exited 2 at the next boot either. `docker start` at each boot resets the count.
RESTART_POLICY=on-failure:10

# The helpers of common.sh, repeated: this file alone is the VM's startup script.
log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$PROG" "$*"; }
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 2
}
fail() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

case ${1:-} in
-h | --help)
	sed -n '2,${/^#/!q;s/^# \{0,1\}//p;}' "$0"
	exit 0
	;;
esac

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# attr NAME [DEFAULT]: the metadata attribute NAME; DEFAULT when it is absent, or exit 2 when
# there is no DEFAULT.
attr() {
	local code
	code=$(curl -sS --retry 5 --retry-connrefused --max-time 10 -o "$tmp" -w '%{http_code}' \
		-H 'Metadata-Flavor: Google' "$METADATA_URL/$1") ||
		fail "cannot read metadata attribute $1 from $METADATA_URL"
	case $code in
	200) cat "$tmp" ;;
	404)
		if [ $# -lt 2 ]; then
			die "metadata attribute $1 is not set (create-vm.sh sets it)"
		fi
		printf '%s' "$2"
		;;
	*) fail "metadata server answered HTTP $code for attribute $1" ;;
	esac
}

image=$(attr spottrain-image)
remote=$(attr spottrain-remote)
experiment=$(attr spottrain-experiment resnet50-ondemand)
args=$(attr spottrain-args "")
grace=$(attr spottrain-grace 25)
data=$(attr spottrain-data "")
gpus_metadata=$(attr spottrain-gpus 1)

if ! [[ $image =~ ^[^[:space:]]+$ ]]; then
	die "metadata attribute spottrain-image is not an image (got '$image')"
fi
if ! [[ $remote =~ ^(gs|s3|file)://[^[:space:]]+$ ]]; then
	die "metadata attribute spottrain-remote must be a gs:// URL (got '$remote')"
fi
if ! [[ $experiment =~ ^[A-Za-z0-9][-A-Za-z0-9._]*$ ]]; then
	die "metadata attribute spottrain-experiment is not an experiment name (got '$experiment')"
fi
if ! [[ $grace =~ ^[0-9]+$ ]] || [ "$grace" -lt 1 ] || [ "$grace" -gt 28 ]; then
	die "metadata attribute spottrain-grace must be seconds from 1 to 28 (got '$grace')"
fi
if [ -n "$data" ] && ! [[ $data =~ ^gs://[^[:space:]]+[^/]$ ]]; then
	die "metadata attribute spottrain-data must be the gs:// URL of a file (got '$data')"
fi
if ! [[ $gpus_metadata =~ ^[0-9]+$ ]] || [ "$gpus_metadata" -lt 1 ] || [ "$gpus_metadata" -gt 16 ]; then
	die "metadata attribute spottrain-gpus must be a number of GPUs from 1 to 16 (got '$gpus_metadata')"
fi
# After a notice the trainer exits at most `grace` seconds later; docker must not kill it first.
stop_timeout=$((grace + 3))

# wait_for WHAT CMD...: runs CMD until it succeeds, WAIT_TRIES times at most.
wait_for() {
	local what=$1 try=1
	shift
	until "$@" >/dev/null 2>&1; do
		if [ "$try" -ge "$WAIT_TRIES" ]; then
			fail "$what: '$*' still fails after $try tries"
		fi
		log "waiting for $what ('$*' failed, try $try of $WAIT_TRIES)"
		try=$((try + 1))
		sleep "$WAIT_SECONDS"
	done
}

wait_for "the NVIDIA driver" nvidia-smi
# One trainer process per GPU. nvidia-smi -L prints a line "GPU 0: NVIDIA L4 (UUID: ...)" per GPU.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU [0-9]' || true)
if [ "$gpus" -lt 1 ]; then
	log "nvidia-smi -L lists no GPU: starting spottrain-gpus=$gpus_metadata processes"
	gpus=$gpus_metadata
elif [ "$gpus" != "$gpus_metadata" ]; then
	log "nvidia-smi -L lists $gpus GPUs, metadata spottrain-gpus says $gpus_metadata: starting $gpus processes"
fi
command -v docker >/dev/null 2>&1 || fail "docker is not installed (use a Deep Learning VM image, or install docker and the NVIDIA container toolkit)"
wait_for "docker" docker info

registry=${image%%/*}
case $registry in
*-docker.pkg.dev | gcr.io | *.gcr.io)
	gcloud auth configure-docker "$registry" --quiet >/dev/null 2>&1 ||
		fail "gcloud auth configure-docker $registry failed"
	;;
esac

mkdir -p "$HOST_DIR/runs" "$HOST_DIR/data"

data_args=()
if [ -n "$data" ]; then
	file=${data##*/}
	if [ ! -s "$HOST_DIR/data/$file" ]; then
		log "downloading $data"
		gcloud storage cp "$data" "$HOST_DIR/data/$file.part" >/dev/null ||
			fail "downloading $data failed (the VM's service account needs read access)"
		mv "$HOST_DIR/data/$file.part" "$HOST_DIR/data/$file"
	fi
	data_args=(--set "data.path=/data/$file")
fi

extra=()
if [ -n "$args" ]; then
	read -r -d '' -a extra <<<"$args" || true
fi

shm_args=()
if [ "$gpus" -gt 1 ]; then
	shm_args=(--shm-size 1g)
fi

run_args=(
	--name "$NAME" --gpus all --restart "$RESTART_POLICY" --stop-timeout "$stop_timeout"
	"${shm_args[@]}" -v "$HOST_DIR/runs:/work/runs" -v "$HOST_DIR/data:/data"
	"$image" train --experiment "$experiment" --nproc-per-node "$gpus"
	--set "checkpoint.remote=$remote" --set "checkpoint.remote_grace=${grace}s"
	"${data_args[@]}" "${extra[@]}"
)
spec=$(printf '%s\n' "${run_args[@]}" | sha256sum | cut -c1-16)

run_container() {
	log "docker run $image train --experiment $experiment (checkpoints: $remote)"
	docker run -d --label "spottrain.spec=$spec" "${run_args[@]}" >/dev/null ||
		fail "docker run failed"
}

if ! state=$(docker inspect --format '{{.State.Status}} {{.State.ExitCode}} {{index .Config.Labels "spottrain.spec"}}' "$NAME" 2>/dev/null); then
	run_container
	exit 0
fi
read -r status code old_spec <<<"$state"

if [ "$old_spec" != "$spec" ]; then
	log "the metadata changed since container $NAME was made: replacing it"
	docker stop "$NAME" >/dev/null || fail "docker stop $NAME failed"
	docker rm "$NAME" >/dev/null || fail "docker rm $NAME failed"
	run_container
	exit 0
fi

case $status in
running | restarting | paused)
	log "container $NAME is $status already"
	;;
exited)
	case $code in
	0) log "container $NAME exited 0: the run is complete, nothing to do" ;;
	2) fail "container $NAME exited 2: spottrain refused its input (docker logs $NAME); fix the metadata (spottrain-args, spottrain-experiment) and reboot" ;;
	*)
		log "container $NAME exited $code: docker start"
		docker start "$NAME" >/dev/null || fail "docker start $NAME failed"
		;;
	esac
	;;
created)
	log "docker start $NAME"
	docker start "$NAME" >/dev/null || fail "docker start $NAME failed"
	;;
*)
	log "container $NAME is $status: replacing it"
	docker rm -f "$NAME" >/dev/null || fail "docker rm $NAME failed"
	run_container
	;;
esac
