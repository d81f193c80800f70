// Command reaction measures how quickly the provider's manager reacts to each step of a machine's life
// when it is not saturated: NestMachines (with their Machines and bootstrap Secrets, as CAPI would
// make them) arrive at a fixed rate, open loop, round-robin over three Infra clusters (real API
// servers, KubeVirt simulators at zero boot delay), each is deleted a fixed time after it arrived,
// and a tenant API server receives the Node of every machine that boots. The manager runs as its own
// process with its default flags. It prints one line on stdout:
//
//	BENCH reaction rate=<r> n=<n> create_p50_ms= create_p99_ms= ready_p50_ms= ready_p99_ms= delete_p99_ms= idle_cpu_pct=
//
// Per machine, through the benchmark's informers (harness.Reactions):
//   - create: Machine, bootstrap data and NestMachine created → VirtualMachine seen in the Infra cluster;
//   - ready: VMI seen Running → NestMachine seen provisioned;
//   - providerID: tenant Node registered → Node seen with its providerID (on stderr);
//   - delete: NestMachine deleted → VirtualMachine seen being deleted;
//   - idle_cpu_pct: the whole machine's idle CPU from the first arrival to the last reaction, so that a
//     reader can tell the figures were not taken on a saturated machine (the load average goes to stderr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/bench/internal/harness"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

type config struct {
	harness.Options
	rate               float64
	duration, lifetime time.Duration
	timeout            time.Duration
}

func main() {
	c := config{Options: harness.Options{ManagerBinary: "bin/manager", Log: os.Stderr}}
	c.AddFlags(flag.CommandLine)
	flag.Float64Var(&c.rate, "rate", 2, "NestMachines arriving per second")
	flag.DurationVar(&c.duration, "duration", 2*time.Minute, "how long machines arrive")
	flag.DurationVar(&c.lifetime, "lifetime", 30*time.Second, "how long after its arrival each NestMachine is deleted")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up when the last machine's reactions are not all seen this long after its arrival")
	flag.Parse()

	harness.Main(func(ctx context.Context) error { return run(ctx, c) })
}

const namespace = "bench"

func run(ctx context.Context, c config) (err error) {
	n := int(c.rate * c.duration.Seconds())
	if n < 1 || c.rate <= 0 {
		return errors.New("-rate and -duration must make at least one machine")
	}
	// The tenant cluster every machine joins: its own API server, reached by the manager through CAPI's
	// ClusterCache. The guest of a running VMI boots and registers its Node there, without a
	// providerID: the provider sets it.
	c.Tenant = true
	var env *harness.Env
	tr := harness.NewTracker()
	c.OnRunning = func(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
		uid := types.UID(vmi.Labels[infrav1.NestMachineUIDLabel])
		node := nodes.ForVMI(vmi, nodes.TenantOptions{})
		tr.NodeNamed(uid, node.Name)
		if err := nodes.Register(ctx, env.Tenant.Client, node); err != nil {
			return err
		}
		tr.Stamp(uid, harness.NodeRegistered)
		return nil
	}
	c.NodesPerInfra = harness.NodesFor(int(c.rate * c.lifetime.Seconds() * 2))
	env, err = harness.Start(ctx, c.Options)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop(err)) }()

	if err := env.CreateNamespace(ctx, namespace); err != nil {
		return err
	}
	clusters, err := env.CreateTenants(ctx, namespace, 0, 1)
	if err != nil {
		return err
	}
	cluster := clusters[0]

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	if err := tr.Watch(watchCtx, env.Config, namespace, env.InfraConfigs()); err != nil {
		return err
	}
	if err := tr.WatchNodes(watchCtx, env.Tenant.Config); err != nil {
		return err
	}
	if err := warmUp(ctx, env, tr, cluster); err != nil {
		return err
	}

	load := harness.LoadAverage()
	before, err := env.Snapshot(ctx)
	if err != nil {
		return err
	}
	env.Logf("%d NestMachines arriving at %.2f/s for %s, each deleted %s after it arrived (load average %s)", n, c.rate, c.duration, c.lifetime, load)
	errs := arrive(ctx, env, tr, cluster, n, c.rate, c.lifetime)
	if err := waitAll(ctx, env, tr, n, c.duration+c.lifetime+c.timeout); err != nil {
		return errors.Join(err, errs())
	}
	if err := errs(); err != nil {
		return err
	}
	after, err := env.Snapshot(ctx)
	if err != nil {
		return err
	}
	idle := after.Machine.IdlePercent(before.Machine)

	p := map[string][2]time.Duration{}
	for _, r := range harness.Reactions {
		latencies, early, missing := tr.Latencies(r)
		p50, p99 := harness.Percentile(latencies, 0.50), harness.Percentile(latencies, 0.99)
		p[r.Name] = [2]time.Duration{p50, p99}
		max := time.Duration(0)
		if len(latencies) > 0 {
			max = latencies[len(latencies)-1]
		}
		env.Logf("%s reaction: %d machines, p50 %s, p99 %s, max %s (%d seen in the other order, counted as 0; %d without a start)",
			r.Name, len(latencies), p50.Round(time.Millisecond), p99.Round(time.Millisecond), max.Round(time.Millisecond), early, missing)
	}
	env.ReportPerMachine(before, after, n)
	rss, peak, err := env.Manager.Memory()
	if err != nil {
		return err
	}
	env.Logf("load average %s -> %s over %s; manager RSS %d MiB, peak %d MiB", load, harness.LoadAverage(),
		after.At.Sub(before.At).Round(time.Second), rss>>20, peak>>20)
	fmt.Printf("INFO reaction rate=%g n=%d providerid_p50_ms=%d providerid_p99_ms=%d delete_p50_ms=%d\n", c.rate, n,
		p["providerID"][0].Milliseconds(), p["providerID"][1].Milliseconds(), p["delete"][0].Milliseconds())
	fmt.Printf("BENCH reaction rate=%g n=%d create_p50_ms=%d create_p99_ms=%d ready_p50_ms=%d ready_p99_ms=%d delete_p99_ms=%d idle_cpu_pct=%.0f\n",
		c.rate, n, p["create"][0].Milliseconds(), p["create"][1].Milliseconds(), p["ready"][0].Milliseconds(), p["ready"][1].Milliseconds(),
		p["delete"][1].Milliseconds(), idle)
	return nil
}

