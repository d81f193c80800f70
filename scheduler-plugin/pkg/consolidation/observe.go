package consolidation

import (
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	resourcehelper "k8s.io/component-helpers/resource"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	schedulerhelper "k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// Observed is the Infra cluster as the consolidator lists it.
type Observed struct {
	Nodes []corev1.Node
	// VMIs are the VirtualMachineInstances to consider: those nest-scheduler places.
	VMIs []kubevirtv1.VirtualMachineInstance
	// Pods are the pods bound to the nodes: the VMs' virt-launcher pods and every other pod.
	Pods       []corev1.Pod
	PDBs       []policyv1.PodDisruptionBudget
	Migrations []kubevirtv1.VirtualMachineInstanceMigration
	// SchedulerName keeps to the VMs whose virt-launcher pods this scheduler places; the others'
	// launchers stay where they are and only take room. Empty considers every VM.
	SchedulerName string
	// DefaultEvictionStrategy is KubeVirt's cluster-wide evictionStrategy (the KubeVirt CR's
	// spec.configuration.evictionStrategy), for VMIs that set none; nil means None.
	DefaultEvictionStrategy *kubevirtv1.EvictionStrategy
	// Now is when the cluster was listed: the failures of consolidation migrations are dated
	// against it.
	Now time.Time
	// FailedMoveBackoff is how long after a consolidation migration failed its target stays out
	// of its VM's AllowedNodes; zero leaves failures out of account.
	FailedMoveBackoff time.Duration
}

// OptOutAnnotation, set to "false" on a VirtualMachineInstance (through its VM's
// spec.template.metadata.annotations) or on a Node, keeps it out of consolidation: the VM is
// never live-migrated by the consolidator, the node never emptied. It leaves the VM's
// evictionStrategy alone, which node drains and KubeVirt updates still use: a VM may be
// migratable for maintenance and still not worth a migration to save a node.
const OptOutAnnotation = "nest.cluster.x-k8s.io/consolidate"

// optedOut tells whether the object carries OptOutAnnotation "false".
func optedOut(annotations map[string]string) bool {
	return annotations[OptOutAnnotation] == "false"
}

// Labels are the pod labels that mark a tenant's control-plane VMs; nestpacking's defaults
// (DefaultClusterNameLabelKey, ...) are the provider's. They also spell the provider's
// control-plane anti-affinity term, the one pod anti-affinity term the planner models.
type Labels struct {
	ClusterName, Role, ControlPlaneRole string
	// Exempt, when set, is a label key whose VMs the one-per-node rule leaves out, as the
	// provider's anti-affinity does: the OpenShift installer's bootstrap VM.
	Exempt string
}

// StateOf reduces what the consolidator listed to what PlanMigrations decides on:
//   - a node is Unschedulable when cordoned or not Ready;
//   - a node's Requested sums the requests of its pods that have not finished and are not the
//     launcher of a VM below: other workloads, and a migration's target launcher;
//   - a VM is a Running VMI with its active virt-launcher pod (label kubevirt.io/created-by =
//     the VMI's UID, on the VMI's node); its requests are the pod's, as the scheduler counts them;
//   - it is Migratable when its evictionStrategy (or the cluster's) is LiveMigrate or
//     LiveMigrateIfPossible, KubeVirt reports it LiveMigratable, and no migration of it is in
//     flight;
//   - a VMI or a node annotated OptOutAnnotation "false" is kept out: the VM is not Migratable,
//     the node is Keep;
//   - its DisruptionBudgets are the PodDisruptionBudgets of its namespace that select its pod,
//     except KubeVirt's own per-VMI budget (controlled by the VMI): that one guards the VM
//     against eviction, and a live migration starts its target before the source goes;
//   - its AllowedNodes are the nodes its pod's nodeSelector and required node affinity match and
//     whose NoSchedule and NoExecute taints its tolerations tolerate, as the scheduler filters
//     them (tolerations with operator Lt or Gt, behind an alpha feature gate, tolerate nothing);
//   - a VM whose pod has required pod affinity, or required pod anti-affinity other than the
//     provider's control-plane term (which ControlPlaneOf stands for), is allowed no node: the
//     planner does not model those terms, and a move it cannot check is not planned;
//   - its AllowedNodes leave out the nodes that the required pod anti-affinity of another pod
//     keeps its pod off, as the scheduler's InterPodAffinity filter would keep the target
//     launcher off them (see antiAffinityTerms), and, for FailedMoveBackoff after a consolidation
//     migration of it failed, that migration's target (see recentlyFailedTargets);
//   - Migrating counts the migrations that have not finished; their VMIs' nodes are Draining,
//     and their targets (KubeVirt's, or the node addedNodeSelector pins) Receiving.
func StateOf(o Observed, l Labels) State {
	var s State
	// The active launcher of each running VMI: on the VMI's node. Every other pod takes room on
	// its node as it is, a migration's target launcher included.
	active := map[string]bool{}
	for _, vmi := range o.VMIs {
		if vmi.IsRunning() {
			active[string(vmi.UID)+"@"+vmi.Status.NodeName] = true
		}
	}
	launchers := map[string]*corev1.Pod{}
	requested := map[string]Resources{}
	for i := range o.Pods {
		p := &o.Pods[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if key := p.Labels[kubevirtv1.CreatedByLabel] + "@" + p.Spec.NodeName; p.Labels[kubevirtv1.AppLabel] == "virt-launcher" && active[key] && (o.SchedulerName == "" || p.Spec.SchedulerName == o.SchedulerName) {
			launchers[key] = p
			continue
		}
		add(requested, p.Spec.NodeName, podResources(p))
	}
	migrating := map[string]bool{}
	draining, receiving := map[string]bool{}, map[string]bool{}
	for _, m := range o.Migrations {
		if m.IsFinal() {
			continue
		}
		s.Migrating++
		migrating[m.Namespace+"/"+m.Spec.VMIName] = true
		for _, vmi := range o.VMIs {
			if vmi.Namespace == m.Namespace && vmi.Name == m.Spec.VMIName {
				draining[vmi.Status.NodeName] = true
				receiving[migrationTarget(&m, &vmi, o.Nodes)] = true
			}
		}
	}
	for _, n := range o.Nodes {
		s.Nodes = append(s.Nodes, Node{
			Name:          n.Name,
			Allocatable:   resourcesOf(n.Status.Allocatable),
			Requested:     requested[n.Name],
			Unschedulable: !schedulable(&n),
			Keep:          optedOut(n.Annotations),
			Receiving:     receiving[n.Name],
			Draining:      draining[n.Name],
		})
	}

	s.DisruptionsAllowed = map[string]int{}
	for _, b := range o.PDBs {
		if !controlledByVMI(b.OwnerReferences) {
			s.DisruptionsAllowed[b.Namespace+"/"+b.Name] = int(b.Status.DisruptionsAllowed)
		}
	}

	terms := antiAffinityTerms(o.Pods, o.Nodes)
	failed := recentlyFailedTargets(o)
	for i := range o.VMIs {
		vmi := &o.VMIs[i]
		pod, ok := launchers[string(vmi.UID)+"@"+vmi.Status.NodeName]
		if !ok {
			continue
		}
		name := vmi.Namespace + "/" + vmi.Name
		vm := VM{
			Name:       name,
			Node:       vmi.Status.NodeName,
			Requests:   podResources(pod),
			Migratable: liveMigrates(vmi, o.DefaultEvictionStrategy) && vmi.IsMigratable() && !migrating[name] && !migrationUnfinished(vmi) && !optedOut(vmi.Annotations),
		}
		if cluster := pod.Labels[l.ClusterName]; cluster != "" && pod.Labels[l.Role] == l.ControlPlaneRole && !hasLabel(pod, l.Exempt) {
			vm.ControlPlaneOf = pod.Namespace + "/" + cluster
		}
		vm.AllowedNodes = allowedNodes(pod, vm.ControlPlaneOf != "", o.Nodes, l)
		out := map[string]bool{}
		for _, t := range terms {
			if t.selects(pod) {
				for _, n := range t.nodes {
					out[n] = true
				}
			}
		}
		vm.RecentlyFailed = failed[name]
		for _, n := range vm.RecentlyFailed {
			out[n] = true
		}
		vm.AllowedNodes = leaveOut(vm.AllowedNodes, o.Nodes, out)
		for _, b := range o.PDBs {
			if b.Namespace == pod.Namespace && !controlledByVMI(b.OwnerReferences) && selects(b.Spec.Selector, pod.Labels) {
				vm.DisruptionBudgets = append(vm.DisruptionBudgets, b.Namespace+"/"+b.Name)
			}
		}
		s.VMs = append(s.VMs, vm)
	}
	return s
}

// migrationTarget is the node a migration in flight moves its VMI to, as far as it is known:
// KubeVirt's once it has chosen, or the node the migration's addedNodeSelector pins by hostname.
func migrationTarget(m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, nodes []corev1.Node) string {
	if st := vmi.Status.MigrationState; st != nil && st.TargetNode != "" {
		return st.TargetNode
	}
	return nodeOfHostname(m.Spec.AddedNodeSelector[corev1.LabelHostname], nodes)
}

// nodeOfHostname is the node whose kubernetes.io/hostname label is hostname; failing that,
// hostname itself, which is most nodes' name too.
func nodeOfHostname(hostname string, nodes []corev1.Node) string {
	for _, n := range nodes {
		if hostname != "" && n.Labels[corev1.LabelHostname] == hostname {
			return n.Name
		}
	}
	return hostname
}

// recentlyFailedTargets are, per VM (namespace/name of its VMI), the nodes that consolidation
// migrations of it (those carrying MigrationLabel) failed to move it to less than
// o.FailedMoveBackoff before o.Now, sorted. KubeVirt keeps finished migrations for a while; a
// move that failed — the target launcher pending until KubeVirt gave up, the target refusing the
// VM — would otherwise be planned again the very next round, and every round after. A failure is
// dated by the migration's transition to Failed, or its creation if KubeVirt recorded none.
func recentlyFailedTargets(o Observed) map[string][]string {
	if o.FailedMoveBackoff <= 0 {
		return nil
	}
	out := map[string][]string{}
	for i := range o.Migrations {
		m := &o.Migrations[i]
		hostname := m.Spec.AddedNodeSelector[corev1.LabelHostname]
		if _, ours := m.Labels[MigrationLabel]; !ours || m.Status.Phase != kubevirtv1.MigrationFailed || hostname == "" {
			continue
		}
		if !o.Now.Before(failedAt(m).Add(o.FailedMoveBackoff)) {
			continue
		}
		vm, node := m.Namespace+"/"+m.Spec.VMIName, nodeOfHostname(hostname, o.Nodes)
		if !slices.Contains(out[vm], node) {
			out[vm] = append(out[vm], node)
		}
	}
	for _, nodes := range out {
		slices.Sort(nodes)
	}
	return out
}

// failedAt is when the migration failed: its transition to Failed, or its creation.
func failedAt(m *kubevirtv1.VirtualMachineInstanceMigration) time.Time {
	for _, t := range m.Status.PhaseTransitionTimestamps {
		if t.Phase == kubevirtv1.MigrationFailed && !t.PhaseTransitionTimestamp.IsZero() {
			return t.PhaseTransitionTimestamp.Time
		}
	}
	return m.CreationTimestamp.Time
}

func schedulable(n *corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// allowedNodes are the nodes the launcher pod may be placed on by its own placement (see
// StateOf); controlPlane tells whether the VM is one of its tenant's control-plane VMs, whose
// anti-affinity term the one-per-node rule stands for. A pod allowed on every node gets the
// unrestricted set rather than a copy of the node list: most VMs restrict nothing.
func allowedNodes(pod *corev1.Pod, controlPlane bool, nodes []corev1.Node, l Labels) NodeSet {
	if unmodeledPodAffinity(pod, controlPlane, l) {
		return OnlyNodes()
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	var names []string
	for i := range nodes {
		n := &nodes[i]
		// A node affinity that does not parse matches no node, as in the scheduler's filter.
		if ok, err := affinity.Match(n); err != nil || !ok {
			continue
		}
		if _, untolerated := v1helper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, pod.Spec.Tolerations, schedulerhelper.DoNotScheduleTaintsFilterFunc(), false); untolerated {
			continue
		}
		names = append(names, n.Name)
	}
	if len(names) == len(nodes) {
		return NodeSet{}
	}
	return OnlyNodes(names...)
}

// antiAffinityTerm is a required pod anti-affinity term of a pod that runs, with the nodes it
// keeps the pods it selects off.
type antiAffinityTerm struct {
	pod *corev1.Pod
	// namespaces are those whose pods the term selects; nil selects every namespace.
	namespaces map[string]bool
	selector   labels.Selector
	nodes      []string
}

// antiAffinityTerms are the required pod anti-affinity terms of the pods bound to nodes that have
// not finished, VMs' launchers or not. The scheduler's InterPodAffinity filter keeps an incoming
// pod off the nodes of such a term's topology domain when the term selects it: the pod's own
// node for topologyKey kubernetes.io/hostname, every node carrying the same value of any other
// key as the pod's node (none when that node lacks the key). A term selects the pods of its
// namespaces, its own pod's when it names none and has no namespaceSelector; the consolidator
// does not list Namespaces, so a namespaceSelector is taken to select every namespace, and a
// label selector that does not parse, every pod: a move that cannot be checked is not planned.
// Only these pods are gone through per VM, not every pod.
func antiAffinityTerms(pods []corev1.Pod, nodes []corev1.Node) []antiAffinityTerm {
	labelsOf := map[string]map[string]string{}
	for _, n := range nodes {
		labelsOf[n.Name] = n.Labels
	}
	var out []antiAffinityTerm
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed ||
			p.Spec.Affinity == nil || p.Spec.Affinity.PodAntiAffinity == nil {
			continue
		}
		for _, term := range p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			t := antiAffinityTerm{pod: p, nodes: domain(term.TopologyKey, p.Spec.NodeName, labelsOf)}
			if len(t.nodes) == 0 {
				continue
			}
			if term.NamespaceSelector == nil {
				t.namespaces = map[string]bool{}
				for _, ns := range term.Namespaces {
					t.namespaces[ns] = true
				}
				if len(term.Namespaces) == 0 {
					t.namespaces[p.Namespace] = true
				}
			}
			selector, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
			if err != nil {
				selector = labels.Everything()
			}
			t.selector = selector
			out = append(out, t)
		}
	}
	return out
}

// domain are the nodes in the same topology domain as node for key.
func domain(key, node string, labelsOf map[string]map[string]string) []string {
	if key == corev1.LabelHostname {
		return []string{node}
	}
	value, ok := labelsOf[node][key]
	if !ok {
		return nil
	}
	var out []string
	for name, l := range labelsOf {
		if v, ok := l[key]; ok && v == value {
			out = append(out, name)
		}
	}
	return out
}

// selects tells whether the term keeps pod off its nodes. A pod's own terms are left to
// allowedNodes, which allows no node for any but the provider's control-plane term, and to
// ControlPlaneOf, which stands for that one.
func (t antiAffinityTerm) selects(pod *corev1.Pod) bool {
	return t.pod != pod && (t.namespaces == nil || t.namespaces[pod.Namespace]) && t.selector.Matches(labels.Set(pod.Labels))
}

// leaveOut is s without the nodes in out, and s itself (the unrestricted set included) when it
// holds none of them.
func leaveOut(s NodeSet, nodes []corev1.Node, out map[string]bool) NodeSet {
	if len(out) == 0 {
		return s
	}
	var keep []string
	changed := false
	for _, n := range nodes {
		switch {
		case !s.Has(n.Name):
		case out[n.Name]:
			changed = true
		default:
			keep = append(keep, n.Name)
		}
	}
	if !changed {
		return s
	}
	return OnlyNodes(keep...)
}

// unmodeledPodAffinity tells whether the pod's required pod affinity or anti-affinity has a term
// the planner does not model: any term but the provider's control-plane anti-affinity on a
// control-plane VM of the tenant it names.
func unmodeledPodAffinity(pod *corev1.Pod, controlPlane bool, l Labels) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	if a.PodAffinity != nil && len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
		return true
	}
	if a.PodAntiAffinity == nil {
		return false
	}
	for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		if !controlPlane || !equality.Semantic.DeepEqual(term, controlPlaneAntiAffinity(pod.Labels[l.ClusterName], l)) {
			return true
		}
	}
	return false
}

