package kubevirt

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
)

// NodePods is a node and the pods that hold resources on it (bound or assumed, not terminated).
type NodePods struct {
	Node *corev1.Node
	Pods []*corev1.Pod
	// used is the sum of the pods' requests when the caller has it at hand.
	used milli
}

// Scheduling failure reasons, worded like kube-scheduler's.
const (
	reasonNotReady          = "node(s) were not ready"
	reasonUnschedulable     = "node(s) were unschedulable"
	reasonSelector          = "node(s) didn't match Pod's node affinity/selector"
	reasonTaint             = "node(s) had untolerated taint(s)"
	reasonTooManyPods       = "Too many pods"
	reasonAntiAffinity      = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAff   = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonAffinity          = "node(s) didn't match pod affinity rules"
	reasonInsufficientTempl = "Insufficient %s"
)

// FirstFit picks the first node, by name, that pod fits on, the way the simulator's stand-in scheduler
// does: the node is Ready and schedulable, its labels match the node selector and required node
// affinity, its NoSchedule/NoExecute taints are tolerated, allocatable minus the requests of its pods
// covers the pod's requests (every resource, and the pod count), and required pod affinity and
// anti-affinity (the pod's and the existing pods') hold. It returns "" and kube-scheduler-style message
// ("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.") when no node fits.
//
// Not modelled: preferred terms and scoring, topology spread constraints, namespace selectors of
// affinity terms other than the empty one (all namespaces), volume and port constraints, preemption.
func FirstFit(pod *corev1.Pod, nodes []NodePods) (string, string) {
	sorted := make([]NodePods, len(nodes))
	copy(sorted, nodes)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Node.Name < sorted[j].Node.Name })
	reasons := map[string]int{}
	for _, n := range sorted {
		why := fitFailure(pod, n, sorted)
		if why == "" {
			return n.Node.Name, ""
		}
		reasons[why]++
	}
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", len(nodes))
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return "", msg + "."
}

func fitFailure(pod *corev1.Pod, n NodePods, all []NodePods) string {
	node := n.Node
	if !nodeReady(node) {
		return reasonNotReady
	}
	if node.Spec.Unschedulable {
		return reasonUnschedulable
	}
	if !matchesNodeSelector(pod, node) {
		return reasonSelector
	}
	if !toleratesTaints(pod.Spec.Tolerations, node.Spec.Taints) {
		return reasonTaint
	}
	if why := insufficient(pod, n); why != "" {
		return why
	}
	return interPodAffinityFailure(pod, node, all)
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func matchesNodeSelector(pod *corev1.Pod, node *corev1.Node) bool {
	if !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	aff := pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if matchesNodeSelectorTerm(term, node) {
			return true
		}
	}
	return false
}

func matchesNodeSelectorTerm(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, req := range term.MatchExpressions {
		if !matchesRequirement(req, labels.Set(node.Labels)) {
			return false
		}
	}
	for _, req := range term.MatchFields {
		if req.Key != metav1.ObjectNameField || !matchesRequirement(req, labels.Set{metav1.ObjectNameField: node.Name}) {
			return false
		}
	}
	return true
}

var nodeSelectorOperators = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

func matchesRequirement(req corev1.NodeSelectorRequirement, set labels.Set) bool {
	op, ok := nodeSelectorOperators[req.Operator]
	if !ok {
		return false
	}
	r, err := labels.NewRequirement(req.Key, op, req.Values)
	if err != nil {
		return false
	}
	return r.Matches(set)
}

func toleratesTaints(tolerations []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		taint := &taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), taint, true) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// PodRequests is what a pod asks a node for: the sum of its containers' requests, at least each init
// container's, plus its overhead.
func PodRequests(pod *corev1.Pod) corev1.ResourceList {
	total := corev1.ResourceList{}
	for name, v := range podMilli(pod) {
		total[name] = *resource.NewMilliQuantity(v, resource.DecimalSI)
	}
	return total
}

// milli is an amount of each resource in thousandths of its unit: integer sums, no Quantity arithmetic
// in the scheduler's inner loop.
type milli map[corev1.ResourceName]int64

func podMilli(pod *corev1.Pod) milli {
	total := milli{}
	for _, c := range pod.Spec.Containers {
		for k, v := range c.Resources.Requests {
			total[k] += v.MilliValue()
		}
	}
	for _, c := range pod.Spec.InitContainers {
		for k, v := range c.Resources.Requests {
			total[k] = max(total[k], v.MilliValue())
		}
	}
	for k, v := range pod.Spec.Overhead {
		total[k] += v.MilliValue()
	}
	return total
}

