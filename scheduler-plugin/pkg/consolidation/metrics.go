package consolidation

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of a round, the result label of nest_consolidator_rounds_total.
const (
	// RoundPlanned: the round created migrations.
	RoundPlanned = "planned"
	// RoundIdle: nothing could be moved.
	RoundIdle = "idle"
	// RoundYielded: VMs waited for room, so the round planned nothing (and, with --cordon, gave
	// back the nodes it had cordoned).
	RoundYielded = "yielded"
	// RoundFailed: listing the cluster or one of the round's writes failed.
	RoundFailed = "failed"
)

// Changes to nodes' cordons, the change label of nest_consolidator_cordon_changes_total.
const (
	// CordonCordoned: a node cordoned to be emptied.
	CordonCordoned = "cordoned"
	// CordonReleased: a node cordoned earlier given back because it could not be emptied.
	CordonReleased = "released"
	// CordonUncordoned: a node cordoned earlier given back because VMs waited for room.
	CordonUncordoned = "uncordoned"
)

// The consolidator's metrics, served with controller-runtime's on the manager's metrics endpoint:
// what an operator watches to see whether consolidation works (nodes running VMs going down,
// migrations created) and whether it is held back (rounds yielded or failed, cordons released).
var (
	roundsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nest_consolidator_rounds_total",
		Help: "Consolidation rounds, by result: planned (created migrations), idle (nothing to move), yielded (VMs waited for room), failed (a list or a write failed).",
	}, []string{"result"})
	migrationsCreated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nest_consolidator_migrations_created_total",
		Help: "VirtualMachineInstanceMigrations the consolidator created.",
	})
	cordonChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nest_consolidator_cordon_changes_total",
		Help: "Cordons the consolidator set or lifted, by change: cordoned (to empty a node), released (a node it could not empty), uncordoned (VMs waited for room).",
	}, []string{"change"})
	nodesRunningVMs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nest_consolidator_nodes_running_vms",
		Help: "Nodes that ran at least one VM the consolidator considers, at its last round.",
	})
	migrationsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nest_consolidator_migrations_in_flight",
		Help: "Unfinished VirtualMachineInstanceMigrations (anyone's) at the consolidator's last round.",
	})
)

func init() {
	metrics.Registry.MustRegister(roundsTotal, migrationsCreated, cordonChanges, nodesRunningVMs, migrationsInFlight)
	// Every label value from zero, so that rate() and increase() see the first of each.
	for _, r := range []string{RoundPlanned, RoundIdle, RoundYielded, RoundFailed} {
		roundsTotal.WithLabelValues(r)
	}
	for _, c := range []string{CordonCordoned, CordonReleased, CordonUncordoned} {
		cordonChanges.WithLabelValues(c)
	}
}
