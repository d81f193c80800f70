// Command nest-bench compares how scheduler profiles pack KubeVirt VMs, scheduler_perf style: the
// real scheduler over fake nodes, three workloads (uniform, mix, churn) under three profiles
// (stock LeastAllocated, stock MostAllocated, nest-scheduler). It prints one line per run:
//
//	BENCH scheduler workload=<w> profile=<p> nodes_used=<n> lower_bound=<b> ratio=<n/b> pods_per_s=<r>
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/internal/bench"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/internal/schedconfig"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// stockConfig is an empty configuration: kube-scheduler's defaults, whose NodeResourcesFit
// scores LeastAllocated.
const stockConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
`

// mostAllocatedConfig is the stock profile with NodeResourcesFit switched to MostAllocated, the
// packing that kube-scheduler offers out of the box.
const mostAllocatedConfig = stockConfig + `profiles:
- schedulerName: default-scheduler
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 1
`

func main() {
	configMap := flag.String("config", "../config/scheduler/configmap.yaml", "the nest-scheduler ConfigMap manifest whose profile is measured")
	nodes := flag.Int("nodes", 100, "fake nodes in the cluster")
	cpu := flag.String("node-cpu", "64", "allocatable CPU of each node")
	memory := flag.String("node-memory", "256Gi", "allocatable memory of each node")
	uniform := flag.Int("uniform", 1500, "VMs in the uniform workload")
	mix := flag.Int("mix", 1000, "VMs in the mix workload")
	seed := flag.Uint64("seed", 1, "seed of the mix and churn workloads")
	flag.Parse()
	klog.SetOutput(os.Stderr)

	if err := run(*configMap, *nodes, *cpu, *memory, *uniform, *mix, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "nest-bench:", err)
		os.Exit(1)
	}
}

func run(configMap string, nodeCount int, cpu, memory string, uniform, mix int, seed uint64) error {
	profiles, err := loadProfiles(configMap)
	if err != nil {
		return err
	}
	allocatable := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse(cpu),
		v1.ResourceMemory: resource.MustParse(memory),
		v1.ResourcePods:   resource.MustParse("110"),
	}
	workloads := []bench.Workload{
		bench.Uniform(uniform),
		bench.Mix(mix, seed),
		bench.Churn(mix*4/5, 4, mix*3/10, 0.3, seed),
	}
	registry := frameworkruntime.Registry{nestpacking.Name: nestpacking.New}
	ctx := context.Background()
	for _, w := range workloads {
		for _, p := range profiles {
			res, err := bench.Run(ctx, p.profile, registry, bench.Nodes(nodeCount, allocatable), w)
			if err != nil {
				return fmt.Errorf("workload %s, profile %s: %w", w.Name, p.name, err)
			}
			if res.Pending > 0 {
				return fmt.Errorf("workload %s, profile %s: %d VMs left pending; add nodes", w.Name, p.name, res.Pending)
			}
			fmt.Printf("BENCH scheduler workload=%s profile=%s nodes_used=%d lower_bound=%d ratio=%.3f pods_per_s=%.0f\n",
				w.Name, p.name, res.NodesUsed, res.LowerBound, res.Ratio(), res.PodsPerSecond)
		}
	}
	return nil
}

type namedProfile struct {
	name    string
	profile config.KubeSchedulerProfile
}

// loadProfiles returns the three profiles compared, each decoded and defaulted the way
// kube-scheduler does it; nest-scheduler's comes from the shipped ConfigMap.
func loadProfiles(configMap string) ([]namedProfile, error) {
	stock, err := schedconfig.Decode([]byte(stockConfig))
	if err != nil {
		return nil, err
	}
	mostAllocated, err := schedconfig.Decode([]byte(mostAllocatedConfig))
	if err != nil {
		return nil, err
	}
	nest, err := schedconfig.LoadConfigMap(configMap)
	if err != nil {
		return nil, err
	}
	return []namedProfile{
		{name: "stock-least-allocated", profile: stock.Profiles[0]},
		{name: "stock-most-allocated", profile: mostAllocated.Profiles[0]},
		{name: "nest-scheduler", profile: nest.Profiles[0]},
	}, nil
}
