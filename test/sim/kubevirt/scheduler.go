package kubevirt

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// scheduler is the stand-in kube-scheduler of Options.SelfSchedule: first fit over the cached nodes and
// pods, one decision at a time, with pods it bound "assumed" on their node until the cache shows them
// bound (as kube-scheduler's assume cache does), so concurrent decisions never double-book a node.
type scheduler struct {
	s *Simulator

	mu      sync.Mutex
	assumed map[types.UID]assumedPod
	pending map[types.NamespacedName]struct{} // VMIs whose launcher pod fits nowhere yet
}

// assumedPod is a pod bound by the scheduler that the cache may not show bound yet.
type assumedPod struct {
	pod *corev1.Pod
	at  time.Time
}

// assumeTimeout is how long a bound pod the cache does not know at all stays assumed: pods are bound
// right after their creation, before the cache has seen them; their deletion events unassume them.
const assumeTimeout = time.Minute

func newScheduler(s *Simulator) *scheduler {
	return &scheduler{s: s, assumed: map[types.UID]assumedPod{}, pending: map[types.NamespacedName]struct{}{}}
}

// schedule binds pod to the first node it fits on and returns the node, or returns "" and why no node
// fits. vmi is remembered as pending in that case, to be retried when nodes change or pods go away.
func (sc *scheduler) schedule(ctx context.Context, pod *corev1.Pod, vmi types.NamespacedName) (string, string, error) {
	node, msg, err := sc.decide(ctx, pod, vmi)
	if err != nil || node == "" {
		return node, msg, err
	}
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := sc.s.client.SubResource("binding").Create(ctx, pod, binding); err != nil {
		sc.mu.Lock()
		delete(sc.assumed, pod.UID)
		sc.mu.Unlock()
		return "", "", fmt.Errorf("binding pod %s/%s to node %s: %w", pod.Namespace, pod.Name, node, err)
	}
	return node, "", nil
}

func (sc *scheduler) decide(ctx context.Context, pod *corev1.Pod, vmi types.NamespacedName) (string, string, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	nodes := &corev1.NodeList{}
	if err := sc.s.client.List(ctx, nodes, client.UnsafeDisableDeepCopy); err != nil {
		return "", "", fmt.Errorf("listing nodes: %w", err)
	}
	infos := make([]NodePods, 0, len(nodes.Items))
	byNode := map[string]int{}
	for i := range nodes.Items {
		byNode[nodes.Items[i].Name] = len(infos)
		infos = append(infos, NodePods{Node: &nodes.Items[i]})
	}
	pods := &corev1.PodList{}
	if err := sc.s.client.List(ctx, pods, client.UnsafeDisableDeepCopy); err != nil {
		return "", "", fmt.Errorf("listing pods: %w", err)
	}
	counted := map[types.UID]bool{} // pods the listing holds bound
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" {
			continue
		}
		counted[p.UID] = true
		if n, ok := byNode[p.Spec.NodeName]; ok && !podTerminal(p) {
			infos[n].Pods = append(infos[n].Pods, p)
		}
	}
	for uid, a := range sc.assumed {
		if counted[uid] {
			// The cache has caught up: the listing counted it.
			delete(sc.assumed, uid)
			continue
		}
		cached := &corev1.Pod{}
		err := sc.s.client.Get(ctx, client.ObjectKeyFromObject(a.pod), cached, client.UnsafeDisableDeepCopy)
		switch {
		case err == nil && cached.UID != uid, apierrors.IsNotFound(err) && time.Since(a.at) > assumeTimeout:
			delete(sc.assumed, uid)
		case err != nil && !apierrors.IsNotFound(err):
			return "", "", fmt.Errorf("reading assumed pod %s: %w", a.pod.Name, err)
		default:
			if i, ok := byNode[a.pod.Spec.NodeName]; ok {
				infos[i].Pods = append(infos[i].Pods, a.pod)
			}
		}
	}
	node, msg := FirstFit(pod, infos)
	if node == "" {
		sc.pending[vmi] = struct{}{}
		return "", msg, nil
	}
	delete(sc.pending, vmi)
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = node
	sc.assumed[pod.UID] = assumedPod{pod: assumed, at: time.Now()}
	return node, "", nil
}

// pendingRequests are reconcile requests for every VMI waiting for room.
func (sc *scheduler) pendingRequests() []reconcile.Request {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	reqs := make([]reconcile.Request, 0, len(sc.pending))
	for k := range sc.pending {
		reqs = append(reqs, reconcile.Request{NamespacedName: k})
	}
	return reqs
}

func (sc *scheduler) forget(vmi types.NamespacedName) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	delete(sc.pending, vmi)
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (sc *scheduler) enqueuePending(q queue) {
	for _, r := range sc.pendingRequests() {
		q.Add(r)
	}
}

// nodeHandler retries pending VMIs when a node appears or changes in a way that can make room.
func (sc *scheduler) nodeHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, _ event.CreateEvent, q queue) { sc.enqueuePending(q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			o, n := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
			if nodeReady(o) != nodeReady(n) || o.Spec.Unschedulable != n.Spec.Unschedulable ||
				!equality.Semantic.DeepEqual(o.Labels, n.Labels) || !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
				!equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) {
				sc.enqueuePending(q)
			}
		},
	}
}

// podFreedHandler retries pending VMIs when a pod stops holding resources.
func (sc *scheduler) podFreedHandler() handler.EventHandler {
	return handler.Funcs{
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			o, n := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			if !podTerminal(o) && podTerminal(n) {
				sc.enqueuePending(q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			sc.mu.Lock()
			delete(sc.assumed, e.Object.GetUID())
			sc.mu.Unlock()
			sc.enqueuePending(q)
		},
	}
}

func podTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// isLauncher reports whether a pod is a virt-launcher pod.
func isLauncher(p client.Object) bool {
	return p.GetLabels()[kubevirtv1.AppLabel] == LauncherLabelValue
}