func insufficient(pod *corev1.Pod, n NodePods) string {
	allocatable := n.Node.Status.Allocatable
	if len(allocatable) == 0 {
		allocatable = n.Node.Status.Capacity
	}
	if maxPods, ok := allocatable[corev1.ResourcePods]; ok && int64(len(n.Pods)+1) > maxPods.Value() {
		return reasonTooManyPods
	}
	used := n.used
	if used == nil {
		used = milli{}
		for _, p := range n.Pods {
			for k, v := range podMilli(p) {
				used[k] += v
			}
		}
	}
	want := podMilli(pod)
	names := make([]string, 0, len(want))
	for name, v := range want {
		if v > 0 {
			names = append(names, string(name))
		}
	}
	sort.Strings(names)
	for _, name := range names {
		free := allocatable[corev1.ResourceName(name)]
		if want[corev1.ResourceName(name)] > free.MilliValue()-used[corev1.ResourceName(name)] {
			return fmt.Sprintf(reasonInsufficientTempl, name)
		}
	}
	return ""
}

// interPodAffinityFailure checks required pod affinity and anti-affinity, both the incoming pod's terms
// and the anti-affinity terms of pods already placed, over topology domains (nodes sharing the term's
// topologyKey label value).
func interPodAffinityFailure(pod *corev1.Pod, node *corev1.Node, all []NodePods) string {
	for _, term := range requiredAntiAffinity(pod) {
		value, ok := node.Labels[term.TopologyKey]
		if !ok {
			continue
		}
		for _, other := range podsInDomain(all, term.TopologyKey, value) {
			if termMatches(term, pod.Namespace, other) {
				return reasonAntiAffinity
			}
		}
	}
	for _, n := range all {
		for _, other := range n.Pods {
			for _, term := range requiredAntiAffinity(other) {
				value, ok := node.Labels[term.TopologyKey]
				if !ok || n.Node.Labels[term.TopologyKey] != value {
					continue
				}
				if termMatches(term, other.Namespace, pod) {
					return reasonExistingAntiAff
				}
			}
		}
	}
	if pod.Spec.Affinity == nil || pod.Spec.Affinity.PodAffinity == nil {
		return ""
	}
	for _, term := range pod.Spec.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		value, ok := node.Labels[term.TopologyKey]
		if !ok {
			return reasonAffinity
		}
		found := false
		for _, other := range podsInDomain(all, term.TopologyKey, value) {
			if termMatches(term, pod.Namespace, other) {
				found = true
				break
			}
		}
		// kube-scheduler lets the first pod of a group that matches its own affinity term anywhere go.
		if !found && !(termMatches(term, pod.Namespace, pod) && !anyPodMatches(all, term, pod.Namespace)) {
			return reasonAffinity
		}
	}
	return ""
}

func requiredAntiAffinity(pod *corev1.Pod) []corev1.PodAffinityTerm {
	if pod.Spec.Affinity == nil || pod.Spec.Affinity.PodAntiAffinity == nil {
		return nil
	}
	return pod.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

func podsInDomain(all []NodePods, key, value string) []*corev1.Pod {
	var pods []*corev1.Pod
	for _, n := range all {
		if v, ok := n.Node.Labels[key]; ok && v == value {
			pods = append(pods, n.Pods...)
		}
	}
	return pods
}

func anyPodMatches(all []NodePods, term corev1.PodAffinityTerm, namespace string) bool {
	for _, n := range all {
		for _, p := range n.Pods {
			if termMatches(term, namespace, p) {
				return true
			}
		}
	}
	return false
}

// termMatches reports whether other is selected by term, a term of a pod in namespace.
func termMatches(term corev1.PodAffinityTerm, namespace string, other *corev1.Pod) bool {
	if !termNamespaceMatches(term, namespace, other.Namespace) {
		return false
	}
	if term.LabelSelector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(other.Labels))
}

func termNamespaceMatches(term corev1.PodAffinityTerm, own, other string) bool {
	if term.NamespaceSelector != nil && len(term.NamespaceSelector.MatchLabels) == 0 && len(term.NamespaceSelector.MatchExpressions) == 0 {
		return true
	}
	if len(term.Namespaces) == 0 {
		return own == other
	}
	for _, ns := range term.Namespaces {
		if ns == other {
			return true
		}
	}
	return false
}
