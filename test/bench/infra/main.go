// Command infra measures what the provider's manager asks of Infra clusters once nothing changes: n
// NestClusters over three Infra clusters (real API servers, KubeVirt simulators), the manager as its
// own process with the default probe interval. Once every NestCluster is provisioned with three
// failure domains and the manager has settled, it counts the manager's requests to the Infra clusters
// over a window, from the manager's own metrics, and prints one line on stdout:
//
//	BENCH infra nestclusters=<n> remote_requests_per_min=<..> probe_requests_per_min=<..>
//
// remote_requests_per_min counts everything but health probes (cache list/watch, reads, writes): with
// watches rather than polling it should be near zero. Details go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/nestcapi/cluster-api-provider-nest/test/bench/internal/harness"
)

func main() {
	n := flag.Int("n", 100, "NestClusters (tenant clusters) over the three Infra clusters")
	window := flag.Duration("window", time.Minute, "how long to count the manager's requests once steady")
	settle := flag.Duration("settle", 15*time.Second, "wait after every NestCluster is provisioned, before counting, for reconciles in flight to finish")
	opts := harness.Options{ManagerBinary: "bin/manager", NodesPerInfra: 4, Log: os.Stderr}
	opts.AddFlags(flag.CommandLine)
	flag.Parse()

	harness.Main(func(ctx context.Context) error { return run(ctx, opts, *n, *window, *settle) })
}

const namespace = "bench"

func run(ctx context.Context, opts harness.Options, n int, window, settle time.Duration) (err error) {
	env, err := harness.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop(err)) }()

	if err := env.CreateNamespace(ctx, namespace); err != nil {
		return err
	}
	beforeProvisioning, err := env.Manager.Scrape(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := harness.Parallel(ctx, n, 16, func(ctx context.Context, i int) error {
		_, err := env.CreateTenant(ctx, namespace, fmt.Sprintf("tenant-%d", i))
		return err
	}); err != nil {
		return err
	}
	if err := env.WaitTenantsProvisioned(ctx, namespace, n, 10*time.Minute); err != nil {
		return err
	}
	env.Logf("%d NestClusters provisioned with %d failure domains in %s; settling for %s", n, len(env.Infras), time.Since(start).Round(time.Millisecond), settle)
	provisioned, err := env.Manager.Scrape(ctx)
	if err != nil {
		return err
	}
	nestcluster := harness.Labels{"controller": "nestcluster"}
	env.Logf("while provisioning, per NestCluster: management requests by method %s, NestCluster reconciles by result %s",
		harness.FormatPer(harness.CounterDelta(beforeProvisioning, provisioned, harness.RESTRequestsMetric, "method", harness.Labels{"host": env.ManagementHost()}), float64(n)),
		harness.FormatPer(harness.CounterDelta(beforeProvisioning, provisioned, harness.ReconcileTotalMetric, "result", nestcluster), float64(n)))
	if err := harness.Sleep(ctx, settle); err != nil {
		return err
	}

	before, err := env.Manager.Scrape(ctx)
	if err != nil {
		return err
	}
	measured := time.Now()
	env.Logf("counting the manager's requests for %s", window)
	if err := harness.Sleep(ctx, window); err != nil {
		return err
	}
	after, err := env.Manager.Scrape(ctx)
	if err != nil {
		return err
	}
	minutes := time.Since(measured).Minutes()
	rate := func(purpose string) float64 {
		match := harness.Labels{"purpose": purpose}
		return (after.Counter(harness.RemoteRequestsMetric, match) - before.Counter(harness.RemoteRequestsMetric, match)) / minutes
	}
	rss, peak, err := env.Manager.Memory()
	if err != nil {
		return err
	}
	mgmt := harness.Labels{"host": env.ManagementHost()}
	env.Logf("per minute: Infra client requests by method %s, probes by Infra cluster %s, management requests by method %s; manager RSS %d MiB (peak %d MiB)",
		harness.FormatPer(harness.CounterDelta(before, after, harness.RemoteRequestsMetric, "method", harness.Labels{"purpose": "client"}), minutes),
		harness.FormatPer(harness.CounterDelta(before, after, harness.RemoteRequestsMetric, "infracluster", harness.Labels{"purpose": "probe"}), minutes),
		harness.FormatPer(harness.CounterDelta(before, after, harness.RESTRequestsMetric, "method", mgmt), minutes), rss>>20, peak>>20)
	fmt.Printf("BENCH infra nestclusters=%d remote_requests_per_min=%.1f probe_requests_per_min=%.1f\n", n, rate("client"), rate("probe"))
	return nil
}
