# spottrain: `make demo` trains the LSTM solar forecaster under simulated spot interruptions,
# `make test` runs the tests. Both install what they need first (Debian: libtorch-dev, OpenBLAS and
# Gloo for c10d, through apt-get, as root or with sudo).
#
# Another libtorch (an official zip, or the one inside a PyTorch wheel: .../site-packages/torch):
#   make build LIBTORCH=/path/to/libtorch          # CUDA builds are detected (lib/libtorch_cuda.so)
#   make build LIBTORCH=/path TORCH_CXX11_ABI=0    # for a pre-cxx11-ABI libtorch zip

GO      ?= go
BIN     := bin/spottrain
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT     := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

ifdef LIBTORCH
TORCH_CXX11_ABI ?= 1
TAGS := $(if $(wildcard $(LIBTORCH)/lib/libtorch_cuda.so),cuda,libtorch)
comma := ,
# nothing references libtorch_cuda directly, but loading it registers the CUDA backend
CUDA_LIBS := $(if $(filter cuda,$(TAGS)),-Wl$(comma)--no-as-needed -ltorch_cuda -lc10_cuda -Wl$(comma)--as-needed)
export CGO_CPPFLAGS := -I$(LIBTORCH)/include -I$(LIBTORCH)/include/torch/csrc/api/include -D_GLIBCXX_USE_CXX11_ABI=$(TORCH_CXX11_ABI)
export CGO_LDFLAGS := -L$(LIBTORCH)/lib -Wl,-rpath,$(LIBTORCH)/lib $(CUDA_LIBS) -ltorch -ltorch_cpu -lc10
SYSTEM_PKGS := g++
else
TAGS :=
SYSTEM_PKGS := g++ libtorch-dev libopenblas0-pthread libgloo-dev
endif
GOFLAGS_TAGS := $(if $(TAGS),-tags $(TAGS))

IMAGE   ?= spottrain:cuda

.PHONY: setup build demo test bench docker-cuda clean

# setup installs the system packages that are missing (idempotent: nothing to do the second time).
# PKGS adds more: the tests and the benchmark compare with PyTorch (Debian's python3-torch, the
# same libtorch 1.13).
setup:
	@missing=$$(for p in $(SYSTEM_PKGS) $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) $(APT) $$missing; \
	fi

build: setup
	$(GO) build $(GOFLAGS_TAGS) -o $(BIN) ./cmd/spottrain

demo: build
	$(BIN) demo

test: PKGS = python3-torch shellcheck curl
test: setup
	$(GO) vet $(GOFLAGS_TAGS) ./...
	$(GO) test -timeout 20m $(GOFLAGS_TAGS) ./...

# bench compares the LSTM training step of the Go loop with a pure C++ loop and with PyTorch
# (Debian's python3-torch: the same libtorch) at the same sizes and thread count.
bench: PKGS = python3-torch
bench: setup
	GO="$(GO)" GOFLAGS_TAGS="$(GOFLAGS_TAGS)" bash scripts/bench/lstm.sh

# docker-cuda builds the CUDA image (Dockerfile.cuda): Go, the official libtorch 2.5.1 for CUDA 12.4
# and the binary, on NVIDIA's CUDA base image. Needs docker with network; runs with --gpus all.
docker-cuda:
	docker build -f Dockerfile.cuda -t $(IMAGE) .

clean:
	rm -rf bin
