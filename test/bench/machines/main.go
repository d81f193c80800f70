// Command machines measures how fast the provider's manager turns NestMachines into running KubeVirt
// VMs: n NestMachines (with their Machines and bootstrap Secrets, as CAPI would make them) spread
// round-robin over three Infra clusters (real API servers, KubeVirt simulators at zero boot delay) in a
// handful of tenant clusters, created as fast as the API server takes them, with the manager as its
// own process. It prints one line on stdout:
//
//		BENCH machines n=<n> wall_s=<..> p50_ready_ms=<..> p99_ready_ms=<..> remote_requests_per_machine=<..> rss_mb=<..>
//
//	  - wall_s: from the first create to the last NestMachine seen provisioned;
//	  - ready latency: from a VMI first seen Running to its NestMachine first seen provisioned (both
//	    through the benchmark's informers), the provider's share of a machine's start;
//	  - remote_requests_per_machine: the manager's non-probe requests to the Infra clusters during the
//	    run, from its metrics, divided by n;
//	  - rss_mb: the manager's resident set at the end (the peak goes to stderr).
//
// With -baseline and -manager-args, a second environment then runs the same measurement with the
// manager's default flags and prints it as an informational line,
//
//	INFO machines manager=defaults n=<n> wall_s=<..> ...
//
// so that what raised client rate limits buy stays visible. Details (requests per machine by
// destination, reconciles, CPU used per process, load average) go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	"github.com/nestcapi/cluster-api-provider-nest/test/bench/internal/harness"
)

type config struct {
	harness.Options
	n, tenants, workers int
	timeout             time.Duration
	baseline            bool
	cpuProfile          string
	apiserverProfiles   string
}

func main() {
	c := config{Options: harness.Options{ManagerBinary: "bin/manager", Log: os.Stderr}}
	c.AddFlags(flag.CommandLine)
	flag.IntVar(&c.n, "n", 1000, "NestMachines to create")
	flag.IntVar(&c.tenants, "tenants", 0, "tenant clusters the machines belong to; 0 means n/100 (at least 1)")
	flag.IntVar(&c.workers, "workers", 32, "machines created at once")
	flag.DurationVar(&c.timeout, "timeout", 15*time.Minute, "give up when the machines are not all provisioned by then")
	flag.BoolVar(&c.baseline, "baseline", false, "with -manager-args, measure again with the manager's default flags and print that as an INFO line")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the benchmark process (simulators, informers, client) during the run to this file")
	flag.StringVar(&c.apiserverProfiles, "apiserver-cpuprofile", "", "write CPU profiles of the management and the first Infra kube-apiserver, over the first 60 s of the run, to <this>-management.pprof and <this>-infra.pprof")
	flag.Parse()
	if c.tenants <= 0 {
		c.tenants = max(1, c.n/100)
	}

	// Ctrl-C or SIGTERM ends the run through its context, so that everything started is stopped.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	res, err := measure(ctx, c)
	if err != nil {
		return err
	}
	fmt.Println("BENCH machines " + res.String())
	if !c.baseline || len(c.ManagerArgs) == 0 {
		return nil
	}
	// The profile, if asked for, is of the measurement that printed the BENCH line.
	c.ManagerArgs, c.cpuProfile = nil, ""
	if res, err = measure(ctx, c); err != nil {
		return fmt.Errorf("measuring with the manager's default flags: %w", err)
	}
	fmt.Println("INFO machines manager=defaults " + res.String())
	return nil
}

// result is what one measurement found.
type result struct {
	n                int
	wall, p50, p99   time.Duration
	remotePerMachine float64
	rssBytes         uint64
}

func (r result) String() string {
	return fmt.Sprintf("n=%d wall_s=%.1f p50_ready_ms=%d p99_ready_ms=%d remote_requests_per_machine=%.2f rss_mb=%d",
		r.n, r.wall.Seconds(), r.p50.Milliseconds(), r.p99.Milliseconds(), r.remotePerMachine, r.rssBytes>>20)
}

const namespace = "bench"

