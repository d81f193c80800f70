# cluster-api-provider-nest — every developer action is a target here; `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

ROOT := $(abspath .)
BIN := $(ROOT)/bin
# The real kube-apiserver and etcd that envtest starts, built from the Go module proxy (hack/envtest).
ENVTEST_ASSETS := $(BIN)/k8s
KUBE_VERSION := v1.37.2
KUBE_VERSION_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)

CONTROLLER_GEN := go tool controller-gen
GO_TEST_FLAGS ?= -count=1
TEST_TIMEOUT ?= 30m

##@ General

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9.-]+:.*?##/ { printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: ## Generate deepcopy, CRDs, RBAC and the simulated Infra-cluster CRDs.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) webhook paths=./... output:webhook:artifacts:config=config/webhook
	./hack/gen-infra-crds.sh

.PHONY: verify
verify: generate ## Fail when generated files are stale, gofmt differs or go vet complains.
	@if [ -n "$$(git status --porcelain -- api config test/crd)" ]; then \
		git status --porcelain -- api config test/crd; git diff --stat -- api config test/crd; \
		echo "generated files are stale: run 'make generate' and commit the result"; exit 1; fi
	@files=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$files" ]; then echo "gofmt differs: $$files"; exit 1; fi
	go vet ./...

.PHONY: build
build: ## Build the manager into bin/manager, nest-scheduler and nest-consolidator into bin/
	go build -o $(BIN)/manager .
	$(MAKE) -C scheduler-plugin build

##@ Operations

INFRA_KUBECONFIG ?= $(KUBECONFIG)
INFRA_KUBECONFIG_FLAGS ?=

.PHONY: infra-kubeconfig
infra-kubeconfig: ## Print the kubeconfig Secret of InfraCluster NAME for config/infra-rbac's ServiceAccount in the Infra cluster of INFRA_KUBECONFIG (pipe it to kubectl apply).
	@if [ -z "$(NAME)" ]; then echo "usage: make infra-kubeconfig INFRA_KUBECONFIG=<infra admin kubeconfig> NAME=<InfraCluster> [INFRA_KUBECONFIG_FLAGS='--server https://... --duration 720h']" >&2; exit 1; fi
	@go run ./hack/infra-kubeconfig --kubeconfig "$(INFRA_KUBECONFIG)" --secret-name "$(NAME)-kubeconfig" $(INFRA_KUBECONFIG_FLAGS)

##@ Test

.PHONY: envtest-assets
envtest-assets: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd ## Build kube-apiserver and etcd for envtest into bin/k8s (cached).

$(ENVTEST_ASSETS)/kube-apiserver: hack/envtest/kube-apiserver/go.mod hack/envtest/kube-apiserver/go.sum hack/envtest/kube-apiserver/main.go
	@mkdir -p $(ENVTEST_ASSETS)
	@echo "building kube-apiserver $(KUBE_VERSION) from the Go module proxy (a cold build takes ~7 min on 2 cores)"
	cd hack/envtest/kube-apiserver && go build -trimpath -ldflags "$(KUBE_VERSION_LDFLAGS)" -o $@.tmp . && mv $@.tmp $@

$(ENVTEST_ASSETS)/etcd: hack/envtest/etcd/go.mod hack/envtest/etcd/go.sum hack/envtest/etcd/main.go
	@mkdir -p $(ENVTEST_ASSETS)
	cd hack/envtest/etcd && go build -trimpath -ldflags "-s -w" -o $@.tmp . && mv $@.tmp $@

.PHONY: test
test: verify envtest-assets ## Run every test: verify, unit and envtest suites, the scheduler plugin, clusterctl, end-to-end.
	go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) -C scheduler-plugin test
	$(MAKE) test-clusterctl
	$(MAKE) test-e2e

.PHONY: test-scheduler
test-scheduler: envtest-assets ## Run the scheduler plugin's tests (unit and integration).
	$(MAKE) -C scheduler-plugin test

##@ Benchmarks

.PHONY: bench-webhook
bench-webhook: envtest-assets ## Latency of control-plane Machine admission through the webhooks (BENCH line).
	go run ./test/bench/webhook

.PHONY: bench-scheduler
bench-scheduler: ## Packing and throughput of nest-scheduler against the stock profiles (BENCH lines).
	$(MAKE) -C scheduler-plugin bench

.PHONY: test-unit
test-unit: ## Run the tests without verify (needs envtest-assets).
	go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...

include hack/clusterctl.mk
include hack/sandbox.mk
include hack/bench.mk
