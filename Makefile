# pisanix-go. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := build

GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 10s
FUZZ_PKGS ?= ./...
PKG       := github.com/database-mesh/pisanix-go
VERSION_PKG := $(PKG)/internal/version

GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).GitCommit=$(GIT_COMMIT) \
	-X $(VERSION_PKG).GitBranch=$(GIT_BRANCH) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

# Every cmd/<name> directory that holds Go files becomes bin/<name>.
CMDS := $(notdir $(patsubst %/,%,$(dir $(wildcard cmd/*/*.go))))
CMDS := $(sort $(CMDS))

.PHONY: build test test-unit vet lint fmt bench chaos demo fuzz clean help envtest generate images $(addprefix $(BIN)/,$(CMDS))

# controller-gen, pinned; installed into bin/ on first use.
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)

# staticcheck, pinned (v0.8.2 is staticcheck 2026.2.2); installed into bin/ on first use.
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK ?= $(BIN)/staticcheck-$(STATICCHECK_VERSION)

build: $(addprefix $(BIN)/,$(CMDS)) ## build bin/pisa-proxy (and every other cmd/*)
	@[ -n "$(CMDS)" ] || echo "no cmd/* with Go files to build yet"

$(addprefix $(BIN)/,$(CMDS)): $(BIN)/%:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

test: ## start/verify MariaDB on 127.0.0.1:3306, go vet, envtest binaries, then all tests with -race
	@hack/ensure-packages.sh gcc:/usr/bin/gcc libc6-dev:/usr/include/stdio.h iproute2:/usr/sbin/tc # -race needs cgo; the QoS tests need ip and tc
	@echo "== MariaDB on 127.0.0.1:3306"; time hack/ensure-mariadb.sh
	@echo "== go vet"; time $(GO) vet ./...
	@echo "== packaging copies in step (CRDs, role, dashboard, daemon manifest)"; hack/sync-chart-crds.sh --check
	@echo "== envtest: kube-apiserver + etcd (cached; cold build 10-45 min)"; time hack/envtest.sh
	@echo "== helm, kustomize (cached; cold build a few minutes)"; time hack/tools.sh helm && time hack/tools.sh kustomize
	@echo "== go test -race"; assets=$$(hack/envtest.sh) && export KUBEBUILDER_ASSETS=$$assets && \
		export PISANIX_HELM=$$(hack/tools.sh helm) PISANIX_KUSTOMIZE=$$(hack/tools.sh kustomize) && \
		time $(GO) test -race -count=1 -timeout 30m ./...

test-unit: ## the tests that need no MariaDB, envtest or helm (go test -short; results cached between runs)
	@echo "== go test -short (KUBEBUILDER_ASSETS, PISANIX_HELM, PISANIX_KUSTOMIZE and CI unset: those tests skip)"
	@time env -u KUBEBUILDER_ASSETS -u PISANIX_HELM -u PISANIX_KUSTOMIZE CI= $(GO) test -short $(or $(PKGS),./...)

IMAGE_REPO ?= ghcr.io/database-mesh
# The tag the chart pulls by default: its appVersion.
IMAGE_TAG  ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/pisanix/Chart.yaml)
IMAGES     := pisa-proxy pisa-controller pisa-daemon
IMAGE_DIR  ?= dist/images

.PHONY: images images-docker cluster-up cluster-down e2e

images: ## the three images as docker-archive tarballs in dist/images, no Docker needed (IMAGE_REPO, IMAGE_TAG; version in a label)
	@mkdir -p $(BIN)/static
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/static/ $(addprefix ./cmd/,$(IMAGES))
	$(GO) run ./hack/images -out $(IMAGE_DIR) -repo $(IMAGE_REPO) -tag $(IMAGE_TAG) -version $(VERSION) -commit $(GIT_COMMIT) \
		$(foreach c,$(IMAGES),$(c)=$(BIN)/static/$(c))

images-docker: ## the three images with docker build (Dockerfile; IMAGE_REPO, IMAGE_TAG)
	@for c in $(IMAGES); do \
		echo "== $(IMAGE_REPO)/$$c:$(IMAGE_TAG)"; \
		docker build --build-arg CMD=$$c --build-arg VERSION=$(VERSION) --build-arg GIT_COMMIT=$(GIT_COMMIT) \
			-t $(IMAGE_REPO)/$$c:$(IMAGE_TAG) . || exit 1; \
	done

cluster-up: images ## a one-node Kubernetes on this machine (hack/cluster.sh up; root), the images imported
	IMAGE_DIR=$(abspath $(IMAGE_DIR)) hack/cluster.sh up

cluster-down: ## stop it and remove everything it made (hack/cluster.sh down)
	hack/cluster.sh down

e2e: images ## the chart on a one-node cluster with real pods: injection, circuit break, QoS, controller kill, upgrade, uninstall (test/cluster; root; ~2 min warm, cold: see docs/deploy.md)
	@# The images the test upgrades to: the programs linked again as version $(VERSION)-e2e-next, tag e2e-next.
	$(MAKE) --no-print-directory images BIN=$(BIN)/e2e-next IMAGE_DIR=$(IMAGE_DIR)/e2e-next IMAGE_TAG=e2e-next VERSION=$(VERSION)-e2e-next
	IMAGE_DIR=$(abspath $(IMAGE_DIR)) NEXT_IMAGE_DIR=$(abspath $(IMAGE_DIR)/e2e-next) hack/cluster.sh e2e

envtest: ## build kube-apiserver + etcd for the controller tests (cached in ~/.cache/pisanix/envtest) and print the directory
	@hack/envtest.sh

generate: $(CONTROLLER_GEN) ## regenerate api/v1alpha1 deepcopy, config/crd/bases, config/rbac/role.yaml (controller-gen) and their packaging copies (chart CRDs and ClusterRole)
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=pisa-controller paths=./internal/controller/... output:rbac:artifacts:config=config/rbac
	hack/sync-chart-crds.sh

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)/.controller-gen
	GOBIN=$(abspath $(BIN))/.controller-gen $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.controller-gen/controller-gen $@ && rmdir $(BIN)/.controller-gen

$(STATICCHECK):
	@mkdir -p $(BIN)/.staticcheck
	GOBIN=$(abspath $(BIN))/.staticcheck $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/.staticcheck/staticcheck $@ && rmdir $(BIN)/.staticcheck

vet:
	$(GO) vet ./...

lint: $(STATICCHECK) ## gofmt lists nothing, go.mod/go.sum tidy (go mod tidy -diff), go vet, staticcheck (pinned)
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*')); \
	if [ -n "$$out" ]; then echo "gofmt -l reports (run: make fmt):"; echo "$$out"; exit 1; fi
	@echo "== go mod tidy -diff"; $(GO) mod tidy -diff || { echo "go.mod/go.sum not tidy: run go mod tidy"; exit 1; }
	@echo "== go vet"; $(GO) vet ./...
	@echo "== staticcheck $(STATICCHECK_VERSION)"; $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files --cached --others --exclude-standard '*.go')

bench: ## sysbench: direct MariaDB vs HAProxy vs pisa-proxy (BENCH_TIME, BENCH_THREADS)
	hack/bench.sh

chaos: ## issue 10's drills against MariaDB servers it starts (kill in a transaction, restart, promoted replica...): one line each, fails if anything was lost
	hack/chaos.sh

demo: ## MariaDB + pisa-proxy on 127.0.0.1:3307, a few queries through it, its metrics
	hack/demo.sh

fuzz: ## every Fuzz* target for FUZZTIME (default 10s) each
	@set -euo pipefail; \
	list=$$($(GO) test -list '^Fuzz' $(FUZZ_PKGS) | awk '/^Fuzz/ {f[n++]=$$1; next} /^ok / {for (i=0;i<n;i++) print $$2, f[i]; n=0}'); \
	if [ -z "$$list" ]; then echo "no fuzz targets"; exit 0; fi; \
	while read -r pkg fn; do \
		echo "== $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done <<< "$$list"

clean:
	rm -rf $(BIN) dist

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'