// measure runs the benchmark once in an environment of its own, which it stops before returning.
func measure(ctx context.Context, c config) (_ result, err error) {
	// Room for every launcher pod (110 pods and 128Gi per fake node; a 1Gi VM asks ~1.2Gi) with
	// slack, so that scheduling never waits for capacity.
	c.NodesPerInfra = (c.n+2)/3/80 + 2
	env, err := harness.Start(ctx, c.Options)
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, env.Stop(err)) }()
	if len(c.ManagerArgs) > 0 {
		env.Logf("manager flags: %s", strings.Join(c.ManagerArgs, " "))
	} else {
		env.Logf("manager flags: defaults")
	}

	if err := env.CreateNamespace(ctx, namespace); err != nil {
		return result{}, err
	}
	clusters := make([]*clusterv1.Cluster, c.tenants)
	if err := harness.Parallel(ctx, c.tenants, 8, func(ctx context.Context, i int) error {
		cluster, err := env.CreateTenant(ctx, namespace, fmt.Sprintf("tenant-%d", i))
		clusters[i] = cluster
		return err
	}); err != nil {
		return result{}, err
	}
	if err := env.WaitTenantsProvisioned(ctx, namespace, c.tenants, 5*time.Minute); err != nil {
		return result{}, err
	}
	for _, cluster := range clusters {
		if err := env.MarkInfrastructureProvisioned(ctx, cluster); err != nil {
			return result{}, err
		}
	}
	env.Logf("%d tenant clusters provisioned over %v", c.tenants, env.Infras)

	tr := newTracker(c.n)
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	infraConfigs := make([]*rest.Config, 0, len(env.Topology.Infras))
	for _, infra := range env.Topology.Infras {
		infraConfigs = append(infraConfigs, infra.Config)
	}
	if err := tr.watch(watchCtx, env.Config, namespace, infraConfigs); err != nil {
		return result{}, err
	}

	if c.cpuProfile != "" {
		stopProfile, err := startCPUProfile(c.cpuProfile)
		if err != nil {
			return result{}, err
		}
		defer stopProfile()
	}
	before, err := env.Manager.Scrape(ctx)
	if err != nil {
		return result{}, err
	}
	apiBefore, err := scrapeAPIServers(ctx, env.Config, infraConfigs)
	if err != nil {
		return result{}, err
	}
	cpuBefore, err := env.CPUTimes()
	if err != nil {
		return result{}, err
	}
	if c.apiserverProfiles != "" {
		for name, cfg := range map[string]*rest.Config{"management": env.Config, "infra": infraConfigs[0]} {
			go func() {
				if err := harness.ProfileAPIServer(ctx, cfg, time.Minute, c.apiserverProfiles+"-"+name+".pprof"); err != nil {
					env.Logf("%v", err)
				}
			}()
		}
	}
	load := loadAverage()
	env.Logf("creating %d NestMachines in %d tenant clusters (load average %s)", c.n, c.tenants, load)
	start := time.Now()
	if err := harness.Parallel(ctx, c.n, c.workers, func(ctx context.Context, i int) error {
		return env.CreateMachine(ctx, clusters[i%c.tenants], fmt.Sprintf("m-%d", i), env.Infras[i%len(env.Infras)])
	}); err != nil {
		return result{}, err
	}
	env.Logf("created %d NestMachines in %s", c.n, time.Since(start).Round(time.Millisecond))
	if err := waitProvisioned(ctx, env, tr, c.n, c.timeout-time.Since(start)); err != nil {
		return result{}, err
	}
	wall := tr.lastProvisioned().Sub(start)

	after, err := env.Manager.Scrape(ctx)
	if err != nil {
		return result{}, err
	}
	apiAfter, err := scrapeAPIServers(ctx, env.Config, infraConfigs)
	if err != nil {
		return result{}, err
	}
	cpuAfter, err := env.CPUTimes()
	if err != nil {
		return result{}, err
	}
	rss, peak, err := env.Manager.Memory()
	if err != nil {
		return result{}, err
	}
	latencies, early, missing := tr.readyLatencies()
	if len(latencies) == 0 {
		return result{}, errors.New("no VMI was seen running: no ready latency to report")
	}
	slices.Sort(latencies)
	remote := after.Counter(harness.RemoteRequestsMetric, harness.Labels{"purpose": "client"}) -
		before.Counter(harness.RemoteRequestsMetric, harness.Labels{"purpose": "client"})
	report(env, c.n, before, after, latencies, early, missing)
	management, infras := apiServerRequests(apiBefore[:1], apiAfter[:1], c.n), apiServerRequests(apiBefore[1:], apiAfter[1:], c.n)
	env.Logf("API servers' requests per machine, from every client: management %s; Infra clusters %s",
		harness.FormatPer(management, float64(c.n)), harness.FormatPer(infras, float64(c.n)))
	env.Logf("CPU seconds during the run: %s; load average %s -> %s; manager RSS %d MiB at the end, peak %d MiB",
		cpuAfter.Sub(cpuBefore), load, loadAverage(), rss>>20, peak>>20)
	return result{
		n: c.n, wall: wall, p50: percentile(latencies, 0.50), p99: percentile(latencies, 0.99),
		remotePerMachine: remote / float64(c.n), rssBytes: rss,
	}, nil
}

