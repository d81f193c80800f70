# The sandbox, the end-to-end suite and the end-to-end benchmark, included by the Makefile (after
# ROOT, BIN, GO_TEST_FLAGS and the envtest-assets target are set, and after hack/clusterctl.mk, which
# builds bin/clusterctl).
#
# test/sandbox and test/e2e are modules of their own (like test/clusterctl): they run CAPI's
# KubeadmControlPlane and kubeadm bootstrap controllers and CAPI's webhooks, whose dependencies the
# provider's module does not need.

# Flags of the sandbox command, e.g. SANDBOX_ARGS="--flavor default --workers 2 --until-ready".
SANDBOX_ARGS ?=
# Flags of the end-to-end benchmark: T tenant clusters × (3 control-plane + W workers).
BENCH_E2E_ARGS ?= --tenants 5 --workers 3
E2E_TIMEOUT ?= 30m

##@ Sandbox and end-to-end

# What the sandbox runs besides Go code: kube-apiserver and etcd, clusterctl, nest-scheduler.
.PHONY: sandbox-prerequisites
sandbox-prerequisites: envtest-assets clusterctl
	$(MAKE) -C scheduler-plugin build

.PHONY: sandbox
sandbox: sandbox-prerequisites ## Run the whole system on this machine until Ctrl-C (docs/sandbox.md; SANDBOX_ARGS=...).
	cd test/sandbox && go build -o $(BIN)/sandbox ./cmd/sandbox
	$(BIN)/sandbox $(SANDBOX_ARGS)

.PHONY: test-e2e
test-e2e: sandbox-prerequisites ## Run the end-to-end suite on the sandbox (HA, scaling, bare metal, Infra-cluster loss and recovery, deletion).
	cd test/sandbox && go vet ./... && go test $(GO_TEST_FLAGS) ./...
	cd test/e2e && go vet ./... && go test $(GO_TEST_FLAGS) -v -timeout $(E2E_TIMEOUT) ./... -args -ginkgo.v

.PHONY: bench-e2e
bench-e2e: sandbox-prerequisites ## T tenants × (3 control-plane + W workers) through the whole stack (BENCH line; BENCH_E2E_ARGS=...).
	cd test/sandbox && go build -o $(BIN)/bench-e2e ./cmd/bench-e2e
	$(BIN)/bench-e2e $(BENCH_E2E_ARGS)
