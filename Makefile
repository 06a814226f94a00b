# drover developer menu: `make help`.
SHELL := /bin/bash
GO ?= go
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/drover-hpc/drover/internal/buildinfo.Version=$(VERSION) \
           -X github.com/drover-hpc/drover/internal/buildinfo.Commit=$(COMMIT)
TESTBED := scripts/testbed
# Integration tests read the testbed's config; `make test` makes a missing testbed a failure.
TESTENV = set -a; eval "$$($(TESTBED) env)"; set +a; export DROVER_REQUIRE_TESTBED=1

.PHONY: help install build test unit e2e-slurm e2e-place e2e-pft testbed-up testbed-down testbed-status demo lint

help: ## show this menu
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

install: ## install the Debian packages the build and the testbed need (apt-get; quick when present)
	$(TESTBED) install

build: ## build bin/drover
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/drover ./cmd/drover

test: install build testbed-up ## unit + integration tests against the testbed (brings it up when needed), then e2e-slurm, e2e-place, e2e-pft
	$(TESTENV); $(GO) test -count=1 -timeout 30m ./...
	$(TESTENV); bin/drover check
	$(MAKE) --no-print-directory e2e-slurm
	$(MAKE) --no-print-directory e2e-place
	$(MAKE) --no-print-directory e2e-pft

e2e-slurm: build testbed-up ## Slurm jobs in vnodes survive live migration; ends with a JSON line of figures
	@set -o pipefail; $(TESTENV); rm -f "$$DROVER_TESTBED_DIR/e2e-slurm.json"; \
	  $(GO) test -tags e2e -count=1 -timeout 20m -run TestSlurmJobsSurviveLiveMigration -v ./internal/e2e/ \
	  | tee "$$DROVER_TESTBED_DIR/e2e-slurm.log" | grep -vE '^\{'
	@$(TESTENV); cat "$$DROVER_TESTBED_DIR/e2e-slurm.json"

e2e-place: build testbed-up ## a hot, power-hungry hv1 BMC: the resumed vnode goes to hv2 and drover explain says why; ends with a JSON line
	@set -o pipefail; $(TESTENV); rm -f "$$DROVER_TESTBED_DIR/e2e-place.json"; \
	  $(GO) test -tags e2e -count=1 -timeout 10m -run TestPlacementAvoidsHotHypervisor -v ./internal/e2e/ \
	  | tee "$$DROVER_TESTBED_DIR/e2e-place.log" | grep -vE '^\{'
	@$(TESTENV); cat "$$DROVER_TESTBED_DIR/e2e-place.json"

e2e-pft: build testbed-up ## proactive fault tolerance: evacuation ahead of a warming CPU, no flapping on noise, server kill -9 in every phase, drover vs bare virsh; ends with a JSON line
	@set -o pipefail; $(TESTENV); rm -f "$$DROVER_TESTBED_DIR/e2e-pft.json"; \
	  $(GO) test -tags e2e -count=1 -timeout 25m -run 'TestPFT' -v ./internal/e2e/ \
	  | tee "$$DROVER_TESTBED_DIR/e2e-pft.log" | grep -vE '^\{'
	@$(TESTENV); cat "$$DROVER_TESTBED_DIR/e2e-pft.json"

unit: ## unit tests only (integration tests skip without a testbed)
	env -u DROVER_CONFIG -u TEST_DATABASE_URL DROVER_TESTBED_DIR=/nonexistent $(GO) test -count=1 ./...

testbed-up: build ## install missing Debian packages, start the local testbed, migrate its database
	$(TESTBED) up
	$(TESTENV); bin/drover db migrate

testbed-down: ## stop everything the testbed started
	$(TESTBED) down

testbed-status: ## one row per testbed component
	$(TESTBED) status

demo: install build testbed-up ## the main job on the testbed: check every component, Slurm jobs in vnodes drover places (avoiding a hot hypervisor) and live-migrates
	$(TESTENV); bin/drover check
	$(MAKE) --no-print-directory e2e-slurm
	$(MAKE) --no-print-directory e2e-place

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
