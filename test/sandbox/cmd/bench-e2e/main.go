// Command bench-e2e measures the whole stack: T tenant clusters of the HA flavor, each with three
// control-plane machines and W workers, through real CAPI (core, KubeadmControlPlane, kubeadm
// bootstrap), the provider, nest-scheduler and the simulated Infra clusters of the sandbox. It prints
//
//	BENCH e2e tenants=<T> machines=<N> wall_s=<..> p99_machine_running_s=<..>
//
// wall_s runs from the first tenant's objects being applied to every tenant being ready;
// p99_machine_running_s is the 99th percentile (nearest rank) of the time from a Machine appearing to
// it being Running.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/nestcapi/cluster-api-provider-nest/test/sandbox"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-e2e:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		tenants       = flag.Int("tenants", 5, "tenant clusters")
		workers       = flag.Int("workers", 3, "worker machines per tenant (spread over its three MachineDeployments)")
		nodesPerInfra = flag.Int("nodes-per-infra", 4, "fake KubeVirt-capable nodes per Infra cluster")
		bootDelay     = flag.Duration("boot-delay", 0, "time a simulated VM takes to boot once its launcher pod is bound")
		timeout       = flag.Duration("timeout", 15*time.Minute, "how long the tenants may take to be ready")
		verbose       = flag.Bool("v", false, "show the sandbox's progress lines")
	)
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := sandbox.Options{NodesPerInfra: *nodesPerInfra, BootDelay: *bootDelay}
	if *verbose {
		opts.Progress = os.Stderr
	}
	for i := range *tenants {
		opts.Tenants = append(opts.Tenants, sandbox.TenantOptions{
			Name: fmt.Sprintf("bench-%d", i), Namespace: "bench", Flavor: sandbox.FlavorHA, Workers: *workers,
		})
	}
	sb, err := sandbox.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := sb.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench-e2e: stopping the sandbox:", err)
		}
	}()

	ts := sb.Tenants()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	last := time.Time{}
	for _, t := range ts {
		wg.Go(func() {
			err := sb.WaitReady(ctx, t, *timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %s: %w", t.Name, err))
			}
			if now := time.Now(); now.After(last) {
				last = now
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d tenant(s) not ready: %v", len(errs), errs)
	}
	first := ts[0].Applied
	for _, t := range ts {
		if t.Applied.Before(first) {
			first = t.Applied
		}
	}
	var running []float64
	for name, mt := range sb.MachineTimes() {
		if mt.Running.IsZero() {
			return fmt.Errorf("machine %s never ran", name)
		}
		running = append(running, mt.Running.Sub(mt.Created).Seconds())
	}
	fmt.Printf("BENCH e2e tenants=%d machines=%d wall_s=%.1f p99_machine_running_s=%.1f\n",
		len(ts), len(running), last.Sub(first).Seconds(), percentile(running, 99))
	return nil
}

// percentile is the nearest-rank percentile p of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	rank := int(math.Ceil(p / 100 * float64(len(xs))))
	return xs[max(rank, 1)-1]
}
