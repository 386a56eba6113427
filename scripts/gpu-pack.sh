#!/usr/bin/env bash
# Packs .gpu/ for a GPU machine with PyTorch but no Go and no network (../shared/gpu/README.md),
# small enough to carry: the shared pack's toolchain and env.sh, but instead of the whole module
# cache (235 MB compressed since the cloud SDKs came in: every package of every module) the
# vendor tree of `go mod vendor` (only the packages this module imports: about 10 MB), which the
# GPU machine unpacks into ./vendor and builds from with -mod=vendor.
# Then, on the GPU machine: source .gpu/env.sh && bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_GPU:-../shared/gpu}
[[ -f $shared/env.sh ]] || { echo "gpu-pack: no $shared/env.sh (set SHARED_GPU)" >&2; exit 1; }
if [[ -d .git ]]; then
	for p in /.gpu/ /vendor/; do grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >>.git/info/exclude; done
fi
mkdir -p .gpu
ver=$(go env GOVERSION)
if [[ ! -f .gpu/go.tar.xz || "$(cat .gpu/go.version 2>/dev/null)" != "$ver" ]]; then
	echo "packing the $ver toolchain..." >&2
	(cd "$(go env GOROOT)" && tar cf - --exclude=testdata --exclude='*_test.go' --exclude=src/cmd \
		bin/go go.env VERSION pkg/tool/linux_amd64/{asm,cgo,compile,link,cover,vet} pkg/include src) |
		xz -T0 -6 >.gpu/go.tar.xz
	echo "$ver" >.gpu/go.version
fi
rm -f .gpu/modcache.tar.xz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp" # the tree: vendor reads its imports
(cd "$tmp" && go mod vendor && tar cf - vendor) | xz -T0 -3 >.gpu/vendor.tar.xz
cp "$shared/env.sh" .gpu/shared-env.sh
cat >.gpu/env.sh <<'ENV'
# Sourced on the GPU machine from the project's root: the shared env.sh (toolchain, libtorch, cgo
# flags), then the vendor tree instead of a module cache.
source "$(dirname "${BASH_SOURCE[0]}")/shared-env.sh"
if [[ ! -f vendor/modules.txt ]] || ! cmp -s <(xz -dc "$(dirname "${BASH_SOURCE[0]}")/vendor.tar.xz" | tar xOf - vendor/modules.txt) vendor/modules.txt; then
	rm -rf vendor && xz -dc "$(dirname "${BASH_SOURCE[0]}")/vendor.tar.xz" | tar xf -
fi
export GOFLAGS=-mod=vendor GOPROXY=off
ENV
du -sh .gpu/* >&2