// warmUp takes one machine through its whole life before the measurement, so that the manager's
// connections (the tenant cluster's among them) and caches are up; the figures leave it out.
func warmUp(ctx context.Context, env *harness.Env, tr *harness.Tracker, cluster *clusterv1.Cluster) error {
	nm, err := env.CreateMachine(ctx, cluster, "warm-up", env.Infras[0])
	if err != nil {
		return err
	}
	if err := env.Wait(ctx, "the warm-up machine's tenant Node to get its providerID", 2*time.Minute, func(context.Context) (bool, error) {
		return tr.Count(harness.ProviderIDSet) > 0, nil
	}); err != nil {
		return err
	}
	if err := env.Client.Delete(ctx, nm); err != nil {
		return fmt.Errorf("deleting the warm-up machine: %w", err)
	}
	if err := env.Wait(ctx, "the warm-up NestMachine to be gone", 2*time.Minute, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{})
		return err != nil, client.IgnoreNotFound(err)
	}); err != nil {
		return err
	}
	tr.Forget(nm.UID)
	env.Logf("warm-up machine created, provisioned, its Node given a providerID, and deleted")
	return nil
}

// arrive creates n machines at rate per second, each on its own schedule whatever the others are
// doing (open loop), and deletes each lifetime after it arrived. It returns at once; the function it
// returns waits for every create and delete to have been sent and reports their errors.
func arrive(ctx context.Context, env *harness.Env, tr *harness.Tracker, cluster *clusterv1.Cluster, n int, rate float64, lifetime time.Duration) func() error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		wg.Go(func() {
			if !sleepUntil(ctx, start.Add(time.Duration(i)*interval)) {
				return
			}
			nm, err := env.CreateMachine(ctx, cluster, fmt.Sprintf("m-%d", i), env.Infras[i%len(env.Infras)])
			if err != nil {
				fail(err)
				return
			}
			tr.Stamp(nm.UID, harness.Created)
			if !sleepUntil(ctx, start.Add(time.Duration(i)*interval+lifetime)) {
				return
			}
			if err := env.Client.Delete(ctx, nm); err != nil {
				fail(fmt.Errorf("deleting NestMachine %s: %w", nm.Name, err))
				return
			}
			tr.Stamp(nm.UID, harness.Deleted)
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// sleepUntil waits until t and reports whether ctx is still going.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitAll waits until the tracker saw n VMs being deleted (every machine's last step), or fails after
// timeout.
func waitAll(ctx context.Context, env *harness.Env, tr *harness.Tracker, n int, timeout time.Duration) error {
	return env.Wait(ctx, fmt.Sprintf("%d machines to be created, provisioned and deleted", n), timeout, func(context.Context) (bool, error) {
		return tr.Count(harness.VMDeleting) >= n, nil
	})
}
