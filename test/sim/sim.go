package sim

import (
	"context"
	"errors"

	"k8s.io/client-go/rest"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
)

// Options choose the simulators of one Infra cluster; nil leaves one out.
type Options struct {
	KubeVirt *kubevirt.Options
	Metal3   *metal3.Options
}

// Infra is the simulators of one Infra API server, sharing one manager and its caches.
type Infra struct {
	// KubeVirt and Metal3 are the running simulators, nil when not asked for.
	KubeVirt *kubevirt.Simulator
	Metal3   *metal3.Simulator

	handle *simkit.Handle
}

// Run starts the simulators of opts against the API server of cfg, returns once their caches have
// synced, and stops them when ctx ends. Start one Infra per Infra API server.
func Run(ctx context.Context, cfg *rest.Config, opts Options) (*Infra, error) {
	if opts.KubeVirt == nil && opts.Metal3 == nil {
		return nil, errors.New("no simulator asked for")
	}
	infra := &Infra{}
	var parts []simkit.Part
	if opts.KubeVirt != nil {
		s, err := kubevirt.New(*opts.KubeVirt)
		if err != nil {
			return nil, err
		}
		infra.KubeVirt = s
		parts = append(parts, s)
	}
	if opts.Metal3 != nil {
		s, err := metal3.New(*opts.Metal3)
		if err != nil {
			return nil, err
		}
		infra.Metal3 = s
		parts = append(parts, s)
	}
	var err error
	if infra.handle, err = simkit.Run(ctx, cfg, parts...); err != nil {
		return nil, err
	}
	return infra, nil
}

// Done is closed when the simulators have stopped.
func (i *Infra) Done() <-chan struct{} { return i.handle.Done() }

// Err is the error the simulators stopped with.
func (i *Infra) Err() error { return i.handle.Err() }
