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
//
// The admissions are sent by a second process (this command again, with -load): in a cluster the
// webhook server's clients are controllers in other processes, and 32 clients' JSON and TLS in the
// webhook server's own Go runtime would queue its goroutines behind theirs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
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
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the webhook server's process during the measured admissions to this file")
	load := flag.String("load", "", "internal: send the admissions through the API server of this kubeconfig and print their latencies")
	flag.Parse()
	if *load != "" {
		if err := sendLoad(*load, *n, *concurrency); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *concurrency, *tenants, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const namespace = "bench"

// webhookTime records, per call of the spread webhooks, the review it answered and the time the
// webhook server spent on it: in all, and once the request body had arrived. Reviews are decoded
// after the run (perMachine), so that the recording costs the server next to nothing.
type webhookTime struct {
	mu    sync.Mutex
	calls []webhookCall
}

type webhookCall struct {
	review        []byte
	took, handled time.Duration
}

func (w *webhookTime) observe(path string, review []byte, took, handled time.Duration) {
	if !strings.Contains(path, "controlplane-spread") {
		return
	}
	w.mu.Lock()
	w.calls = append(w.calls, webhookCall{review: review, took: took, handled: handled})
	w.mu.Unlock()
}

// perMachine adds up the recorded times by Machine name, and counts the calls.
func (w *webhookTime) perMachine() (took, handled map[string]time.Duration, calls map[string]int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	took, handled, calls = map[string]time.Duration{}, map[string]time.Duration{}, map[string]int{}
	for _, c := range w.calls {
		var r struct {
			Request struct {
				Name string `json:"name"`
			} `json:"request"`
		}
		if err := json.Unmarshal(c.review, &r); err != nil {
			return nil, nil, nil, fmt.Errorf("decoding a recorded AdmissionReview: %w", err)
		}
		took[r.Request.Name] += c.took
		handled[r.Request.Name] += c.handled
		calls[r.Request.Name]++
	}
	return took, handled, calls, nil
}

func run(n, concurrency, tenants int, cpuProfile string) (err error) {
	wt := &webhookTime{}
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

	for i := range 100 { // warm connections and caches
		if _, err := admit(ctx, c, fmt.Sprintf("warm-%d", i)); err != nil {
			return fmt.Errorf("warm-up admission: %w", err)
		}
	}
	kubeconfig, err := os.CreateTemp("", "bench-webhook-*.kubeconfig")
	if err != nil {
		return err
	}
	defer os.Remove(kubeconfig.Name())
	if _, err := kubeconfig.Write(env.KubeConfig); err != nil {
		return err
	}
	if err := kubeconfig.Close(); err != nil {
		return err
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
	latencies, err := runLoad(ctx, kubeconfig.Name(), n, concurrency)
	if err != nil {
		return err
	}
	slices.Sort(latencies)

	took, handled, calls, err := wt.perMachine()
	if err != nil {
		return err
	}
	inWebhook, inHandler := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("bench-%d", i)
		if calls[name] != 2 {
			return fmt.Errorf("admission %s reached the spread webhooks %d times, want 2 (mutating and validating)", name, calls[name])
		}
		inWebhook = append(inWebhook, took[name])
		inHandler = append(inHandler, handled[name])
	}
	slices.Sort(inWebhook)
	slices.Sort(inHandler)
	fmt.Fprintf(os.Stderr, "client round trip (API server + webhooks): p50_ms=%.2f p99_ms=%.2f\n", ms(percentile(latencies, 50)), ms(percentile(latencies, 99)))
	fmt.Fprintf(os.Stderr, "webhook handlers once the request body had arrived: p50_ms=%.2f p99_ms=%.2f\n", ms(percentile(inHandler, 50)), ms(percentile(inHandler, 99)))
	fmt.Printf("BENCH webhook n=%d concurrency=%d p50_ms=%.2f p99_ms=%.2f\n", n, concurrency, ms(percentile(inWebhook, 50)), ms(percentile(inWebhook, 99)))
	return nil
}

// admit dry-runs the create of a control-plane Machine of tenant-0 and checks the webhook defaulted
// its failure domain.
func admit(ctx context.Context, c client.Client, name string) (time.Duration, error) {
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

// runLoad runs this command with -load and reads the latencies it prints, one per admission.
func runLoad(ctx context.Context, kubeconfig string, n, concurrency int) ([]time.Duration, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-load", kubeconfig, "-n", strconv.Itoa(n), "-concurrency", strconv.Itoa(concurrency))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("sending the admissions: %w", err)
	}
	latencies := make([]time.Duration, 0, n)
	for _, line := range strings.Fields(string(out)) {
		ns, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reading the load's latencies: %w", err)
		}
		latencies = append(latencies, time.Duration(ns))
	}
	if len(latencies) != n {
		return nil, fmt.Errorf("the load reported %d latencies, want %d", len(latencies), n)
	}
	return latencies, nil
}

// sendLoad is the -load process: n admissions named bench-<i>, concurrency at a time, each
// latency printed in nanoseconds, in order.
func sendLoad(kubeconfig string, n, concurrency int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 1e6, 1e6 // measure the server, not client-side throttling
	c, err := client.New(cfg, client.Options{Scheme: envtest.Scheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
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
				d, err := admit(ctx, c, fmt.Sprintf("bench-%d", i))
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
	w := bufio.NewWriter(os.Stdout)
	for _, d := range latencies {
		fmt.Fprintln(w, int64(d))
	}
	return w.Flush()
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
