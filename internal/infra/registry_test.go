package infra

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
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

// TestTheCacheKeepsWhatIsRead covers what an Infra cluster's cache keeps of each object: no
// managedFields anywhere, no image list on Nodes, no VMI spec, and no data in Secrets (the
// bootstrap data the provider writes and never reads back), while everything the controllers
// read stays.
func TestTheCacheKeepsWhatIsRead(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	for _, tc := range []struct {
		name     string
		in, want client.Object
	}{
		{
			name: "a Secret keeps its metadata and type, not its data",
			in: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "vm-1-bootstrap", Labels: map[string]string{"a": "b"}, ManagedFields: managed},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{"userdata": []byte("#cloud-config\n")},
				StringData: map[string]string{"networkdata": "{}"},
			},
			want: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vm-1-bootstrap", Labels: map[string]string{"a": "b"}}, Type: corev1.SecretTypeOpaque},
		},
		{
			name: "a Node keeps its capacity, not its images",
			in: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n1", ManagedFields: managed},
				Status: corev1.NodeStatus{
					Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("48")},
					Images:      []corev1.ContainerImage{{Names: []string{"quay.io/kubevirt/virt-launcher"}}},
				},
			},
			want: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("48")}}},
		},
		{
			name: "a VirtualMachineInstance keeps its status, not its spec (the VM's template)",
			in: &kubevirtv1.VirtualMachineInstance{
				ObjectMeta: metav1.ObjectMeta{Name: "vm-1", Labels: map[string]string{"a": "b"}, ManagedFields: managed},
				Spec:       kubevirtv1.VirtualMachineInstanceSpec{Hostname: "vm-1", Domain: kubevirtv1.DomainSpec{CPU: &kubevirtv1.CPU{Cores: 8}}},
				Status:     kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, NodeName: "n1"},
			},
			want: &kubevirtv1.VirtualMachineInstance{
				ObjectMeta: metav1.ObjectMeta{Name: "vm-1", Labels: map[string]string{"a": "b"}},
				Status:     kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, NodeName: "n1"},
			},
		},
		{
			name: "a VirtualMachine keeps all but managedFields",
			in:   &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "vm-1", ManagedFields: managed}, Spec: kubevirtv1.VirtualMachineSpec{RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways)}},
			want: &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "vm-1"}, Spec: kubevirtv1.VirtualMachineSpec{RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stripCached(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("cached %+v, want %+v", got, tc.want)
			}
		})
	}
}
