// Command webhook measures control-plane Machine admission through a real API server and the
// provider's webhook server: n dry-run creates of a control-plane Machine on a NestMachine, at the
// given concurrency, each defaulted (least-loaded Infra cluster) and validated (spread rule) by the
// webhooks from the manager's cache. Dry runs keep the control plane the same for every request.
// It prints one line on stdout:
//
//	BENCH webhook n=<requests> concurrency=<c> p50_ms=<..> p99_ms=<..>
//
// whose latency is the webhook's share of an admission: the time the webhook server spends on the
// mutating and the validating call of one Machine create, added up, from the request reaching the
// server until the response is written. Two more figures go to stderr: the same once the request
// body has arrived (the handlers' own work), and the latency the client sees (that plus the API
// server's own work, which on a small machine dominates).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/webhooks/webhooktest"
)

func main() {
	n := flag.Int("n", 2000, "Machine admissions to measure")
	concurrency := flag.Int("concurrency", 32, "admissions in flight at once")
	tenants := flag.Int("tenants", 50, "tenant clusters (three control-plane machines each) in the namespace, so the webhook reads from a populated cache")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured admissions (webhook server and client) to this file")
	flag.Parse()
	if err := run(*n, *concurrency, *tenants, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const namespace = "bench"

// webhookTime adds up, per Machine, the time the webhook server spent on it: in all, and once the
// request body had arrived.
type webhookTime struct {
	mu      sync.Mutex
	took    map[string]time.Duration
	handled map[string]time.Duration
	calls   map[string]int
}

func (w *webhookTime) observe(path string, review []byte, took, handled time.Duration) {
	if !strings.Contains(path, "controlplane-spread") {
		return
	}
	var r struct {
		Request struct {
			Name string `json:"name"`
		} `json:"request"`
	}
	if json.Unmarshal(review, &r) != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.took[r.Request.Name] += took
	w.handled[r.Request.Name] += handled
	w.calls[r.Request.Name]++
}

func run(n, concurrency, tenants int, cpuProfile string) (err error) {
	wt := &webhookTime{took: map[string]time.Duration{}, handled: map[string]time.Duration{}, calls: map[string]int{}}
	env, err := webhooktest.Start(webhooktest.Options{Observe: wt.observe})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1e6, 1e6 // measure the server, not client-side throttling
	c, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := populate(ctx, c, env, tenants); err != nil {
		return err
	}

	admit := func(name string) (time.Duration, error) {
		m := controlPlaneMachine("tenant-0", name, "")
		start := time.Now()
		err := c.Create(ctx, m, client.DryRunAll)
		elapsed := time.Since(start)
		if err != nil {
			return elapsed, err
		}
		if m.Spec.FailureDomain != "infra-a" {
			return elapsed, fmt.Errorf("defaulted to %q, want infra-a", m.Spec.FailureDomain)
		}
		return elapsed, nil
	}
	for i := range 100 { // warm connections and caches
		if _, err := admit(fmt.Sprintf("warm-%d", i)); err != nil {
			return fmt.Errorf("warm-up admission: %w", err)
		}
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	latencies := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for range concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				d, err := admit(fmt.Sprintf("bench-%d", i))
				if err != nil {
					errs <- fmt.Errorf("admission %d: %w", i, err)
					return
				}
				latencies[i] = d
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	slices.Sort(latencies)

	wt.mu.Lock()
	defer wt.mu.Unlock()
	inWebhook, inHandler := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("bench-%d", i)
		if wt.calls[name] != 2 {
			return fmt.Errorf("admission %s reached the spread webhooks %d times, want 2 (mutating and validating)", name, wt.calls[name])
		}
		inWebhook = append(inWebhook, wt.took[name])
		inHandler = append(inHandler, wt.handled[name])
	}
	slices.Sort(inWebhook)
	slices.Sort(inHandler)
	fmt.Fprintf(os.Stderr, "client round trip (API server + webhooks): p50_ms=%.2f p99_ms=%.2f\n", ms(percentile(latencies, 50)), ms(percentile(latencies, 99)))
	fmt.Fprintf(os.Stderr, "webhook handlers once the request body had arrived: p50_ms=%.2f p99_ms=%.2f\n", ms(percentile(inHandler, 50)), ms(percentile(inHandler, 99)))
	fmt.Printf("BENCH webhook n=%d concurrency=%d p50_ms=%.2f p99_ms=%.2f\n", n, concurrency, ms(percentile(inWebhook, 50)), ms(percentile(inWebhook, 99)))
	return nil
}

// populate registers three Infra clusters and tenants with three control-plane machines each, one
// per Infra cluster, and waits until the webhooks' cache holds them all.
func populate(ctx context.Context, c client.Client, env *webhooktest.Environment, tenants int) error {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	infra := []string{"infra-a", "infra-b", "infra-c"}
	for _, name := range infra {
		if err := c.Create(ctx, &infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{}}}); err != nil {
			return err
		}
	}
	if err := waitFor(ctx, func() bool {
		list := &infrav1.InfraClusterList{}
		return env.Cache.List(ctx, list) == nil && len(list.Items) == len(infra)
	}); err != nil {
		return fmt.Errorf("waiting for the cache to see the InfraClusters: %w", err)
	}
	for t := range tenants {
		name := fmt.Sprintf("tenant-%d", t)
		nc := &infrav1.NestCluster{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: infrav1.NestClusterSpec{
			InfraClusters:        []infrav1.InfraClusterUse{{Name: infra[0]}, {Name: infra[1]}, {Name: infra[2]}},
			ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443},
		}}
		if err := c.Create(ctx, nc); err != nil {
			return err
		}
		for _, fd := range infra {
			nc.Status.FailureDomains = append(nc.Status.FailureDomains, clusterv1.FailureDomain{Name: fd, ControlPlane: ptr.To(true)})
		}
		if err := c.Status().Update(ctx, nc); err != nil {
			return err
		}
		if err := c.Create(ctx, &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: name},
		}}); err != nil {
			return err
		}
		if err := waitFor(ctx, func() bool {
			cached := &infrav1.NestCluster{}
			return env.Cache.Get(ctx, client.ObjectKeyFromObject(nc), cached) == nil && len(cached.Status.FailureDomains) == len(infra) &&
				env.Cache.Get(ctx, client.ObjectKeyFromObject(nc), &clusterv1.Cluster{}) == nil
		}); err != nil {
			return fmt.Errorf("waiting for the cache to see Cluster and NestCluster %s: %w", name, err)
		}
		for i, fd := range infra {
			if err := c.Create(ctx, controlPlaneMachine(name, fmt.Sprintf("%s-cp-%d", name, i), fd)); err != nil {
				return fmt.Errorf("creating the control plane of %s: %w", name, err)
			}
		}
	}
	return waitFor(ctx, func() bool {
		list := &clusterv1.MachineList{}
		return env.Cache.List(ctx, list, client.InNamespace(namespace)) == nil && len(list.Items) == 3*tenants
	})
}

func controlPlaneMachine(cluster, name, failureDomain string) *clusterv1.Machine {
	return &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels: map[string]string{clusterv1.ClusterNameLabel: cluster, clusterv1.MachineControlPlaneLabel: ""}},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster,
			Bootstrap:         clusterv1.Bootstrap{DataSecretName: ptr.To(name)},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachine", Name: name},
			FailureDomain:     failureDomain,
		},
	}
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
