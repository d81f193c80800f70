package harness

import (
	"context"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// Snapshot is what the benchmarks compare between two moments: the manager's metrics, every API
// server's, the CPU time of each process of the run and of the whole machine.
type Snapshot struct {
	At      time.Time
	Manager Metrics
	// APIServers are the management API server's metrics, then each Infra API server's.
	APIServers []Metrics
	CPU        CPUTimes
	Machine    MachineCPU
}

// Snapshot reads everything a Snapshot holds, now.
func (e *Env) Snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	var err error
	if s.Manager, err = e.Manager.Scrape(ctx); err != nil {
		return s, err
	}
	for _, cfg := range append([]*rest.Config{e.Config}, e.InfraConfigs()...) {
		m, err := ScrapeAPIServer(ctx, cfg)
		if err != nil {
			return s, err
		}
		s.APIServers = append(s.APIServers, m)
	}
	if s.CPU, err = e.CPUTimes(); err != nil {
		return s, err
	}
	s.Machine, err = ReadMachineCPU()
	return s, err
}

// InfraConfigs reach the Infra API servers, in Topology.Infras order.
func (e *Env) InfraConfigs() []*rest.Config {
	cfgs := make([]*rest.Config, 0, len(e.Topology.Infras))
	for _, infra := range e.Topology.Infras {
		cfgs = append(cfgs, infra.Config)
	}
	return cfgs
}

// ManagementRequests are the manager's requests to the management cluster between the snapshots, by
// method.
func (e *Env) ManagementRequests(before, after Snapshot) map[string]float64 {
	return CounterDelta(before.Manager, after.Manager, RESTRequestsMetric, "method", Labels{"host": e.ManagementHost()})
}

// InfraRequests are the manager's requests to the Infra clusters between the snapshots, health probes
// left out, by method.
func InfraRequests(before, after Snapshot) map[string]float64 {
	return CounterDelta(before.Manager, after.Manager, RemoteRequestsMetric, "method", Labels{"purpose": "client"})
}

// Sum adds up the values of a breakdown.
func Sum(values map[string]float64) float64 {
	var s float64
	for _, v := range values {
		s += v
	}
	return s
}

// ReportPerMachine writes to the log what explains a run's figures, per machine of n: the manager's
// requests by destination and method, its NestMachine reconciles and their time in the work queue,
// every client's requests as each API server counted them, and the CPU time of each process.
func (e *Env) ReportPerMachine(before, after Snapshot, n int) {
	per := float64(n)
	e.Logf("requests per machine: management cluster %s; Infra clusters %s; probes during the run %.0f",
		FormatPer(e.ManagementRequests(before, after), per), FormatPer(InfraRequests(before, after), per),
		after.Manager.Counter(RemoteRequestsMetric, Labels{"purpose": "probe"})-before.Manager.Counter(RemoteRequestsMetric, Labels{"purpose": "probe"}))
	nestmachine := Labels{"controller": "nestmachine"}
	reconcileSum, reconciles := after.Manager.Histogram(ReconcileTimeMetric, nestmachine)
	beforeSum, beforeCount := before.Manager.Histogram(ReconcileTimeMetric, nestmachine)
	reconcileSum, reconciles = reconcileSum-beforeSum, reconciles-beforeCount
	queueSum, queued := after.Manager.Histogram(QueueWaitMetric, Labels{"name": "nestmachine"})
	beforeSum, beforeCount = before.Manager.Histogram(QueueWaitMetric, Labels{"name": "nestmachine"})
	queueSum, queued = queueSum-beforeSum, queued-beforeCount
	if reconciles > 0 && queued > 0 {
		e.Logf("NestMachine reconciles: %.1f per machine %s, %.0f ms each on average, after %.0f ms in the work queue on average",
			float64(reconciles)/per, FormatPer(CounterDelta(before.Manager, after.Manager, ReconcileTotalMetric, "result", nestmachine), per),
			reconcileSum/float64(reconciles)*1000, queueSum/float64(queued)*1000)
	}
	management := APIServerRequests(before.APIServers[:1], after.APIServers[:1], n)
	infras := APIServerRequests(before.APIServers[1:], after.APIServers[1:], n)
	e.Logf("API servers' requests per machine, from every client: management %s; Infra clusters %s",
		FormatPer(management, per), FormatPer(infras, per))
	e.Logf("CPU seconds: %s; machine idle %.0f%%", after.CPU.Sub(before.CPU), after.Machine.IdlePercent(before.Machine))
}

// APIServerRequests adds up the requests the API servers served between the scrapes, by verb and
// resource, leaving out those under one per hundred of n (none when n is 0).
func APIServerRequests(before, after []Metrics, n int) map[string]float64 {
	out := map[string]float64{}
	for i := range before {
		for k, v := range CounterDelta(before[i], after[i], APIServerRequestsMetric, "verb,resource,subresource", nil) {
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
