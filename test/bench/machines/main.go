// Command machines measures how fast the provider's manager turns NestMachines into running KubeVirt
// VMs: n NestMachines (with their Machines and bootstrap Secrets, as CAPI would make them) spread
// round-robin over three Infra clusters (real API servers, KubeVirt simulators at zero boot delay) in a
// handful of tenant clusters, created as fast as the API server takes them, with the manager as its
// own process. It prints one line on stdout:
//
//		BENCH machines n=<n> wall_s=<..> p50_ready_ms=<..> p99_ready_ms=<..> remote_requests_per_machine=<..> management_requests_per_machine=<..> rss_mb=<..>
//
//	  - wall_s: from the first create to the last NestMachine seen provisioned;
//	  - ready latency: from a VMI first seen Running to its NestMachine first seen provisioned (both
//	    through the benchmark's informers), the provider's share of a machine's start;
//	  - remote_requests_per_machine: the manager's non-probe requests to the Infra clusters during the
//	    run, from its metrics, divided by n;
//	  - management_requests_per_machine: the same for the management cluster;
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
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"k8s.io/client-go/rest"

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

	harness.Main(func(ctx context.Context) error { return run(ctx, c) })
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
	n                                      int
	wall, p50, p99                         time.Duration
	remotePerMachine, managementPerMachine float64
	rssBytes                               uint64
}

func (r result) String() string {
	return fmt.Sprintf("n=%d wall_s=%.1f p50_ready_ms=%d p99_ready_ms=%d remote_requests_per_machine=%.2f management_requests_per_machine=%.2f rss_mb=%d",
		r.n, r.wall.Seconds(), r.p50.Milliseconds(), r.p99.Milliseconds(), r.remotePerMachine, r.managementPerMachine, r.rssBytes>>20)
}

const namespace = "bench"

// measure runs the benchmark once in an environment of its own, which it stops before returning.
func measure(ctx context.Context, c config) (_ result, err error) {
	c.NodesPerInfra = harness.NodesFor(c.n)
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
	clusters, err := env.CreateTenants(ctx, namespace, 0, c.tenants)
	if err != nil {
		return result{}, err
	}

	tr := harness.NewTracker()
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	infraConfigs := env.InfraConfigs()
	if err := tr.Watch(watchCtx, env.Config, namespace, infraConfigs); err != nil {
		return result{}, err
	}

	if c.cpuProfile != "" {
		stopProfile, err := startCPUProfile(c.cpuProfile)
		if err != nil {
			return result{}, err
		}
		defer stopProfile()
	}
	before, err := env.Snapshot(ctx)
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
	load := harness.LoadAverage()
	env.Logf("creating %d NestMachines in %d tenant clusters (load average %s)", c.n, c.tenants, load)
	start := time.Now()
	if err := harness.Parallel(ctx, c.n, c.workers, func(ctx context.Context, i int) error {
		_, err := env.CreateMachine(ctx, clusters[i%c.tenants], fmt.Sprintf("m-%d", i), env.Infras[i%len(env.Infras)])
		return err
	}); err != nil {
		return result{}, err
	}
	env.Logf("created %d NestMachines in %s", c.n, time.Since(start).Round(time.Millisecond))
	if err := env.WaitProvisioned(ctx, tr, c.n, c.timeout-time.Since(start)); err != nil {
		return result{}, err
	}
	wall := tr.LastProvisioned().Sub(start)

	after, err := env.Snapshot(ctx)
	if err != nil {
		return result{}, err
	}
	rss, peak, err := env.Manager.Memory()
	if err != nil {
		return result{}, err
	}
	ready := harness.Reactions[1]
	latencies, early, missing := tr.Latencies(ready)
	if len(latencies) == 0 {
		return result{}, errors.New("no VMI was seen running: no ready latency to report")
	}
	env.Logf("ready latency: %d machines measured, %d seen provisioned before their VMI was seen running (counted as 0), %d VMIs never seen running; max %s",
		len(latencies), early, missing, latencies[len(latencies)-1].Round(time.Millisecond))
	env.ReportPerMachine(before, after, c.n)
	env.Logf("load average %s -> %s; manager RSS %d MiB at the end, peak %d MiB", load, harness.LoadAverage(), rss>>20, peak>>20)
	return result{
		n: c.n, wall: wall, p50: harness.Percentile(latencies, 0.50), p99: harness.Percentile(latencies, 0.99),
		remotePerMachine:     harness.Sum(harness.InfraRequests(before, after)) / float64(c.n),
		managementPerMachine: harness.Sum(env.ManagementRequests(before, after)) / float64(c.n),
		rssBytes:             rss,
	}, nil
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
