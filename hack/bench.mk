# Scale benchmarks of the provider's manager (issues 3 and 4), included by the top Makefile. Each
# starts a management and three Infra API servers, fake nodes and KubeVirt simulators in the
# benchmark's process, runs bin/manager as a separate process (its RSS and /metrics are its own),
# prints one BENCH line on stdout and its details on stderr, and stops everything on exit or Ctrl-C.

# bench-infra: N NestClusters, then the manager's requests to the Infra clusters once steady.
BENCH_INFRA_FLAGS ?= -n 100 -window 60s
# bench-machines: N NestMachines over three Infra clusters. The manager's default client limits
# (--kube-api-qps=50, --infra-api-qps=50) hold it to about four machines a second (a machine costs
# ~12 management-cluster requests), so the BENCH line is measured with raised limits and -baseline
# adds an INFO line measured with the defaults.
BENCH_MACHINES_FLAGS ?= -n 1000 \
	-manager-args="--kube-api-qps=500 --kube-api-burst=1000 --infra-api-qps=200 --infra-api-burst=400" -baseline

.PHONY: bench-infra
bench-infra: envtest-assets ## Steady-state requests of the manager to three Infra clusters with 100 NestClusters (BENCH line).
	go build -o $(BIN)/manager .
	go run ./test/bench/infra -manager=$(BIN)/manager $(BENCH_INFRA_FLAGS)

.PHONY: bench-machines
bench-machines: envtest-assets ## 1000 NestMachines to running VMs over three Infra clusters: wall time, ready latency, requests, RSS (BENCH line).
	go build -o $(BIN)/manager .
	go run ./test/bench/machines -manager=$(BIN)/manager $(BENCH_MACHINES_FLAGS)
