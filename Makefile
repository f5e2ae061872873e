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

# Debian packages berth needs at run and test time, by the command each gives.
DEB_PACKAGES := runc:runc crun:crun busybox:busybox-static ip:iproute2

.PHONY: all build images deps test test-unit vet fmt-check demo demo-down bench clean generate

all: build

deps:
	@missing=""; for pair in $(DEB_PACKAGES); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/berthd ./cmd/berth ./cmd/berth-monitor

images: deps
	$(GO) run ./cmd/mkimage -o $(IMAGES)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps vet
	$(GO) test -count=1 -timeout 20m ./...

demo: deps build images
	@board-support/sim/demo.sh

demo-down:
	@board-support/sim/demo.sh down

bench: deps build images
	$(GO) run ./cmd/berth-bench -bin $(BIN) -images $(IMAGES)

generate:
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" $(GO) generate ./...

clean:
	rm -rf $(BIN) build
