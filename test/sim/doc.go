// Package sim runs the simulated Infra-cluster components of one Infra API server in one manager: the
// KubeVirt simulator (package kubevirt: virt-controller, virt-handler, CDI, the garbage collector and,
// optionally, the scheduler) and the Metal3 simulator (package metal3: baremetal-operator). Package nodes
// makes the fake Nodes both kinds of cluster need: Infra nodes for virt-launcher pods, tenant nodes for
// booted machines.
//
// Nothing here runs a workload: there are no VMs, no disks, no BMCs and no kubelets. The simulators
// write the objects and statuses the real components would, in the order they would, so that a provider,
// the sandbox and the scale benchmarks meet the API they meet in production. Each package's doc says
// what it simulates and what it does not.
//
// Typical use, one per Infra API server:
//
//	infra, err := sim.Run(ctx, cfg, sim.Options{
//		KubeVirt: &kubevirt.Options{ID: 1, SelfSchedule: true, OnRunning: registerTenantNode},
//		Metal3:   &metal3.Options{ID: 1},
//	})
package sim
