package envtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Proxy is a TCP proxy on the loopback address in front of an environment's API server, for faults
// as a network makes them: Down drops every connection and refuses new ones (a cable pulled, a
// flapping link), Hang accepts new connections and never forwards them (an API server that accepts
// and never answers). TLS passes through untouched: the API server's certificate names 127.0.0.1.
type Proxy struct {
	listener net.Listener
	target   string

	mu    sync.Mutex
	down  bool
	hang  bool
	conns map[net.Conn]struct{}
	done  chan struct{}
}

// StartProxy starts a proxy in front of e's API server.
func (e *Environment) StartProxy() (*Proxy, error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server address %q: %w", e.Config.Host, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{listener: l, target: u.Host, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// KubeconfigSecret is e's admin kubeconfig, pointing at the proxy, in a Secret as an InfraCluster's
// spec.kubeconfigSecretRef expects it.
func (p *Proxy) KubeconfigSecret(e *Environment, namespace, name string) (*corev1.Secret, error) {
	return e.KubeconfigSecretVia(p.Addr(), namespace, name)
}

// SetDown drops every open connection and refuses new ones while down is true.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// SetHang makes new connections hang (accepted, never forwarded) while hang is true; open ones go on.
func (p *Proxy) SetHang(hang bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = hang
}

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() error {
	close(p.done)
	err := p.listener.Close()
	p.SetDown(true)
	return err
}

func (p *Proxy) serve() {
	for {
		c, err := p.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		down, hang := p.down, p.hang
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		switch {
		case down:
			p.drop(c)
		case hang:
			// Held open until the proxy goes down or closes.
		default:
			go p.forward(c)
		}
	}
}

func (p *Proxy) drop(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) forward(c net.Conn) {
	defer p.drop(c)
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[upstream] = struct{}{}
	p.mu.Unlock()
	defer p.drop(upstream)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, upstream); done <- struct{}{} }()
	select {
	case <-done:
	case <-p.done:
	}
}
