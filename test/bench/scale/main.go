// Command scale measures what a machine costs the provider's manager as the fleet grows, so that a
// reader can tell whether the cost per machine is flat (and can be extrapolated) or grows. One
// environment (a management and three Infra API servers, KubeVirt simulators at zero boot delay, the
// manager as its own process) grows through the fleet sizes of -sizes: each stage adds NestMachines
// (with their Machines and bootstrap Secrets, as CAPI would make them) until the fleet has the
// stage's size, waits until all are provisioned, lets the manager settle, then counts its requests
// over a window in which nothing changes. It prints one line per size on stdout:
//
//		BENCH scale machines=<n> manager_cpu_s_per_machine=<..> management_requests_per_machine=<..> infra_requests_per_machine=<..> rss_mb=<..> rss_mb_per_1000=<..> steady_requests_per_min=<..>
//
//	  - the per-machine figures are of the machines the stage added: the manager's CPU time, its
//	    requests to the management cluster, its requests to the Infra clusters (health probes left out),
//	    from the first create until all are provisioned and the manager has settled;
//	  - rss_mb: the manager's resident set at the end of the stage's window; rss_mb_per_1000: what the
//	    fleet adds to it, (rss_mb − the RSS before the first tenant) per 1000 machines;
//	  - steady_requests_per_min: the manager's requests to the management and the Infra clusters per
//	    minute during the window, once every machine runs (Infra health probes included; the breakdown,
//	    and the requests to the tenant clusters, go to stderr).
//
// Tenants grow with the fleet, one per 100 machines, each made before its stage's first snapshot;
// they are one API server that every tenant's kubeconfig Secret points at.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	"github.com/nestcapi/cluster-api-provider-nest/test/bench/internal/harness"
)

type config struct {
	harness.Options
	sizes          []int
	workers        int
	settle, window time.Duration
	timeout        time.Duration
}

func main() {
	c := config{Options: harness.Options{ManagerBinary: "bin/manager", Log: os.Stderr}, sizes: []int{100, 1000, 3000}}
	c.AddFlags(flag.CommandLine)
	flag.Func("sizes", "fleet sizes, comma-separated and growing (default 100,1000,3000)", func(s string) error {
		c.sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 || (len(c.sizes) > 0 && n <= c.sizes[len(c.sizes)-1]) {
				return fmt.Errorf("sizes must be growing positive integers: %q", s)
			}
			c.sizes = append(c.sizes, n)
		}
		return nil
	})
	flag.IntVar(&c.workers, "workers", 32, "machines created at once")
	flag.DurationVar(&c.settle, "settle", 15*time.Second, "wait after every machine of a stage is provisioned, for reconciles in flight to finish")
	flag.DurationVar(&c.window, "window", time.Minute, "how long to count the manager's requests once steady")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up when a stage's machines are not all provisioned by then")
	flag.Parse()

	harness.Main(func(ctx context.Context) error { return run(ctx, c) })
}

const namespace = "bench"

func run(ctx context.Context, c config) (err error) {
	largest := c.sizes[len(c.sizes)-1]
	c.NodesPerInfra = harness.NodesFor(largest)
	// Tenants the manager reaches, as in a real fleet: an unreachable tenant would have the
	// ClusterCache read its kubeconfig Secret every 30 s, a cost no real fleet pays.
	c.Tenant = true
	env, err := harness.Start(ctx, c.Options)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop(err)) }()
	if err := env.CreateNamespace(ctx, namespace); err != nil {
		return err
	}
	tr := harness.NewTracker()
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if err := tr.Watch(watchCtx, env.Config, namespace, env.InfraConfigs()); err != nil {
		return err
	}
	if err := harness.Sleep(ctx, c.settle); err != nil {
		return err
	}
	rss0, _, err := env.Manager.Memory()
	if err != nil {
		return err
	}
	env.Logf("manager RSS before the first tenant: %d MiB", rss0>>20)

	var clusters []*clusterv1.Cluster
	fleet, rssBefore := 0, rss0
	for _, size := range c.sizes {
		// The tenants grow with the fleet, one per 100 machines, as they would.
		more, err := env.CreateTenants(ctx, namespace, len(clusters), max(1, size/100)-len(clusters))
		if err != nil {
			return err
		}
		clusters = append(clusters, more...)
		s, err := stage(ctx, c, env, tr, clusters, fleet, size)
		if err != nil {
			return fmt.Errorf("growing the fleet to %d machines: %w", size, err)
		}
		env.Logf("manager RSS grew %d MiB for the %d machines (and their tenants) added: %.1f MiB per 1000", (int64(s.rss)-int64(rssBefore))>>20, size-fleet,
			(float64(s.rss)-float64(rssBefore))/float64(size-fleet)*1000/(1<<20))
		fleet, rssBefore = size, s.rss
		perThousand := (float64(s.rss) - float64(rss0)) / float64(size) * 1000
		fmt.Printf("BENCH scale machines=%d manager_cpu_s_per_machine=%.4f management_requests_per_machine=%.2f infra_requests_per_machine=%.2f rss_mb=%d rss_mb_per_1000=%.1f steady_requests_per_min=%.1f\n",
			size, s.cpuPerMachine, s.managementPerMachine, s.infraPerMachine, s.rss>>20, perThousand/(1<<20), s.steadyPerMin)
	}
	return nil
}

