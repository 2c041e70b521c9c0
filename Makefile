# Every target does its own set-up: dependencies (npm ci), Node 24 (from the npm registry) and the control-plane binaries.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# When this make started: the leftovers check looks only at what this run could have left behind.
STARTED := $(shell date +%s)

.PHONY: test check unit integration e2e e2e-node deps controlplane helm cluster-up cluster-down demo build plugin leftovers clean stack-up stack-down test-node

## test: every check and every test (the CI command); hack/test.sh has the order, and builds the real node beside it
test: deps
	TEST_STARTED=$(STARTED) NODE_E2E_GREP='$(NODE_E2E_GREP)' hack/test.sh

## check: type-check, ESLint, spelling, inclusive language
check: deps
	npm run --silent check

unit: deps
	npm run --silent test:unit

integration: deps controlplane helm
	npm run --silent test:integration

## e2e: the end-to-end scenarios on the local AKS stand-in (e2e/README.md)
e2e: deps controlplane
	npx mocha --config e2e/.mocharc.json

# The end-to-end scenario make test runs on the real node: emergency growth (planned growth of every instance's data
# volume from real rows is test/integration/node/postgres.spec.ts's; the rest: make e2e-node, e2e/README.md).
NODE_E2E_GREP := ^e2e: growth grows at once

## e2e-node: the end-to-end scenarios on the real node with the real CloudNativePG (E2E_FILES: which; default all)
E2E_FILES ?= e2e/scenarios/*.test.ts
E2E_GREP ?=
e2e-node: deps controlplane
	@hack/node/stack.sh status >/dev/null 2>&1 && up_before=1 || up_before=0; \
	  hack/node/stack.sh up >/dev/null; \
	  rc=0; E2E_TARGET=node npx mocha --extension ts --timeout 900000 --reporter spec --forbid-only $(if $(E2E_GREP),--grep '$(E2E_GREP)') $(E2E_FILES) || rc=$$?; \
	  [ $$up_before = 1 ] || hack/node/stack.sh down; exit $$rc

deps:
	@hack/ensure-node.sh

controlplane:
	@hack/controlplane/build.sh >/dev/null

## helm: the helm CLI, built from its Go module (cached), for the chart's tests (charts/cnpg-dynamic-storage/)
helm:
	@hack/helm/build.sh >/dev/null

## demo: the product on its embedded default: local control plane, simulated AKS nodes, real agents and controller
demo: deps controlplane
	@node hack/demo.ts

## cluster-up: a local control plane in the background; prints its kubeconfig path
cluster-up: deps controlplane
	@node hack/cluster.ts up

cluster-down: deps
	@node hack/cluster.ts down

## stack-up: a real node (kubelet, containerd, CNI, CoreDNS, test CSI driver) and control plane; prints its kubeconfig
stack-up: deps controlplane
	@hack/node/stack.sh up

## stack-down: removes everything stack-up created (also after an interrupted or killed run)
stack-down:
	@hack/node/stack.sh down

## test-node: the install and growth tests on the real node (starts the stack when it is not up, stops it afterwards)
test-node: deps controlplane
	npx mocha --config test/.mocharc.node.json

build: deps
	npm run --silent build

## plugin: the kubectl plugin as a self-contained executable for this machine, in dist/plugin/ (docs/plugin.md)
plugin: deps
	hack/plugin/build-sea.sh

## leftovers: remove anything an interrupted test run left behind
leftovers:
	hack/leftovers.sh --clean || true

clean:
	rm -rf dist .cache
