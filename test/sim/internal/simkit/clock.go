package simkit

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Clock remembers when a simulator first saw an object reach a stage, to time delays with RequeueAfter
// instead of sleeping, and without relying on API timestamps (metav1.Time has second precision). It is
// in memory: a restarted simulator starts its delays over.
type Clock struct {
	mu   sync.Mutex
	seen map[types.UID]map[string]time.Time
}

// NewClock returns an empty clock.
func NewClock() *Clock { return &Clock{seen: map[types.UID]map[string]time.Time{}} }

// Since is the time since uid was first seen at stage; the first call starts the clock and returns 0.
func (c *Clock) Since(uid types.UID, stage string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	stages, ok := c.seen[uid]
	if !ok {
		stages = map[string]time.Time{}
		c.seen[uid] = stages
	}
	t, ok := stages[stage]
	if !ok {
		t = time.Now()
		stages[stage] = t
	}
	return time.Since(t)
}

// Remaining is how long to wait before delay has passed since uid reached stage; 0 when it has.
func (c *Clock) Remaining(uid types.UID, stage string, delay time.Duration) time.Duration {
	if delay <= 0 {
		return 0
	}
	return max(delay-c.Since(uid, stage), 0)
}

// Forget drops what is known about uid.
func (c *Clock) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, uid)
}
