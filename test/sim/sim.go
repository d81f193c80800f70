package sim

import (
	"context"
	"errors"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	var cacheOpts []cache.Options
	if opts.KubeVirt != nil {
		s, err := kubevirt.New(*opts.KubeVirt)
		if err != nil {
			return nil, err
		}
		infra.KubeVirt = s
		cacheOpts = append(cacheOpts, s.CacheOptions())
	}
	if opts.Metal3 != nil {
		s, err := metal3.New(*opts.Metal3)
		if err != nil {
			return nil, err
		}
		infra.Metal3 = s
		cacheOpts = append(cacheOpts, s.CacheOptions())
	}
	mgr, err := simkit.NewManager(cfg, mergeCacheOptions(cacheOpts...))
	if err != nil {
		return nil, err
	}
	var watched []client.Object
	if infra.KubeVirt != nil {
		if err := infra.KubeVirt.SetupWithManager(ctx, mgr); err != nil {
			return nil, err
		}
		watched = append(watched, infra.KubeVirt.Watched()...)
	}
	if infra.Metal3 != nil {
		if err := infra.Metal3.SetupWithManager(ctx, mgr); err != nil {
			return nil, err
		}
		watched = append(watched, infra.Metal3.Watched()...)
	}
	if infra.handle, err = simkit.Start(ctx, mgr, watched); err != nil {
		return nil, err
	}
	return infra, nil
}

// Done is closed when the simulators have stopped.
func (i *Infra) Done() <-chan struct{} { return i.handle.Done() }

// Err is the error the simulators stopped with.
func (i *Infra) Err() error { return i.handle.Err() }

// mergeCacheOptions combines the cache needs of simulators sharing a manager: the union of their
// namespaces (all when one wants all) and their per-kind settings (each kind is one simulator's).
func mergeCacheOptions(opts ...cache.Options) cache.Options {
	out := cache.Options{}
	all := false
	for _, o := range opts {
		if len(o.DefaultNamespaces) == 0 {
			all = true
		}
		for ns, c := range o.DefaultNamespaces {
			if out.DefaultNamespaces == nil {
				out.DefaultNamespaces = map[string]cache.Config{}
			}
			out.DefaultNamespaces[ns] = c
		}
		for obj, by := range o.ByObject {
			if out.ByObject == nil {
				out.ByObject = map[client.Object]cache.ByObject{}
			}
			out.ByObject[obj] = by
		}
	}
	if all {
		out.DefaultNamespaces = nil
	}
	return out
}
