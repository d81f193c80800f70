package infra

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// ProbeResult is what one health probe of an Infra cluster found.
type ProbeResult struct {
	// Err is why the probe failed; nil when the API server answered.
	Err error
	// Duration of the probe.
	Duration time.Duration
	// Full is true when Version and Groups were read in this probe.
	Full bool
	// Version is the API server's git version (full probes only).
	Version string
	// Groups are the API groups the server serves (full probes only).
	Groups sets.Set[string]
}

// Probe asks the Infra cluster's API server whether it is ready (/readyz) within timeout and, when
// full, also reads its version and API groups. Probe requests are counted apart from the rest.
func (c *Connection) Probe(ctx context.Context, timeout time.Duration, full bool) ProbeResult {
	start := time.Now()
	res := c.probe(ctx, timeout, full)
	res.Duration = time.Since(start)
	ProbeDuration.WithLabelValues(c.Name).Observe(res.Duration.Seconds())
	if res.Err == nil {
		Reachable.WithLabelValues(c.Name).Set(1)
	} else {
		Reachable.WithLabelValues(c.Name).Set(0)
	}
	return res
}

func (c *Connection) probe(ctx context.Context, timeout time.Duration, full bool) ProbeResult {
	cfg := rest.CopyConfig(c.probeConfig)
	cfg.Timeout = timeout
	// A fresh transport per probe would cost a TLS handshake each time; the probe config's transport
	// is cached by client-go, and the timeout bounds each request.
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("building the probe client: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var code int
	body, err := dc.RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&code).Raw()
	if failing := failedReadyzChecks(body); len(failing) > 0 && (err != nil || code != http.StatusOK) {
		// A starting API server answers with its ~40 checks; the condition names only the failing ones.
		return ProbeResult{Err: fmt.Errorf("GET /readyz: the API server is not ready yet, failing checks: %s", strings.Join(failing, ", "))}
	}
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("GET /readyz: %w", err)}
	}
	if code != http.StatusOK {
		return ProbeResult{Err: fmt.Errorf("GET /readyz answered %d: %s", code, body)}
	}
	if !full {
		return ProbeResult{}
	}
	version, err := dc.ServerVersion()
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("reading the server version: %w", err)}
	}
	groupList, err := dc.ServerGroups()
	if err != nil {
		return ProbeResult{Err: fmt.Errorf("discovering API groups: %w", err)}
	}
	groups := sets.New[string]()
	for _, g := range groupList.Groups {
		groups.Insert(g.Name)
	}
	return ProbeResult{Full: true, Version: version.GitVersion, Groups: groups}
}

// failedReadyzChecks returns the names of the checks a /readyz answer reports as failed, in the
// order it lists them ("[-]etcd failed: reason withheld" gives "etcd").
func failedReadyzChecks(body []byte) []string {
	var failed []string
	for line := range strings.Lines(string(body)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "[-]")
		if !ok {
			continue
		}
		if i := strings.IndexAny(name, " \t"); i >= 0 {
			name = name[:i]
		}
		failed = append(failed, name)
	}
	return failed
}
