package simkit

import (
	"context"
	"fmt"
	"sync"
)

// IPAM hands out the addresses of one /16 (<a>.<b>.x.y) in order, skipping .0 and .255 and addresses
// inUse reports taken (by objects a restarted simulator finds in its cache): unique within a simulator,
// and across simulators given different /16s.
type IPAM struct {
	mu    sync.Mutex
	a, b  uint8
	next  uint32
	inUse func(ctx context.Context, ip string) (bool, error)
}

// NewIPAM returns an allocator of a.b.0.0/16.
func NewIPAM(a, b uint8, inUse func(ctx context.Context, ip string) (bool, error)) *IPAM {
	return &IPAM{a: a, b: b, inUse: inUse}
}

// Allocate returns a free address.
func (p *IPAM) Allocate(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		p.next++
		c := p.next
		if c >= 1<<16 {
			return "", fmt.Errorf("no addresses left in %d.%d.0.0/16", p.a, p.b)
		}
		if c&0xff == 0 || c&0xff == 0xff {
			continue
		}
		ip := fmt.Sprintf("%d.%d.%d.%d", p.a, p.b, c>>8, c&0xff)
		used, err := p.inUse(ctx, ip)
		if err != nil {
			return "", err
		}
		if !used {
			return ip, nil
		}
	}
}
