package controllers

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// liveConditionsClient is the client a patch helper gets: writes as the manager's client, reads from
// the API server. CAPI's patch helper reads the object again before patching its conditions under
// optimistic locking; from the cache, that read can miss the reconciler's own previous write (a
// remote event can start the next reconcile before the watch delivers it), and each retry is a
// PATCH the API server rejects with a conflict. One live GET makes the first PATCH succeed.
type liveConditionsClient struct {
	client.Client
	live client.Reader
}

// Get reads obj from the API server.
func (c liveConditionsClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.live.Get(ctx, key, obj, opts...)
}
