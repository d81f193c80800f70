package kubevirt

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// scheduler is the stand-in kube-scheduler of Options.SelfSchedule: first fit over the cached nodes and
// a table of bound pods that the pod informer keeps up to date, one decision at a time. A pod it binds is
// "assumed" on its node until the informer shows it bound (as kube-scheduler's assume cache does), so
// concurrent decisions never double-book a node.
type scheduler struct {
	s *Simulator

	mu   sync.Mutex
	pods map[types.UID]*boundPod
	// pending are the objects whose pod fits nowhere yet, by the controller that retries them: VMIs
	// waiting with their launcher pod, migrations with their target pod.
	pending map[waiter]map[types.NamespacedName]struct{}
}

// waiter names a controller whose objects wait for room: each has its own queue to retry them in.
type waiter string

const (
	waiterVMI       waiter = "vmi"
	waiterMigration waiter = "migration"
)

// boundPod is a pod that holds resources on a node.
type boundPod struct {
	pod *corev1.Pod // the informer's object (read only), or the scheduler's copy while assumed
	req milli
	// assumed is set while the informer has not shown the binding yet; at is when it was bound.
	assumed bool
	at      time.Time
}

// assumeTimeout is how long a pod stays assumed without the informer ever showing it bound; after
// that it is taken to have been deleted before the informer saw it.
const assumeTimeout = time.Minute

func newScheduler(s *Simulator) *scheduler {
	return &scheduler{s: s, pods: map[types.UID]*boundPod{}, pending: map[waiter]map[types.NamespacedName]struct{}{
		waiterVMI: {}, waiterMigration: {},
	}}
}

// watchPods feeds the pod table from the manager's pod informer.
func (sc *scheduler) watchPods(ctx context.Context, c cache.Cache) error {
	inf, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("getting the pod informer: %w", err)
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    sc.observe,
		UpdateFunc: func(_, obj any) { sc.observe(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				sc.mu.Lock()
				delete(sc.pods, pod.UID)
				sc.mu.Unlock()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods for the scheduler: %w", err)
	}
	return nil
}

func (sc *scheduler) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if pod.Spec.NodeName == "" {
		// An event from before the binding must not undo an assumption.
		if e, ok := sc.pods[pod.UID]; !ok || !e.assumed {
			delete(sc.pods, pod.UID)
		}
		return
	}
	sc.pods[pod.UID] = &boundPod{pod: pod, req: podMilli(pod)}
}

// schedule binds pod to the first node it fits on and returns the node, or returns "" and why no node
// fits. obj (of controller w) is remembered as pending in that case, to be retried when nodes change or
// pods go away.
func (sc *scheduler) schedule(ctx context.Context, pod *corev1.Pod, w waiter, obj types.NamespacedName) (string, string, error) {
	node, msg, err := sc.decide(ctx, pod, w, obj)
	if err != nil || node == "" {
		return node, msg, err
	}
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := sc.s.client.SubResource("binding").Create(ctx, pod, binding); err != nil {
		sc.mu.Lock()
		if e, ok := sc.pods[pod.UID]; ok && e.assumed {
			delete(sc.pods, pod.UID)
		}
		sc.mu.Unlock()
		return "", "", fmt.Errorf("binding pod %s/%s to node %s: %w", pod.Namespace, pod.Name, node, err)
	}
	return node, "", nil
}

func (sc *scheduler) decide(ctx context.Context, pod *corev1.Pod, w waiter, obj types.NamespacedName) (string, string, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	nodes := &corev1.NodeList{}
	if err := sc.s.client.List(ctx, nodes, client.UnsafeDisableDeepCopy); err != nil {
		return "", "", fmt.Errorf("listing nodes: %w", err)
	}
	infos := make([]NodePods, len(nodes.Items))
	byNode := make(map[string]int, len(nodes.Items))
	for i := range nodes.Items {
		byNode[nodes.Items[i].Name] = i
		infos[i] = NodePods{Node: &nodes.Items[i], used: milli{}}
	}
	for uid, e := range sc.pods {
		if e.assumed && time.Since(e.at) > assumeTimeout {
			delete(sc.pods, uid)
			continue
		}
		i, ok := byNode[e.pod.Spec.NodeName]
		if !ok || podTerminal(e.pod) {
			continue
		}
		infos[i].Pods = append(infos[i].Pods, e.pod)
		for k, v := range e.req {
			infos[i].used[k] += v
		}
	}
	node, msg := FirstFit(pod, infos)
	if node == "" {
		sc.pending[w][obj] = struct{}{}
		return "", msg, nil
	}
	delete(sc.pending[w], obj)
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = node
	sc.pods[pod.UID] = &boundPod{pod: assumed, req: podMilli(assumed), assumed: true, at: time.Now()}
	return node, "", nil
}

// pendingRequests are reconcile requests for every object of w waiting for room.
func (sc *scheduler) pendingRequests(w waiter) []reconcile.Request {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	reqs := make([]reconcile.Request, 0, len(sc.pending[w]))
	for k := range sc.pending[w] {
		reqs = append(reqs, reconcile.Request{NamespacedName: k})
	}
	return reqs
}

func (sc *scheduler) forget(w waiter, obj types.NamespacedName) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	delete(sc.pending[w], obj)
}

func (sc *scheduler) enqueuePending(w waiter, q simkit.Queue) {
	for _, r := range sc.pendingRequests(w) {
		q.Add(r)
	}
}

// nodeHandler retries the pending objects of w when a node appears or changes in a way that can make
// room.
func (sc *scheduler) nodeHandler(w waiter) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q simkit.Queue) { sc.enqueuePending(w, q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q simkit.Queue) {
			o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
			if nodeReady(o) != nodeReady(n) || o.Spec.Unschedulable != n.Spec.Unschedulable ||
				!equality.Semantic.DeepEqual(o.Labels, n.Labels) || !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
				!equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) {
				sc.enqueuePending(w, q)
			}
		},
	}
}

// podFreedHandler retries the pending objects of w when a pod stops holding resources.
func (sc *scheduler) podFreedHandler(w waiter) handler.EventHandler {
	return handler.Funcs{
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q simkit.Queue) {
			o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			if !podTerminal(o) && podTerminal(n) {
				sc.enqueuePending(w, q)
			}
		},
		DeleteFunc: func(_ context.Context, _ event.DeleteEvent, q simkit.Queue) { sc.enqueuePending(w, q) },
	}
}

func podTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