// controlPlaneAntiAffinity is the term the provider puts on the control-plane VMs of cluster
// (internal/kubevirt ControlPlaneAntiAffinityTerm) with l's label keys: none of the cluster's
// other control-plane VMs, the Exempt one aside, on the same node.
func controlPlaneAntiAffinity(cluster string, l Labels) corev1.PodAffinityTerm {
	term := corev1.PodAffinityTerm{
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{l.ClusterName: cluster, l.Role: l.ControlPlaneRole}},
		TopologyKey:   corev1.LabelHostname,
	}
	if l.Exempt != "" {
		term.LabelSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: l.Exempt, Operator: metav1.LabelSelectorOpDoesNotExist}}
	}
	return term
}

func liveMigrates(vmi *kubevirtv1.VirtualMachineInstance, clusterDefault *kubevirtv1.EvictionStrategy) bool {
	strategy := vmi.Spec.EvictionStrategy
	if strategy == nil {
		strategy = clusterDefault
	}
	return strategy != nil && (*strategy == kubevirtv1.EvictionStrategyLiveMigrate || *strategy == kubevirtv1.EvictionStrategyLiveMigrateIfPossible)
}

// migrationUnfinished tells whether the VMI reports a migration that has not completed, which a
// migration object already gone from the list may have left.
func migrationUnfinished(vmi *kubevirtv1.VirtualMachineInstance) bool {
	m := vmi.Status.MigrationState
	return m != nil && !m.Completed && !m.Failed
}