// report writes to stderr what explains the figures: how the ready latency was measured, the
// manager's requests per machine by destination and method, and how long its NestMachine reconciles
// took and waited in the work queue.
func report(env *harness.Env, n int, before, after harness.Metrics, latencies []time.Duration, early, missing int) {
	env.Logf("ready latency: %d machines measured, %d seen provisioned before their VMI was seen running (counted as 0), %d VMIs never seen running; max %s",
		len(latencies), early, missing, latencies[len(latencies)-1].Round(time.Millisecond))
	perMachine := func(name, by string, match harness.Labels) string {
		return harness.FormatPer(harness.CounterDelta(before, after, name, by, match), float64(n))
	}
	env.Logf("requests per machine: management cluster %s; Infra clusters %s; probes during the run %.0f",
		perMachine(harness.RESTRequestsMetric, "method", harness.Labels{"host": env.ManagementHost()}),
		perMachine(harness.RemoteRequestsMetric, "method", harness.Labels{"purpose": "client"}),
		after.Counter(harness.RemoteRequestsMetric, harness.Labels{"purpose": "probe"})-before.Counter(harness.RemoteRequestsMetric, harness.Labels{"purpose": "probe"}))
	nestmachine := harness.Labels{"controller": "nestmachine"}
	reconcileSum, reconciles := after.Histogram(harness.ReconcileTimeMetric, nestmachine)
	beforeSum, beforeCount := before.Histogram(harness.ReconcileTimeMetric, nestmachine)
	reconcileSum, reconciles = reconcileSum-beforeSum, reconciles-beforeCount
	queueSum, queued := after.Histogram(harness.QueueWaitMetric, harness.Labels{"name": "nestmachine"})
	beforeSum, beforeCount = before.Histogram(harness.QueueWaitMetric, harness.Labels{"name": "nestmachine"})
	queueSum, queued = queueSum-beforeSum, queued-beforeCount
	if reconciles > 0 && queued > 0 {
		env.Logf("NestMachine reconciles: %.1f per machine %s, %.0f ms each on average, after %.0f ms in the work queue on average",
			float64(reconciles)/float64(n), perMachine(harness.ReconcileTotalMetric, "result", nestmachine),
			reconcileSum/float64(reconciles)*1000, queueSum/float64(queued)*1000)
	}
}

// scrapeAPIServers reads the metrics of the management and every Infra API server, in that order.
func scrapeAPIServers(ctx context.Context, mgmt *rest.Config, infras []*rest.Config) ([]harness.Metrics, error) {
	cfgs := append([]*rest.Config{mgmt}, infras...)
	out := make([]harness.Metrics, len(cfgs))
	for i, cfg := range cfgs {
		m, err := harness.ScrapeAPIServer(ctx, cfg)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// apiServerRequests adds up the requests the API servers served between the scrapes, by verb and
// resource, leaving out those under one per hundred machines.
func apiServerRequests(before, after []harness.Metrics, n int) map[string]float64 {
	out := map[string]float64{}
	for i := range before {
		for k, v := range harness.CounterDelta(before[i], after[i], harness.APIServerRequestsMetric, "verb,resource,subresource", nil) {
			out[strings.TrimSpace(k)] += v
		}
	}
	for k, v := range out {
		if v < float64(n)/100 {
			delete(out, k)
		}
	}
	return out
}

// waitProvisioned waits until the tracker saw every NestMachine provisioned, logging progress every
// 10 s, or fails after timeout.
func waitProvisioned(ctx context.Context, env *harness.Env, tr *tracker, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tr.done():
			return nil
		case <-tick.C:
			running, provisioned := tr.progress()
			env.Logf("%d VMIs running, %d/%d NestMachines provisioned", running, provisioned, n)
		case <-deadline.C:
			running, provisioned := tr.progress()
			return fmt.Errorf("timed out: %d VMIs running, %d/%d NestMachines provisioned", running, provisioned, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// percentile is the q-quantile of sorted latencies (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// loadAverage is the 1, 5 and 15 minute load averages of the machine: the benchmark shares it.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
