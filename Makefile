# berth — build, test, demo and benchmarks.
#
#   make demo    build everything, install what this machine lacks, run the demo stack
#   make test    the whole test suite (what CI runs)
#   make bench   the performance figures in README.md
#
# Needs Go (1.26+) and a Debian/Ubuntu machine; `make deps` installs the rest
# with apt-get (an OCI runtime, busybox-static for the images).

GO      ?= go
BIN     := bin
IMAGES  := build/images
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/berth-io/berth/core/version.Version=$(VERSION)
export CGO_ENABLED := 0

# Debian packages berth needs at run and test time: the OCI runtimes,
# busybox-static (the demo and test images, and the HIL VM's initramfs),
# iproute2, util-linux (unshare, for tests that run berthd in its own network
# namespace) and qemu-system-x86 (the HIL VM, for tests that need kernel CAN);
# can-utils (candump, cansend, cangw: the HIL VM's independent CAN check).
DEB_PACKAGES := runc crun busybox-static iproute2 util-linux qemu-system-x86 can-utils

# Packages whose tests need a real kernel's devices (vcan, i2c-stub): make hil
# runs each inside a small qemu VM with Debian's stock kernel (core/hil).
# canbench is there for its checks (no path loses a frame or leaks an ID);
# make bench runs it again to print its table.
HIL_PKGS := ./board-support/qemu-x86_64/smoke/... ./plugins/socketcan/... ./board-support/qemu-x86_64/containers/... ./core/cannative/... ./board-support/qemu-x86_64/canbench/...

.PHONY: all build images deps test hil vet demo demo-down bench clean generate

all: build

deps:
	@command -v dpkg-query >/dev/null || { echo "make deps: not a Debian/Ubuntu machine; install: $(DEB_PACKAGES)"; exit 0; }; \
	missing=""; for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/berthd ./cmd/berth ./cmd/berth-monitor ./plugins/vcan/cmd/berth-plugin-vcan ./plugins/socketcan/cmd/berth-plugin-socketcan

images: deps
	$(GO) run ./cmd/mkimage -o $(IMAGES)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps vet
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) hil

# The HIL tests: the kernel is fetched with apt and cached in ~/.cache/berth
# on first use; then each package boots one VM (about 5 s under TCG).
hil: deps
	$(GO) build -o $(BIN)/berth-hil ./cmd/berth-hil
	$(GO) test -count=1 -timeout 3m -exec $(abspath $(BIN))/berth-hil $(HIL_PKGS)

demo: deps build images
	@board-support/sim/demo.sh

demo-down:
	@board-support/sim/demo.sh down

bench: deps build images
	$(GO) run ./cmd/berth-bench -bin $(BIN) -images $(IMAGES)
	$(GO) build -o $(BIN)/berth-hil ./cmd/berth-hil
	$(GO) test -count=1 -timeout 3m -exec $(abspath $(BIN))/berth-hil -v -run '^TestPaths$$' ./board-support/qemu-x86_64/canbench

generate:
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(GO) generate ./...

clean:
	rm -rf $(BIN) build