func controlledByVMI(refs []metav1.OwnerReference) bool {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && r.Kind == "VirtualMachineInstance" && strings.HasPrefix(r.APIVersion, kubevirtv1.SchemeGroupVersion.Group+"/") {
			return true
		}
	}
	return false
}

func selects(selector *metav1.LabelSelector, podLabels map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	// A budget whose selector does not parse selects nothing, as for the eviction API; an empty
	// selector selects every pod of the namespace.
	return err == nil && sel.Matches(labels.Set(podLabels))
}

func podResources(p *corev1.Pod) Resources {
	r := resourcesOf(resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}))
	r[corev1.ResourcePods] = 1
	return r
}

// resourcesOf reads a resource list in the units the scheduler counts: millicores of CPU, units of
// the rest.
func resourcesOf(list corev1.ResourceList) Resources {
	out := Resources{}
	for name := range list {
		if v := nestpacking.RequestValue(name, list); v != 0 {
			out[name] = v
		}
	}
	return out
}

func add(into map[string]Resources, node string, r Resources) {
	if into[node] == nil {
		into[node] = Resources{}
	}
	for name, q := range r {
		into[node][name] += q
	}
}

// MigrationLabel marks the VirtualMachineInstanceMigrations the consolidator creates, so that it
// counts its own in flight and an operator can tell them apart.
const MigrationLabel = "nest.cluster.x-k8s.io/consolidation"

