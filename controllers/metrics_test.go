package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/nestcapi/cluster-api-provider-nest/internal/manager"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape reads the samples a metrics endpoint serves.
func scrape(url string) ([]sample, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	var out []sample
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		m := sampleLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range labelPair.FindAllStringSubmatch(m[2], -1) {
			labels[l[1]] = l[2]
		}
		out = append(out, sample{name: m[1], labels: labels, value: v})
	}
	return out, s.Err()
}

// value is the sample of name whose labels include want, or -1 when there is none.
func value(samples []sample, name string, want map[string]string) float64 {
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value
		}
	}
	return -1
}

// freeAddress is a local TCP address nothing listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestManagerMetricsReportMachinesByPhaseAndProvisioningTime restarts the suite's manager with its
// metrics endpoint on, provisions a VM machine and scrapes /metrics as Prometheus would: the machine
// counted by phase and Infra cluster, its provisioning time observed, and the Infra-cluster and
// webhook series present.
func TestManagerMetricsReportMachinesByPhaseAndProvisioningTime(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	addr := freeAddress(t)
	stopManager()
	stop, err := startManagerOn(ctx, topo.Management.Config, identity, func(o *manager.Options) {
		o.Manager.DiagnosticsAddress = addr
	})
	g.Expect(err).NotTo(HaveOccurred())
	stopManager = stop // the suite's manager from now on, metrics and all
	url := "http://" + addr + "/metrics"

	cluster, _ := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-b", spec: vmSpec()})
	waitProvisioned(t, nm)

	const histogram = "capnest_nestmachine_provisioning_duration_seconds"
	var samples []sample
	g.Eventually(func(g Gomega) {
		samples, err = scrape(url)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(value(samples, "capnest_nestmachines", map[string]string{"phase": "Running", "infracluster": "infra-b"})).
			To(BeNumerically(">=", 1), "the running machine is counted from the cache")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	kubevirtInB := map[string]string{"infracluster": "infra-b", "kind": "kubevirt"}
	g.Expect(value(samples, histogram+"_count", kubevirtInB)).To(BeNumerically(">=", 1), "the provisioning is observed")
	sum := value(samples, histogram+"_sum", kubevirtInB)
	g.Expect(sum).To(BeNumerically(">", 0))
	g.Expect(sum).To(BeNumerically("<", time.Since(nm.CreationTimestamp.Time).Seconds()*value(samples, histogram+"_count", kubevirtInB)+1),
		"each observation is at most the age of a machine")
	g.Expect(value(samples, "capnest_infracluster_reachable", map[string]string{"infracluster": "infra-b"})).To(Equal(1.0))
	g.Expect(value(samples, "capnest_controlplane_spread_rejections_total", map[string]string{"reason": "Unbalanced"})).
		To(BeNumerically(">=", 0), "every rejection reason is exported from zero")

	for _, s := range samples {
		if strings.HasPrefix(s.name, "capnest_nestmachines") && s.labels["phase"] == "" {
			t.Errorf("capnest_nestmachines sample without a phase: %+v", s)
		}
	}

	// Every provider metric the registry holds now is in the operator's table.
	docs, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "docs", "operations.md"))
	g.Expect(err).NotTo(HaveOccurred())
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if name := f.GetName(); strings.HasPrefix(name, "capnest_") && !strings.Contains(string(docs), "| `"+name+"` |") {
			t.Errorf("%s is not in the metrics table of docs/operations.md", name)
		}
	}
}
