package infra

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Purposes of remote requests, a label of RemoteRequests.
const (
	// PurposeProbe is a health probe (readyz, version, discovery).
	PurposeProbe = "probe"
	// PurposeClient is everything else: cache list/watch and writes.
	PurposeClient = "client"
)

var (
	// Reachable is 1 while an Infra cluster answers its probes.
	Reachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "capnest_infracluster_reachable",
		Help: "1 when the Infra cluster answered its last probe, 0 otherwise.",
	}, []string{"infracluster"})

	// ProbeDuration is the latency of health probes.
	ProbeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "capnest_infracluster_probe_duration_seconds",
		Help:    "Duration of Infra cluster health probes.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"infracluster"})

	// RemoteRequests counts HTTP requests to Infra clusters.
	RemoteRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capnest_infracluster_requests_total",
		Help: "HTTP requests sent to Infra cluster API servers.",
	}, []string{"infracluster", "purpose", "method", "code"})
)

func init() {
	metrics.Registry.MustRegister(Reachable, ProbeDuration, RemoteRequests)
}

// countingTransport counts every request it sends in RemoteRequests.
type countingTransport struct {
	infra, purpose string
	next           http.RoundTripper
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	RemoteRequests.WithLabelValues(t.infra, t.purpose, req.Method, code).Inc()
	return resp, err
}

func countRequests(infra, purpose string) func(http.RoundTripper) http.RoundTripper {
	return func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{infra: infra, purpose: purpose, next: rt}
	}
}
