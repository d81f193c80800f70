package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// ProfileAPIServer writes a CPU profile of the kube-apiserver behind cfg, over d, to path (go tool
// pprof reads it). It blocks for d; the API server serves /debug/pprof with --profiling, its default.
func ProfileAPIServer(ctx context.Context, cfg *rest.Config, d time.Duration, path string) error {
	httpClient, req, err := apiServerRequest(ctx, cfg, "/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())))
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling the API server at %s: %w", cfg.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("profiling the API server at %s: %s: %s", cfg.Host, resp.Status, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// apiServerRequest is a GET of path on the kube-apiserver behind cfg, with a client that
// authenticates as cfg does.
func apiServerRequest(ctx context.Context, cfg *rest.Config, path string) (*http.Client, *http.Request, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		return nil, nil, err
	}
	return httpClient, req, nil
}
