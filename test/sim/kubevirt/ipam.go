package kubevirt

import (
	"context"
	"fmt"
	"sync"
)

// ipam hands out addresses that are unique in one simulator and across simulators with different IDs:
// 10.<id>.x.y for launcher pods, 10.<id+128>.x.y for secondary networks, in order, skipping .0 and .255
// and addresses a cached pod or VMI already has (after a restart).
type ipam struct {
	mu    sync.Mutex
	id    uint8
	next  [2]uint32
	inUse func(ctx context.Context, ip string) (bool, error)
}

func newIPAM(id uint8, inUse func(ctx context.Context, ip string) (bool, error)) *ipam {
	return &ipam{id: id, inUse: inUse}
}

// allocate returns a free address of the pod network, or of secondary networks.
func (a *ipam) allocate(ctx context.Context, secondary bool) (string, error) {
	space := 0
	if secondary {
		space = 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		a.next[space]++
		c := a.next[space]
		if c >= 1<<16 {
			return "", fmt.Errorf("simulator %d has no addresses left in 10.%d.0.0/16", a.id, int(a.id)+128*space)
		}
		if c&0xff == 0 || c&0xff == 0xff {
			continue
		}
		ip := fmt.Sprintf("10.%d.%d.%d", int(a.id)+128*space, c>>8, c&0xff)
		used, err := a.inUse(ctx, ip)
		if err != nil {
			return "", err
		}
		if !used {
			return ip, nil
		}
	}
}
