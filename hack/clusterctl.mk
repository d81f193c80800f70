# clusterctl release artifacts and their tests, included by the Makefile (after ROOT, BIN,
# GO_TEST_FLAGS and TEST_TIMEOUT are set).
#
# clusterctl and kustomize are built from the Go module proxy (modules under hack/tools/) into the
# git-ignored bin/, and rebuilt only when their module changes.

CLUSTERCTL := $(BIN)/clusterctl
KUSTOMIZE := $(BIN)/kustomize
# The images of the release: the manager's (config/manager has
# ghcr.io/nestcapi/cluster-api-provider-nest:dev) and nest-scheduler's, which also carries
# nest-consolidator (config/scheduler and config/consolidator have ghcr.io/nestcapi/nest-scheduler:dev).
# Empty: those of config/.
IMG ?=
SCHEDULER_IMG ?=
RELEASE_DIR ?= $(ROOT)/out
# clusterctl reports the CAPI version its module pins, as CAPI's own release build does.
CLUSTERCTL_CAPI_VERSION = $(shell cd hack/tools/clusterctl && go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api)
CLUSTERCTL_LDFLAGS = -s -w \
	-X sigs.k8s.io/cluster-api/version.gitVersion=$(CLUSTERCTL_CAPI_VERSION) \
	-X sigs.k8s.io/cluster-api/version.gitTreeState=clean

##@ Release

.PHONY: clusterctl
clusterctl: $(CLUSTERCTL) ## Build CAPI's clusterctl into bin/ from the Go module proxy (cached).

$(CLUSTERCTL): hack/tools/clusterctl/go.mod hack/tools/clusterctl/go.sum hack/tools/clusterctl/main.go
	@mkdir -p $(BIN)
	@echo "building clusterctl $(CLUSTERCTL_CAPI_VERSION) from the Go module proxy (a cold build takes a few minutes)"
	cd hack/tools/clusterctl && go build -trimpath -ldflags "$(CLUSTERCTL_LDFLAGS)" -o $@.tmp . && mv $@.tmp $@

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize into bin/ from the Go module proxy (cached).

$(KUSTOMIZE): hack/tools/kustomize/go.mod hack/tools/kustomize/go.sum
	@mkdir -p $(BIN)
	cd hack/tools/kustomize && go build -trimpath -ldflags "-s -w" -o $@.tmp sigs.k8s.io/kustomize/kustomize/v5 && mv $@.tmp $@

.PHONY: release-manifests
release-manifests: $(KUSTOMIZE) ## Write the release assets into out/: components, nest-scheduler, nest-consolidator, metadata, templates (IMG=, SCHEDULER_IMG= set the images).
	KUSTOMIZE=$(KUSTOMIZE) IMG=$(IMG) SCHEDULER_IMG=$(SCHEDULER_IMG) ./hack/release-manifests.sh $(RELEASE_DIR)

.PHONY: docker-build
docker-build: ## Build the images IMG (the manager) and SCHEDULER_IMG (nest-scheduler and nest-consolidator), by default those of config/; needs Docker.
	docker build -t $(or $(IMG),ghcr.io/nestcapi/cluster-api-provider-nest:dev) .
	docker build -t $(or $(SCHEDULER_IMG),ghcr.io/nestcapi/nest-scheduler:dev) scheduler-plugin

##@ Test

# test/clusterctl is its own module: it runs CAPI's webhooks and topology controllers, whose
# dependencies the provider's module does not need.
.PHONY: test-clusterctl
test-clusterctl: $(CLUSTERCTL) $(KUSTOMIZE) envtest-assets ## Run the clusterctl tests: templates, ClusterClass, docs, components, clusterctl init.
	cd test/clusterctl && go vet ./... && go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) ./...
