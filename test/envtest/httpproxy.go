package envtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

// HTTPProxy is an HTTP proxy in front of an environment's API server, for the faults only a proxy
// that reads requests can make. HangResources makes it an API server whose storage is wedged (etcd
// unreachable behind it, or overloaded): it accepts connections and answers /readyz, /version and
// discovery, but never answers a request for a resource (a get, list, watch or write); it holds it
// until the client gives up. It terminates TLS with the API server's own serving certificate, so a
// kubeconfig for it verifies as one for the API server does, and forwards as the environment's
// administrator.
type HTTPProxy struct {
	server   *http.Server
	listener net.Listener
	proxy    *httputil.ReverseProxy
	closed   chan struct{}

	hang atomic.Bool
	// held counts the requests being held now; released, those whose client gave up waiting.
	held, released atomic.Int64
	closeOnce      sync.Once
}

// StartHTTPProxy starts an HTTP proxy in front of e's API server.
func (e *Environment) StartHTTPProxy() (*HTTPProxy, error) {
	target, err := url.Parse(e.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server address %q: %w", e.Config.Host, err)
	}
	transport, err := rest.TransportFor(e.Config)
	if err != nil {
		return nil, fmt.Errorf("building a transport to %s: %w", e, err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(e.certDir, "apiserver.crt"), filepath.Join(e.certDir, "apiserver.key"))
	if err != nil {
		return nil, fmt.Errorf("reading the serving certificate of %s: %w", e, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &HTTPProxy{listener: l, closed: make(chan struct{})}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	p.server = &http.Server{Handler: p, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() { _ = p.server.ServeTLS(l, "", "") }()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *HTTPProxy) Addr() string { return p.listener.Addr().String() }

// KubeconfigSecret is e's admin kubeconfig, pointing at the proxy, in a Secret as an InfraCluster's
// spec.kubeconfigSecretRef expects it.
func (p *HTTPProxy) KubeconfigSecret(e *Environment, namespace, name string) (*corev1.Secret, error) {
	return e.KubeconfigSecretVia(p.Addr(), namespace, name)
}

// HangResources makes the proxy hold every resource request from now on (true) or forward them
// again (false; those held stay held).
func (p *HTTPProxy) HangResources(hang bool) { p.hang.Store(hang) }

// Held is how many requests the proxy is holding now.
func (p *HTTPProxy) Held() int64 { return p.held.Load() }

// Released is how many held requests ended because their client gave up (a timeout, a cancelled
// context), rather than the proxy closing.
func (p *HTTPProxy) Released() int64 { return p.released.Load() }

// Close stops the proxy; held requests end.
func (p *HTTPProxy) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	err := p.server.Close()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (p *HTTPProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.hang.Load() || !storageRequest(r) {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.held.Add(1)
	defer p.held.Add(-1)
	select {
	case <-r.Context().Done():
		if !errors.Is(context.Cause(r.Context()), http.ErrServerClosed) {
			p.released.Add(1)
		}
	case <-p.closed:
	}
}

// storageRequest reports whether an API server needs its storage to answer r: every request for a
// resource (/api/v1/<resource>..., /apis/<group>/<version>/<resource>...) but the access reviews,
// which its authorizer answers. Health, version and discovery do not.
func storageRequest(r *http.Request) bool {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		return true
	case len(parts) >= 4 && parts[0] == "apis":
		return parts[1] != "authorization.k8s.io"
	}
	return false
}