// MigrationFor renders the VirtualMachineInstanceMigration that carries out m: it names the VMI
// and pins the target by its kubernetes.io/hostname label (targetHostname) with
// addedNodeSelector, which can only narrow the VM's own placement, so that the target
// virt-launcher pod — scheduled by nest-scheduler, every filter included — lands on the node the
// plan chose or stays pending (and the migration fails) if it no longer fits.
func MigrationFor(m Migration, targetHostname string) *kubevirtv1.VirtualMachineInstanceMigration {
	namespace, name, _ := strings.Cut(m.VM, "/")
	return &kubevirtv1.VirtualMachineInstanceMigration{
		TypeMeta: metav1.TypeMeta{APIVersion: kubevirtv1.SchemeGroupVersion.String(), Kind: "VirtualMachineInstanceMigration"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    namespace,
			GenerateName: name + "-consolidate-",
			Labels:       map[string]string{MigrationLabel: m.From},
		},
		Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{
			VMIName:           name,
			AddedNodeSelector: map[string]string{corev1.LabelHostname: targetHostname},
		},
	}
}

// hasLabel tells whether the pod carries the label key; an empty key is never carried.
func hasLabel(pod *corev1.Pod, key string) bool {
	_, ok := pod.Labels[key]
	return key != "" && ok
}
