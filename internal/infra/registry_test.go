package infra

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A change in an Infra cluster is enqueued above the default priority; the objects of a cache's first
// list below it.
func TestRemoteEventsAreEnqueuedAtRemotePriorityAndTheFirstListLow(t *testing.T) {
	obj := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vm-bootstrap"}}
	want := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "tenant", Name: "m-0"}}
	for _, tc := range []struct {
		name     string
		deliver  func(toolscache.ResourceEventHandler)
		priority int
	}{
		{"add from the first list", func(h toolscache.ResourceEventHandler) { h.OnAdd(obj, true) }, handler.LowPriority},
		{"add", func(h toolscache.ResourceEventHandler) { h.OnAdd(obj, false) }, RemotePriority},
		{"update", func(h toolscache.ResourceEventHandler) { h.OnUpdate(obj, obj) }, RemotePriority},
		{"delete", func(h toolscache.ResourceEventHandler) { h.OnDelete(obj) }, RemotePriority},
		{"delete seen late", func(h toolscache.ResourceEventHandler) {
			h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/vm-bootstrap", Obj: obj})
		}, RemotePriority},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &registeredWatch{
				Watch: Watch{Object: &corev1.Secret{}, Map: func(_ context.Context, infra string, o client.Object) []reconcile.Request {
					if infra != "infra-a" || o.GetName() != "vm-bootstrap" {
						t.Errorf("mapped %s %s/%s", infra, o.GetNamespace(), o.GetName())
					}
					return []reconcile.Request{want}
				}},
				events: make(chan event.TypedGenericEvent[remoteEvent], 1),
			}
			tc.deliver(eventForwarder(context.Background(), "infra-a", w))
			select {
			case e := <-w.events:
				if e.Object.req != want || e.Object.priority != tc.priority {
					t.Errorf("enqueued %v at priority %d, want %v at %d", e.Object.req, e.Object.priority, want, tc.priority)
				}
			default:
				t.Fatal("nothing was enqueued")
			}
		})
	}
}

// The registry's source hands the priority to a priority queue.
func TestSourceEnqueuesWithThePriorityOfTheEvent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := NewRegistry(Options{})
	src := r.Source(Watch{Object: &corev1.Secret{}, Map: func(context.Context, string, client.Object) []reconcile.Request { return nil }})
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	if err := src.Start(ctx, q); err != nil {
		t.Fatal(err)
	}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "tenant", Name: "m-0"}}
	r.watches[0].events <- event.TypedGenericEvent[remoteEvent]{Object: remoteEvent{req: req, priority: RemotePriority}}
	got, priority, shutdown := q.GetWithPriority()
	if shutdown || got != req || priority != RemotePriority {
		t.Errorf("dequeued %v at priority %d (shut down: %v), want %v at %d", got, priority, shutdown, req, RemotePriority)
	}
}
