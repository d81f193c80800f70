// Command nest-bench compares how scheduler profiles pack KubeVirt VMs, scheduler_perf style: the
// real scheduler over fake nodes, under three profiles (stock LeastAllocated, stock MostAllocated,
// nest-scheduler), and any variants of nest-scheduler's ConfigMap given with --compare, measured
// side by side in one run.
//
// Two sets of workloads. The small-VM set (uniform, mix, churn: 1–4 vCPU VMs on 64-CPU nodes)
// runs once per profile and prints
//
//	BENCH scheduler workload=<w> profile=<p> nodes_used=<n> lower_bound=<b> offline_ffd=<o> ratio=<n/b> [nodes_after_consolidation=<c> migrations=<m>] pods_per_s=<r>
//
// The nested-OpenShift set (tenants, tenants-skewed, bulk, fragment, hetero, tenant-churn: 8–16
// vCPU VMs on 48-CPU nodes, see internal/bench) runs every seed several times per profile and
// prints one line per workload and profile with means over the runs, and the comparison with
// stock MostAllocated: the mean difference in nodes, and the worst seed (mean over its repeats).
//
//	BENCH scheduler workload=<w> profile=<p> runs=<k> nodes_used=<mean> lower_bound=<mean> offline_ffd=<mean> ratio_offline=<n/o> vs_most_allocated=<±%> worst_seed_vs_most_allocated=<±nodes> [nodes_after_consolidation=<mean> migrations=<mean>] pods_per_s=<mean>
//
// then one summary line per profile over those workloads:
//
//	BENCH scheduler summary profile=<p> workloads=<k> vs_most_allocated_mean=<±%> vs_most_allocated_one_size_nodes=<±%> seeds_worse_than_most_allocated=<i>/<j> pods_per_s_vs_most_allocated=<ratio>
//
// The consolidation figures appear for workloads that delete VMs: consolidation.PlanMigrations
// run over the final placement until it moves nothing (internal/bench Consolidate).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
// packing that kube-scheduler offers out of the box, scoring every node as nest-scheduler does
// (the default samples some of them above 100 nodes, which would only make it pack worse).
const mostAllocatedConfig = stockConfig + `profiles:
- schedulerName: default-scheduler
  percentageOfNodesToScore: 100
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

const mostAllocated = "stock-most-allocated"

type options struct {
	configMap            string
	nodes                int
	cpu, memory          string
	uniform, mix         int
	seed                 uint64
	seeds, repeats       int
	tenants              int
	workloads, verbose   string
	compare              string
	deschedulerThreshold float64
}

func main() {
	var o options
	flag.StringVar(&o.configMap, "config", "../config/scheduler/configmap.yaml", "the nest-scheduler ConfigMap manifest whose profile is measured")
	flag.IntVar(&o.nodes, "nodes", 100, "fake nodes in the cluster of the small-VM workloads")
	flag.StringVar(&o.cpu, "node-cpu", "64", "allocatable CPU of each node of the small-VM workloads")
	flag.StringVar(&o.memory, "node-memory", "256Gi", "allocatable memory of each node of the small-VM workloads")
	flag.IntVar(&o.uniform, "uniform", 1500, "VMs in the uniform workload")
	flag.IntVar(&o.mix, "mix", 1000, "VMs in the mix workload")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the small-VM mix and churn workloads")
	flag.IntVar(&o.seeds, "seeds", 8, "seeds of each nested-OpenShift workload (1..seeds)")
	flag.IntVar(&o.tenants, "tenants", 40, "tenants of each nested-OpenShift workload; the nodes scale with them")
	flag.IntVar(&o.repeats, "repeats", 2, "runs of each nested-OpenShift workload and seed (ties are broken at random)")
	flag.StringVar(&o.workloads, "workloads", "", "comma-separated workloads to run; empty runs all")
	flag.StringVar(&o.compare, "compare", "", "extra profiles measured side by side, as comma-separated name=path of scheduler ConfigMap manifests (a variant of the shipped one)")
	flag.Float64Var(&o.deschedulerThreshold, "descheduler-threshold", 0.5, "the descheduler's HighNodeUtilization threshold (a fraction of allocatable CPU and memory) played over tenant-churn's final placement; 0 skips it")
	flag.StringVar(&o.verbose, "runs", "", "also print one BENCH-RUN line per run of these comma-separated workloads ('all' for every one)")
	flag.Parse()
	klog.SetOutput(os.Stderr)

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "nest-bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	profiles, err := loadProfiles(o.configMap, o.compare)
	if err != nil {
		return err
	}
	selected := func(name string, list string) bool {
		return list == "all" || (list == "" && name != "") || strings.Contains(","+list+",", ","+name+",")
	}
	registry := frameworkruntime.Registry{nestpacking.Name: nestpacking.New}
	ctx := context.Background()

	small := bench.Nodes(o.nodes, allocatable(o.cpu, o.memory))
	for _, w := range []bench.Workload{
		bench.Uniform(o.uniform),
		bench.Mix(o.mix, o.seed),
		bench.Churn(o.mix*4/5, 4, o.mix*3/10, 0.3, o.seed),
	} {
		if !selected(w.Name, o.workloads) {
			continue
		}
		w.Nodes = small
		for _, p := range profiles {
			res, err := runOnce(ctx, p, registry, w)
			if err != nil {
				return err
			}
			fmt.Printf("BENCH scheduler workload=%s profile=%s nodes_used=%d lower_bound=%d offline_ffd=%d ratio=%.3f%s pods_per_s=%.0f\n",
				w.Name, p.name, res.NodesUsed, res.LowerBound, res.OfflineFFD, res.Ratio(), consolidated(w, float64(res.Consolidated.NodesUsed), float64(res.Consolidated.Migrations)), res.PodsPerSecond)
		}
	}

	overall := map[string]*acrossWorkloads{}
	for _, p := range profiles {
		overall[p.name] = &acrossWorkloads{}
	}
	for _, gen := range openShiftWorkloads(o.tenants, o.deschedulerThreshold) {
		name := gen(1).Name
		if !selected(name, o.workloads) {
			continue
		}
		stats := map[string]*summary{}
		for _, p := range profiles {
			stats[p.name] = &summary{}
		}
		for seed := uint64(1); seed <= uint64(o.seeds); seed++ {
			w := gen(seed)
			for rep := range o.repeats {
				for _, p := range profiles {
					res, err := runOnce(ctx, p, registry, w)
					if err != nil {
						return err
					}
					stats[p.name].add(int(seed), res)
					stats[p.name].mixedNodes = mixedSizes(w.Nodes)
					if selected(name, o.verbose) && o.verbose != "" {
						fmt.Printf("BENCH-RUN scheduler workload=%s profile=%s seed=%d repeat=%d nodes_used=%d lower_bound=%d offline_ffd=%d%s pods_per_s=%.0f\n",
							name, p.name, seed, rep, res.NodesUsed, res.LowerBound, res.OfflineFFD, consolidated(w, float64(res.Consolidated.NodesUsed), float64(res.Consolidated.Migrations))+
								descheduled(w, float64(res.Descheduled.NodesUsed), float64(res.Descheduled.Migrations)), res.PodsPerSecond)
					}
				}
			}
		}
		base := stats[mostAllocated]
		for _, p := range profiles {
			s := stats[p.name]
			fmt.Printf("BENCH scheduler workload=%s profile=%s runs=%d nodes_used=%.1f lower_bound=%.1f offline_ffd=%.1f ratio_offline=%.3f vs_most_allocated=%+.1f%% worst_seed_vs_most_allocated=%+.1f%s pods_per_s=%.0f\n",
				name, p.name, s.runs, s.mean(s.nodes), s.mean(s.bound), s.mean(s.offline), s.mean(s.nodes)/s.mean(s.offline),
				100*(s.mean(s.nodes)/base.mean(base.nodes)-1), s.worstAgainst(base), consolidated(gen(1), s.mean(s.consolidated), s.mean(s.migrations))+descheduled(gen(1), s.mean(s.descheduled), s.mean(s.deschedulerMigrations))+consolidatedVersusDescheduled(gen(1), s, base), s.mean(s.podsPerSecond))
			overall[p.name].add(s, base)
		}
	}
	for _, p := range profiles {
		if a := overall[p.name]; a.workloads > 0 {
			fmt.Printf("BENCH scheduler summary profile=%s workloads=%d vs_most_allocated_mean=%+.1f%% vs_most_allocated_one_size_nodes=%+.1f%% seeds_worse_than_most_allocated=%d/%d pods_per_s_vs_most_allocated=%.2f\n",
				p.name, a.workloads, 100*a.vs/float64(a.workloads), 100*a.vsOneSize/float64(max(a.oneSize, 1)), a.seedsWorse, a.seeds, a.throughput/float64(a.workloads))
		}
	}
	return nil
}

// acrossWorkloads sums one profile's comparison with stock MostAllocated over the nested-OpenShift
// workloads: the mean relative difference in nodes used (over all of them, and over those on
// nodes of one size, where MostAllocated does not open small nodes first), the seeds where it
// used more nodes, and the throughput ratio.
type acrossWorkloads struct {
	workloads, oneSize, seeds, seedsWorse int
	vs, vsOneSize, throughput             float64
}

func (a *acrossWorkloads) add(s, base *summary) {
	vs := s.mean(s.nodes)/base.mean(base.nodes) - 1
	a.workloads++
	a.vs += vs
	if !s.mixedNodes {
		a.oneSize++
		a.vsOneSize += vs
	}
	a.throughput += s.mean(s.podsPerSecond) / base.mean(base.podsPerSecond)
	for seed, runs := range s.bySeed {
		a.seeds++
		if meanOf(runs) > meanOf(base.bySeed[seed]) {
			a.seedsWorse++
		}
	}
}

// openShiftWorkloads are the nested-OpenShift workloads, each as a function of its seed, for n
// tenants (the figures in docs/scheduler.md use 40): 3n nodes of 48 CPUs / 192Gi (hetero: 3.75n
// nodes, a third each of 32/128, 48/192 and 64/256), tenants of 3 control-plane VMs and 2–6
// workers; fragment sends 3.75n small VMs then 2.5n large ones; tenant-churn starts 3n/4
// tenants and creates n/4 in each of its 4 waves.
func openShiftWorkloads(n int, deschedulerThreshold float64) []func(seed uint64) bench.Workload {
	nodes := bench.Nodes(3*n, allocatable("48", "192Gi"))
	return []func(uint64) bench.Workload{
		func(seed uint64) bench.Workload { return bench.Tenants(n, seed, nodes) },
		func(seed uint64) bench.Workload { return bench.TenantsSkewed(n, seed, nodes) },
		func(seed uint64) bench.Workload { return bench.Bulk(n, 10, seed, nodes) },
		func(seed uint64) bench.Workload { return bench.Fragment(n*15/4, n*5/2, seed, nodes) },
		func(seed uint64) bench.Workload { return bench.Hetero(n, seed, heteroNodes(n*15/4)) },
		func(seed uint64) bench.Workload {
			w := bench.TenantChurn(n*3/4, 4, n/4, seed, nodes)
			w.DeschedulerThreshold = deschedulerThreshold
			return w
		},
	}
}

// consolidated formats the consolidation figures of a workload that deletes VMs, and nothing
// for the others.
func consolidated(w bench.Workload, nodes, migrations float64) string {
	if !w.Deletes() {
		return ""
	}
	return fmt.Sprintf(" nodes_after_consolidation=%.1f migrations=%.1f", nodes, migrations)
}

// descheduled formats what the descheduler reached for a workload that plays it, and nothing for
// the others.
func descheduled(w bench.Workload, nodes, migrations float64) string {
	if !w.Deletes() || w.DeschedulerThreshold <= 0 {
		return ""
	}
	return fmt.Sprintf(" nodes_after_descheduler=%.1f descheduler_migrations=%.1f", nodes, migrations)
}

// consolidatedVersusDescheduled compares, seed by seed, the nodes this profile's runs use after
// consolidation with stock MostAllocated's after the descheduler — the packing over time each
// one offers — for a workload that plays the descheduler.
func consolidatedVersusDescheduled(w bench.Workload, s, base *summary) string {
	if !w.Deletes() || w.DeschedulerThreshold <= 0 {
		return ""
	}
	return fmt.Sprintf(" worst_seed_consolidated_vs_most_allocated_descheduled=%+.1f", worstOver(s.bySeedConsolidated, base.bySeedDescheduled))
}

func heteroNodes(n int) []*v1.Node {
	sizes := []v1.ResourceList{allocatable("32", "128Gi"), allocatable("48", "192Gi"), allocatable("64", "256Gi")}
	nodes := make([]*v1.Node, n)
	for i := range nodes {
		nodes[i] = bench.Node(fmt.Sprintf("node-%03d", i), sizes[i%len(sizes)])
	}
	return nodes
}

func allocatable(cpu, memory string) v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse(cpu),
		v1.ResourceMemory: resource.MustParse(memory),
		v1.ResourcePods:   resource.MustParse("110"),
	}
}

func runOnce(ctx context.Context, p namedProfile, registry frameworkruntime.Registry, w bench.Workload) (bench.Result, error) {
	res, err := bench.Run(ctx, p.profile, registry, w.Nodes, w)
	if err != nil {
		return res, fmt.Errorf("workload %s, profile %s: %w", w.Name, p.name, err)
	}
	if res.SpreadViolations > 0 {
		return res, fmt.Errorf("workload %s, profile %s: %d control-plane VMs share a node with one of their tenant's", w.Name, p.name, res.SpreadViolations)
	}
	if res.Pending > 0 {
		return res, fmt.Errorf("workload %s, profile %s: %d VMs left pending; add nodes", w.Name, p.name, res.Pending)
	}
	return res, nil
}

// mixedSizes tells whether the nodes differ in allocatable.
func mixedSizes(nodes []*v1.Node) bool {
	for _, n := range nodes[1:] {
		if !equality.Semantic.DeepEqual(n.Status.Allocatable, nodes[0].Status.Allocatable) {
			return true
		}
	}
	return false
}

// summary accumulates the runs of one workload under one profile.
type summary struct {
	mixedNodes                           bool
	runs                                 int
	nodes, bound, offline, podsPerSecond float64
	consolidated, migrations             float64
	descheduled, deschedulerMigrations   float64
	// bySeed sums nodes used per seed, over its repeats; bySeedConsolidated and
	// bySeedDescheduled the nodes after consolidation and after the descheduler.
	bySeed, bySeedConsolidated, bySeedDescheduled map[int][]int
}

func (s *summary) add(seed int, r bench.Result) {
	if s.bySeed == nil {
		s.bySeed, s.bySeedConsolidated, s.bySeedDescheduled = map[int][]int{}, map[int][]int{}, map[int][]int{}
	}
	s.bySeedConsolidated[seed] = append(s.bySeedConsolidated[seed], r.Consolidated.NodesUsed)
	s.bySeedDescheduled[seed] = append(s.bySeedDescheduled[seed], r.Descheduled.NodesUsed)
	s.runs++
	s.nodes += float64(r.NodesUsed)
	s.bound += float64(r.LowerBound)
	s.offline += float64(r.OfflineFFD)
	s.podsPerSecond += r.PodsPerSecond
	s.consolidated += float64(r.Consolidated.NodesUsed)
	s.migrations += float64(r.Consolidated.Migrations)
	s.descheduled += float64(r.Descheduled.NodesUsed)
	s.deschedulerMigrations += float64(r.Descheduled.Migrations)
	s.bySeed[seed] = append(s.bySeed[seed], r.NodesUsed)
}

func (s *summary) mean(total float64) float64 {
	return total / float64(s.runs)
}

// worstAgainst is the largest difference, over seeds, between this profile's mean nodes used and
// base's: positive when this profile used more nodes on some seed.
func (s *summary) worstAgainst(base *summary) float64 {
	return worstOver(s.bySeed, base.bySeed)
}

// worstOver is the largest difference, over seeds, between the mean of ours and of theirs.
func worstOver(ours, theirs map[int][]int) float64 {
	worst := -1e9
	for seed, runs := range ours {
		worst = max(worst, meanOf(runs)-meanOf(theirs[seed]))
	}
	return worst
}

func meanOf(v []int) float64 {
	var sum int
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v))
}

type namedProfile struct {
	name    string
	profile config.KubeSchedulerProfile
}

// loadProfiles returns the three profiles compared, each decoded and defaulted the way
// kube-scheduler does it; nest-scheduler's comes from the shipped ConfigMap.
func loadProfiles(configMap, compare string) ([]namedProfile, error) {
	stock, err := schedconfig.Decode([]byte(stockConfig))
	if err != nil {
		return nil, err
	}
	most, err := schedconfig.Decode([]byte(mostAllocatedConfig))
	if err != nil {
		return nil, err
	}
	nest, err := schedconfig.LoadConfigMap(configMap)
	if err != nil {
		return nil, err
	}
	profiles := []namedProfile{
		{name: "stock-least-allocated", profile: stock.Profiles[0]},
		{name: mostAllocated, profile: most.Profiles[0]},
		{name: "nest-scheduler", profile: nest.Profiles[0]},
	}
	for _, extra := range strings.Split(compare, ",") {
		if extra == "" {
			continue
		}
		name, path, ok := strings.Cut(extra, "=")
		if !ok {
			return nil, fmt.Errorf("--compare %q: want name=path", extra)
		}
		cfg, err := schedconfig.LoadConfigMap(path)
		if err != nil {
			return nil, fmt.Errorf("--compare %s: %w", name, err)
		}
		profiles = append(profiles, namedProfile{name: name, profile: cfg.Profiles[0]})
	}
	return profiles, nil
}
