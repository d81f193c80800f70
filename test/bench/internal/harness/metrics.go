package harness

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
)

// Metrics is one scrape of the manager's /metrics.
type Metrics map[string]*dto.MetricFamily

// Labels select series by label value; a missing label matches nothing but the empty value.
type Labels map[string]string

// Scrape reads the manager's metrics.
func (m *Manager) Scrape(ctx context.Context) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metrics, nil)
	if err != nil {
		return nil, err
	}
	return scrape(http.DefaultClient, req, "the manager")
}

// ScrapeAPIServer reads the metrics of the kube-apiserver behind cfg.
func ScrapeAPIServer(ctx context.Context, cfg *rest.Config) (Metrics, error) {
	httpClient, req, err := apiServerRequest(ctx, cfg, "/metrics")
	if err != nil {
		return nil, err
	}
	return scrape(httpClient, req, "the API server at "+cfg.Host)
}

func scrape(c *http.Client, req *http.Request, what string) (Metrics, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the metrics of %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping the metrics of %s: %s", what, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the metrics of %s: %w", what, err)
	}
	return families, nil
}

// Counter sums the counters of family name whose labels match.
func (m Metrics) Counter(name string, match Labels) float64 {
	var sum float64
	m.each(name, match, func(s *dto.Metric) { sum += s.GetCounter().GetValue() })
	return sum
}

// CounterBy sums the counters of family name whose labels match, by the value of label by (or of
// several labels, comma-separated, joined with spaces).
func (m Metrics) CounterBy(name, by string, match Labels) map[string]float64 {
	out := map[string]float64{}
	keys := strings.Split(by, ",")
	m.each(name, match, func(s *dto.Metric) {
		values := make([]string, len(keys))
		for i, k := range keys {
			values[i] = labelValue(s, k)
		}
		out[strings.Join(values, " ")] += s.GetCounter().GetValue()
	})
	return out
}

// Histogram sums the observations and counts them, over the histograms of family name whose labels
// match.
func (m Metrics) Histogram(name string, match Labels) (sum float64, count uint64) {
	m.each(name, match, func(s *dto.Metric) {
		sum += s.GetHistogram().GetSampleSum()
		count += s.GetHistogram().GetSampleCount()
	})
	return sum, count
}

func (m Metrics) each(name string, match Labels, do func(*dto.Metric)) {
	f, ok := m[name]
	if !ok {
		return
	}
series:
	for _, s := range f.GetMetric() {
		for k, v := range match {
			if labelValue(s, k) != v {
				continue series
			}
		}
		do(s)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Metric families the benchmarks read.
const (
	// RemoteRequestsMetric counts the manager's requests to Infra clusters by infracluster, purpose
	// ("probe" or "client"), method and code.
	RemoteRequestsMetric = "capnest_infracluster_requests_total"
	// RESTRequestsMetric is client-go's count of requests by host, method and code: the management
	// cluster's among them.
	RESTRequestsMetric = "rest_client_requests_total"
	// APIServerRequestsMetric is the kube-apiserver's count of requests by verb, resource,
	// subresource and code.
	APIServerRequestsMetric = "apiserver_request_total"
	// ReconcileTotalMetric counts controller-runtime's reconciles by controller and result.
	ReconcileTotalMetric = "controller_runtime_reconcile_total"
	// ReconcileTimeMetric is controller-runtime's reconcile duration by controller.
	ReconcileTimeMetric = "controller_runtime_reconcile_time_seconds"
	// QueueWaitMetric is how long items wait in a controller's work queue, by name.
	QueueWaitMetric = "workqueue_queue_duration_seconds"
)

// CounterDelta is how much the counters of family name whose labels match grew from before to
// after, by the value of label by.
func CounterDelta(before, after Metrics, name, by string, match Labels) map[string]float64 {
	a, b := after.CounterBy(name, by, match), before.CounterBy(name, by, match)
	for k := range a {
		a[k] -= b[k]
	}
	return a
}

// FormatPer lists values divided by per, by key in order, leaving out zeros: "GET 0.20, POST 2.00".
func FormatPer(values map[string]float64, per float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if values[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, values[k]/per))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
