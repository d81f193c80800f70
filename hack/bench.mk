# Scale benchmarks of the provider's manager (issues 3, 4 and 19), included by the top Makefile. Each
# starts a management and three Infra API servers, fake nodes and KubeVirt simulators in the
# benchmark's process, runs bin/manager as a separate process (its RSS and /metrics are its own),
# prints one BENCH line on stdout and its details on stderr, and stops everything on exit or Ctrl-C.

# bench-infra: N NestClusters, then the manager's requests to the Infra clusters once steady.
BENCH_INFRA_FLAGS ?= -n 100 -window 60s
# bench-machines: N NestMachines over three Infra clusters. The manager's default client limits
# (--kube-api-qps=50, --infra-api-qps=50) once held it to about four machines a second (a machine cost
# ~12 management-cluster requests), so the BENCH line is measured with raised limits and -baseline
# adds an INFO line measured with the defaults.
BENCH_MACHINES_FLAGS ?= -n 1000 \
	-manager-args="--kube-api-qps=500 --kube-api-burst=1000 --infra-api-qps=200 --infra-api-burst=400" -baseline
# bench-reaction: machines arriving open loop well below saturation, each deleted after -lifetime; the
# manager with its default flags. About 3 minutes with the defaults (2/s for 2 min).
BENCH_REACTION_FLAGS ?= -rate 2 -duration 2m -lifetime 30s
# bench-scale: one fleet grown through the sizes, with the limits of bench-machines so that a stage
# is not held up by client-side throttling. About 10 minutes for 100, 1000, 3000 on two cores.
BENCH_SCALE_FLAGS ?= -sizes 100,1000,3000 -window 60s \
	-manager-args="--kube-api-qps=500 --kube-api-burst=1000 --infra-api-qps=200 --infra-api-burst=400"

.PHONY: bench-infra
bench-infra: envtest-assets ## Steady-state requests of the manager to three Infra clusters with 100 NestClusters (BENCH line).
	go build -o $(BIN)/manager .
	go run ./test/bench/infra -manager=$(BIN)/manager $(BENCH_INFRA_FLAGS)

.PHONY: bench-machines
bench-machines: envtest-assets ## 1000 NestMachines to running VMs over three Infra clusters: wall time, ready latency, requests, RSS (BENCH line).
	go build -o $(BIN)/manager .
	go run ./test/bench/machines -manager=$(BIN)/manager $(BENCH_MACHINES_FLAGS)

.PHONY: bench-reaction
bench-reaction: envtest-assets ## The manager's reaction times (create, ready, providerID, delete) to machines arriving at 2/s, with the machine's idle CPU (BENCH line).
	go build -o $(BIN)/manager .
	go run ./test/bench/reaction -manager=$(BIN)/manager $(BENCH_REACTION_FLAGS)

.PHONY: bench-scale
bench-scale: envtest-assets ## The manager's CPU, requests and memory per machine as one fleet grows to 100, 1000 and 3000 machines (BENCH line per size).
	go build -o $(BIN)/manager .
	go run ./test/bench/scale -manager=$(BIN)/manager $(BENCH_SCALE_FLAGS)