// stageResult is what one stage measured.
type stageResult struct {
	cpuPerMachine, managementPerMachine, infraPerMachine float64
	rss                                                  uint64
	steadyPerMin                                         float64
}

// stage grows the fleet from machines from to machines to, and measures it.
func stage(ctx context.Context, c config, env *harness.Env, tr *harness.Tracker, clusters []*clusterv1.Cluster, from, to int) (stageResult, error) {
	added := to - from
	before, err := env.Snapshot(ctx)
	if err != nil {
		return stageResult{}, err
	}
	load := harness.LoadAverage()
	env.Logf("adding %d NestMachines, to %d (load average %s)", added, to, load)
	if err := harness.Parallel(ctx, added, c.workers, func(ctx context.Context, i int) error {
		i += from
		_, err := env.CreateMachine(ctx, clusters[i%len(clusters)], fmt.Sprintf("m-%d", i), env.Infras[i%len(env.Infras)])
		return err
	}); err != nil {
		return stageResult{}, err
	}
	if err := env.WaitProvisioned(ctx, tr, to, c.timeout); err != nil {
		return stageResult{}, err
	}
	env.Logf("%d NestMachines provisioned in %s; settling for %s", to, time.Since(before.At).Round(time.Millisecond), c.settle)
	if err := harness.Sleep(ctx, c.settle); err != nil {
		return stageResult{}, err
	}
	grown, err := env.Snapshot(ctx)
	if err != nil {
		return stageResult{}, err
	}
	env.ReportPerMachine(before, grown, added)
	env.Logf("load average %s -> %s", load, harness.LoadAverage())

	env.Logf("counting the manager's requests for %s", c.window)
	if err := harness.Sleep(ctx, c.window); err != nil {
		return stageResult{}, err
	}
	steady, err := env.Snapshot(ctx)
	if err != nil {
		return stageResult{}, err
	}
	rss, peak, err := env.Manager.Memory()
	if err != nil {
		return stageResult{}, err
	}
	minutes := steady.At.Sub(grown.At).Minutes()
	env.Logf("steady, per minute, as the management API server counted them from every client: %s",
		harness.FormatPer(harness.APIServerRequests(grown.APIServers[:1], steady.APIServers[:1], 0), minutes))
	management := env.ManagementRequests(grown, steady)
	infra := harness.InfraRequests(grown, steady)
	probes := harness.CounterDelta(grown.Manager, steady.Manager, harness.RemoteRequestsMetric, "method", harness.Labels{"purpose": "probe"})
	tenant := harness.CounterDelta(grown.Manager, steady.Manager, harness.RESTRequestsMetric, "method", harness.Labels{"host": env.TenantHost()})
	env.Logf("steady, per minute: management requests %s, Infra requests %s, Infra health probes %s, tenant requests (ClusterCache health probes) %s; manager CPU %.2f s; manager RSS %d MiB (peak %d MiB)",
		harness.FormatPer(management, minutes), harness.FormatPer(infra, minutes), harness.FormatPer(probes, minutes), harness.FormatPer(tenant, minutes),
		steady.CPU.Sub(grown.CPU)["manager"].Seconds()/minutes, rss>>20, peak>>20)
	return stageResult{
		cpuPerMachine:        grown.CPU.Sub(before.CPU)["manager"].Seconds() / float64(added),
		managementPerMachine: harness.Sum(env.ManagementRequests(before, grown)) / float64(added),
		infraPerMachine:      harness.Sum(harness.InfraRequests(before, grown)) / float64(added),
		rss:                  rss,
		steadyPerMin:         (harness.Sum(management) + harness.Sum(infra) + harness.Sum(probes)) / minutes,
	}, nil
}
