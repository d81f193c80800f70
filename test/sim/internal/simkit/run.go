package simkit

import (
	"context"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Part is a simulator as a manager sees it: what it caches, its controllers, the kinds it watches.
type Part interface {
	CacheOptions() cache.Options
	SetupWithManager(ctx context.Context, mgr manager.Manager) error
	Watched() []client.Object
}

// Run starts parts on one manager of their own against the API server of cfg, returns once their
// caches have synced, and stops them when ctx ends.
func Run(ctx context.Context, cfg *rest.Config, parts ...Part) (*Handle, error) {
	cacheOpts := make([]cache.Options, 0, len(parts))
	for _, p := range parts {
		cacheOpts = append(cacheOpts, p.CacheOptions())
	}
	mgr, err := NewManager(cfg, mergeCacheOptions(cacheOpts...))
	if err != nil {
		return nil, err
	}
	var watched []client.Object
	for _, p := range parts {
		if err := p.SetupWithManager(ctx, mgr); err != nil {
			return nil, err
		}
		watched = append(watched, p.Watched()...)
	}
	return Start(ctx, mgr, watched)
}

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
