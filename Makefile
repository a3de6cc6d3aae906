# Berth — a Kubernetes CRI runtime. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := /usr/local/go/bin:$(PATH)

GO          ?= go
VERSION     ?= 0.1.0-dev
GIT_SHA     := $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS     := -X main.version=$(VERSION)$(if $(GIT_SHA),+$(GIT_SHA))
BERTH_CACHE ?= /var/cache/berth-dev
BERTH_BIN   := $(BERTH_CACHE)/bin
BERTH_REGISTRY ?= 127.0.0.1:5000
export BERTH_CACHE BERTH_REGISTRY
# libcontainer's seccomp support (cgo, libseccomp from hack/install-deps.sh).
export GOFLAGS := -tags=seccomp

# Fuzz targets run briefly by `make test`: package:FuzzName.
FUZZ_TARGETS := $(shell grep -lr --include='*_test.go' '^func Fuzz' . 2>/dev/null | xargs -r grep -ho '^func Fuzz[A-Za-z0-9_]*' | sort -u | sed 's/^func //')
FUZZTIME    ?= 20000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/berthd, bin/berth-shim (static, no cgo: it lives as long as its pod) and bin/berth-runtime
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/berthd ./cmd/berthd
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/berth-shim ./cmd/berth-shim
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/berth-runtime ./cmd/berth-runtime

.PHONY: deps
deps: ## install what the build and tests need (idempotent; hack/install-deps.sh)
	hack/install-deps.sh

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BERTH_BIN)/staticcheck ./...

.PHONY: test-unit
test-unit: ## unit tests with the race detector (integration tests skip without BERTHD)
	$(GO) test -race -count=1 ./...

.PHONY: fuzz
fuzz: ## run every fuzz target briefly ($(FUZZTIME) inputs each)
	@for target in $(FUZZ_TARGETS); do \
		pkg=$$(grep -lr --include='*_test.go' "^func $$target(" . | head -1 | xargs dirname); \
		echo "fuzz $$target in $$pkg"; \
		$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) "$$pkg"; \
	done

.PHONY: images
images: ## start the local test registry and push the test images (hack/registry.sh, hack/test-images.sh)
	hack/registry.sh start
	hack/test-images.sh

.PHONY: test-integration
test-integration: build images ## integration tests against a real berthd and the test registry (root)
	BERTHD=$(CURDIR)/bin/berthd BERTH_SHIM=$(CURDIR)/bin/berth-shim CRICTL=$(BERTH_BIN)/crictl BERTH_TEST_REGISTRY=$(BERTH_REGISTRY) \
		BERTH_TEST_ROOTFS=$(BERTH_CACHE)/test-images/stage/busybox \
		$(GO) test -count=1 -p 1 ./test/... ./sandbox/runner/...

.PHONY: test-crash
test-crash: build images ## berthd killed at random points during pod churn, then the host checked for leftovers (root; test/crash)
	BERTHD=$(CURDIR)/bin/berthd BERTH_SHIM=$(CURDIR)/bin/berth-shim BERTH_TEST_REGISTRY=$(BERTH_REGISTRY) \
		$(GO) test -count=1 -v ./test/crash

.PHONY: critest
critest: build ## run critest against berthd and check test/critest/must-pass.txt (root)
	hack/critest.sh

.PHONY: test-vm
test-vm: build images ## integration tests and critest in a VM with cgroup v2 and AppArmor (hack/test-vm.sh; root)
	hack/test-vm.sh

.PHONY: test
test: deps build lint test-unit fuzz test-install ## everything CI runs: deps, build, lint, unit, fuzz, integration, critest, the VM tests
	hack/registry.sh start
	trap 'hack/registry.sh stop' EXIT; $(MAKE) --no-print-directory test-integration critest test-vm

.PHONY: bench
bench: deps build ## Go benchmarks, then pull and pod benchmarks against containerd (hack/bench-pull.sh, hack/bench-pods.sh; root)
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	hack/registry.sh start
	trap 'hack/registry.sh stop' EXIT; hack/test-images.sh && hack/bench-pull.sh && hack/bench-pods.sh

.PHONY: soak
soak: deps build ## 20 clients churn pods on berthd for BENCH_SOAK (10m): memory and fds, first minute against last (root)
	hack/registry.sh start
	trap 'hack/registry.sh stop' EXIT; hack/test-images.sh && hack/bench-pods.sh soak

.PHONY: run
run: deps build ## install deps, build, and run berthd in the foreground (root)
	bin/berthd

.PHONY: install
install: build ## install Berth on this node (hack/install.sh: binaries, berth.service enabled and started under systemd; config, crictl.yaml and CNI plugins where absent; DESTDIR, PREFIX)
	hack/install.sh install

.PHONY: uninstall
uninstall: ## stop and remove what make install put here (changed configs, the state and running pods stay)
	hack/install.sh uninstall

.PHONY: test-install
test-install: build ## make install and uninstall into a temp DESTDIR, checked (hack/test-install.sh)
	hack/test-install.sh

.PHONY: clean
clean: ## remove build output
	rm -rf bin _output
