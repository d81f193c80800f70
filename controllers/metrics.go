package controllers

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Kinds of machines, a label of provisioningDuration.
const (
	machineKindKubeVirt  = "kubevirt"
	machineKindBareMetal = "baremetal"
)

var provisioningDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name: "capnest_nestmachine_provisioning_duration_seconds",
	Help: "Time from a NestMachine's creation until its VM runs or its host is provisioned.",
	// VMs from a cached container disk take seconds; an image import or a bare-metal host, up to an hour.
	Buckets: []float64{5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600},
}, []string{"infracluster", "kind"})

func init() {
	metrics.Registry.MustRegister(provisioningDuration)
}

// observeProvisioned records how long nm took to provision, when it is provisioned for the first
// time: call it before setting status.initialization.provisioned.
func observeProvisioned(nm *infrav1.NestMachine, infraCluster, kind string) {
	if ptr.Deref(nm.Status.Initialization.Provisioned, false) {
		return
	}
	provisioningDuration.WithLabelValues(infraCluster, kind).Observe(time.Since(nm.CreationTimestamp.Time).Seconds())
}

var nestMachinesDesc = prometheus.NewDesc("capnest_nestmachines",
	"NestMachines by phase and the Infra cluster they run on (empty until placed), read from the manager's cache at each scrape.",
	[]string{"phase", "infracluster"}, nil)

// collectTimeout bounds a scrape's wait for the cache (it only waits before the cache has synced).
const collectTimeout = 5 * time.Second

// nestMachineCollector counts NestMachines when scraped, from the manager's cache: nothing is
// updated on reconciles, and a deleted NestMachine leaves no stale series behind.
type nestMachineCollector struct {
	reader client.Reader
}

func (c *nestMachineCollector) Describe(ch chan<- *prometheus.Desc) { ch <- nestMachinesDesc }

func (c *nestMachineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	list := &infrav1.NestMachineList{}
	if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(nestMachinesDesc, err)
		return
	}
	type key struct{ phase, infra string }
	counts := map[key]int{}
	for i := range list.Items {
		nm := &list.Items[i]
		phase := nm.Status.Phase
		if phase == "" { // not reconciled yet
			phase = infrav1.NestMachinePhasePending
		}
		counts[key{string(phase), nm.Status.FailureDomain}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(nestMachinesDesc, prometheus.GaugeValue, float64(n), k.phase, k.infra)
	}
}

// RegisterNestMachineCollector registers on registry the gauge capnest_nestmachines, read from
// reader (the manager's cache) at each scrape. It replaces the collector of an earlier manager of
// this process, so that a manager restarted in-process reports from its own cache.
func RegisterNestMachineCollector(registry prometheus.Registerer, reader client.Reader) error {
	c := &nestMachineCollector{reader: reader}
	err := registry.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		registry.Unregister(already.ExistingCollector)
		err = registry.Register(c)
	}
	return err
}
