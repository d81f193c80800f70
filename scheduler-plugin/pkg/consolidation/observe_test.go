package consolidation

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

var testLabels = Labels{ClusterName: "cluster.x-k8s.io/cluster-name", Role: "cluster.x-k8s.io/role", ControlPlaneRole: "control-plane", Exempt: "install.openshift.io/bootstrap"}

func readyNode(name string) corev1.Node {
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("48"), corev1.ResourceMemory: resource.MustParse("192Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func nodeState(name string) Node {
	return Node{Name: name, Allocatable: Resources{corev1.ResourceCPU: 48000, corev1.ResourceMemory: 192 << 30}}
}

// running is a Running, LiveMigratable VMI with evictionStrategy LiveMigrate on node.
func running(name, node string) kubevirtv1.VirtualMachineInstance {
	return kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: name, UID: types.UID("uid-" + name)},
		Spec:       kubevirtv1.VirtualMachineInstanceSpec{EvictionStrategy: ptr.To(kubevirtv1.EvictionStrategyLiveMigrate)},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase:      kubevirtv1.Running,
			NodeName:   node,
			Conditions: []kubevirtv1.VirtualMachineInstanceCondition{{Type: kubevirtv1.VirtualMachineInstanceIsMigratable, Status: corev1.ConditionTrue}},
		},
	}
}

// launcher is the virt-launcher pod of vmi on its node, requesting 8 CPUs and 32Gi.
func launcher(vmi kubevirtv1.VirtualMachineInstance, extraLabels map[string]string) corev1.Pod {
	l := map[string]string{kubevirtv1.AppLabel: "virt-launcher", kubevirtv1.CreatedByLabel: string(vmi.UID)}
	for k, v := range extraLabels {
		l[k] = v
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: vmi.Namespace, Name: "virt-launcher-" + vmi.Name, Labels: l},
		Spec: corev1.PodSpec{NodeName: vmi.Status.NodeName, Containers: []corev1.Container{{Name: "compute", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
		}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// labelled adds a label to the node.
func labelled(n corev1.Node, key, value string) corev1.Node {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	n.Labels[key] = value
	return n
}

// controlPlaneAffinity is the anti-affinity the provider renders on a control-plane VM of
// cluster (internal/kubevirt ControlPlaneAntiAffinityTerm), as testLabels spell it.
func controlPlaneAffinity(cluster string) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"cluster.x-k8s.io/cluster-name": cluster, "cluster.x-k8s.io/role": "control-plane"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "install.openshift.io/bootstrap", Operator: metav1.LabelSelectorOpDoesNotExist}},
		},
		TopologyKey: corev1.LabelHostname,
	}}}}
}

func vmState(name, node string) VM {
	return VM{Name: "vms/" + name, Node: node, Migratable: true, Requests: Resources{corev1.ResourceCPU: 8000, corev1.ResourceMemory: 32 << 30, corev1.ResourcePods: 1}}
}

func TestStateOf(t *testing.T) {
	vmi := running("a", "n1")
	tests := []struct {
		name string
		in   Observed
		want State
	}{
		{
			name: "a running, live-migratable VM with its launcher's requests",
			in:   Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{launcher(vmi, nil)}},
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{vmState("a", "n1")}},
		},
		{
			name: "control-plane VMs are known by their launcher's labels, per namespace",
			in: Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{
				launcher(vmi, map[string]string{"cluster.x-k8s.io/cluster-name": "prod", "cluster.x-k8s.io/role": "control-plane"}),
			}},
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{func() VM { v := vmState("a", "n1"); v.ControlPlaneOf = "vms/prod"; return v }()}},
		},
		{
			name: "the OpenShift installer's bootstrap VM is no control-plane VM for the spread, as for the provider's anti-affinity",
			in: Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{
				launcher(vmi, map[string]string{"cluster.x-k8s.io/cluster-name": "prod", "cluster.x-k8s.io/role": "control-plane", "install.openshift.io/bootstrap": ""}),
			}},
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{vmState("a", "n1")}},
		},
		{
			name: "a VMI or a node annotated consolidate=false is kept out; any other value is not",
			in: func() Observed {
				out, other := running("a", "n1"), running("b", "n2")
				out.Annotations = map[string]string{OptOutAnnotation: "false"}
				other.Annotations = map[string]string{OptOutAnnotation: "no"}
				kept, free := readyNode("n1"), readyNode("n2")
				kept.Annotations = map[string]string{OptOutAnnotation: "false"}
				free.Annotations = map[string]string{OptOutAnnotation: "true"}
				return Observed{Nodes: []corev1.Node{kept, free}, VMIs: []kubevirtv1.VirtualMachineInstance{out, other}, Pods: []corev1.Pod{launcher(out, nil), launcher(other, nil)}}
			}(),
			want: State{
				Nodes: []Node{func() Node { n := nodeState("n1"); n.Keep = true; return n }(), nodeState("n2")},
				VMs:   []VM{func() VM { v := vmState("a", "n1"); v.Migratable = false; return v }(), vmState("b", "n2")},
			},
		},
		{
			name: "evictionStrategy None pins the VM",
			in: func() Observed {
				v := running("a", "n1")
				v.Spec.EvictionStrategy = ptr.To(kubevirtv1.EvictionStrategyNone)
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{v}, Pods: []corev1.Pod{launcher(v, nil)}}
			}(),
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{func() VM { v := vmState("a", "n1"); v.Migratable = false; return v }()}},
		},
		{
			name: "no evictionStrategy on the VM: the cluster's applies",
			in: func() Observed {
				v := running("a", "n1")
				v.Spec.EvictionStrategy = nil
				return Observed{
					Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{v}, Pods: []corev1.Pod{launcher(v, nil)},
					DefaultEvictionStrategy: ptr.To(kubevirtv1.EvictionStrategyLiveMigrateIfPossible),
				}
			}(),
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{vmState("a", "n1")}},
		},
		{
			name: "no evictionStrategy anywhere: None",
			in: func() Observed {
				v := running("a", "n1")
				v.Spec.EvictionStrategy = nil
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{v}, Pods: []corev1.Pod{launcher(v, nil)}}
			}(),
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{func() VM { v := vmState("a", "n1"); v.Migratable = false; return v }()}},
		},
		{
			name: "a VM KubeVirt does not report LiveMigratable stays",
			in: func() Observed {
				v := running("a", "n1")
				v.Status.Conditions = nil
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{v}, Pods: []corev1.Pod{launcher(v, nil)}}
			}(),
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{func() VM { v := vmState("a", "n1"); v.Migratable = false; return v }()}},
		},
		{
			name: "a VM being migrated stays, its migration counts in flight, its source drains and its target receives; finished ones do not count",
			in: func() Observed {
				n2 := readyNode("n2")
				n2.Labels = map[string]string{corev1.LabelHostname: "host-2"}
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), n2}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{launcher(vmi, nil)},
					Migrations: []kubevirtv1.VirtualMachineInstanceMigration{
						{
							ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "m1"},
							Spec:       kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "a", AddedNodeSelector: map[string]string{corev1.LabelHostname: "host-2"}},
							Status:     kubevirtv1.VirtualMachineInstanceMigrationStatus{Phase: kubevirtv1.MigrationRunning},
						},
						{ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "m0"}, Spec: kubevirtv1.VirtualMachineInstanceMigrationSpec{VMIName: "a"}, Status: kubevirtv1.VirtualMachineInstanceMigrationStatus{Phase: kubevirtv1.MigrationSucceeded}},
					},
				}
			}(),
			want: func() State {
				n1, n2 := nodeState("n1"), nodeState("n2")
				n1.Draining, n2.Receiving = true, true
				v := vmState("a", "n1")
				v.Migratable = false
				return State{Nodes: []Node{n1, n2}, VMs: []VM{v}, Migrating: 1}
			}(),
		},
		{
			name: "VMs another scheduler places are left alone: their launchers only take room",
			in: func() Observed {
				p := launcher(vmi, nil)
				p.Spec.SchedulerName = "default-scheduler"
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{p}, SchedulerName: "nest-scheduler"}
			}(),
			want: func() State {
				n := nodeState("n1")
				n.Requested = Resources{corev1.ResourceCPU: 8000, corev1.ResourceMemory: 32 << 30, corev1.ResourcePods: 1}
				return State{Nodes: []Node{n}}
			}(),
		},
		{
			name: "a migration's target launcher takes room on its node",
			in: func() Observed {
				target := launcher(vmi, nil)
				target.Name, target.Spec.NodeName = "virt-launcher-a-target", "n2"
				return Observed{Nodes: []corev1.Node{readyNode("n1"), readyNode("n2")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{launcher(vmi, nil), target}}
			}(),
			want: func() State {
				n2 := nodeState("n2")
				n2.Requested = Resources{corev1.ResourceCPU: 8000, corev1.ResourceMemory: 32 << 30, corev1.ResourcePods: 1}
				return State{Nodes: []Node{nodeState("n1"), n2}, VMs: []VM{vmState("a", "n1")}}
			}(),
		},
		{
			name: "a VMI that reports an unfinished migration stays",
			in: func() Observed {
				v := running("a", "n1")
				v.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{TargetNode: "n2"}
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{v}, Pods: []corev1.Pod{launcher(v, nil)}}
			}(),
			want: State{Nodes: []Node{nodeState("n1")}, VMs: []VM{func() VM { v := vmState("a", "n1"); v.Migratable = false; return v }()}},
		},
		{
			name: "budgets: the tenant's selects the VM; KubeVirt's own per-VMI budget and other namespaces' do not count",
			in: Observed{
				Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi},
				Pods: []corev1.Pod{launcher(vmi, map[string]string{"app": "workers"})},
				PDBs: []policyv1.PodDisruptionBudget{
					{
						ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "workers"},
						Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "workers"}}},
						Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2},
					},
					{
						ObjectMeta: metav1.ObjectMeta{Namespace: "vms", Name: "kubevirt-disruption-budget-a", OwnerReferences: []metav1.OwnerReference{
							{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: "a", Controller: ptr.To(true)},
						}},
						Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kubevirtv1.CreatedByLabel: "uid-a"}}},
					},
					{
						ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "workers"},
						Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "workers"}}},
					},
				},
			},
			want: State{
				Nodes:              []Node{nodeState("n1")},
				VMs:                []VM{func() VM { v := vmState("a", "n1"); v.DisruptionBudgets = []string{"vms/workers"}; return v }()},
				DisruptionsAllowed: map[string]int{"vms/workers": 2, "other/workers": 0},
			},
		},
		{
			name: "cordoned and not-Ready nodes receive nothing",
			in: func() Observed {
				cordoned, notReady := readyNode("c"), readyNode("r")
				cordoned.Spec.Unschedulable = true
				notReady.Status.Conditions[0].Status = corev1.ConditionFalse
				return Observed{Nodes: []corev1.Node{cordoned, notReady}}
			}(),
			want: func() State {
				var s State
				for _, name := range []string{"c", "r"} {
					n := nodeState(name)
					n.Unschedulable = true
					s.Nodes = append(s.Nodes, n)
				}
				return s
			}(),
		},
		{
			name: "a VM is allowed the nodes its nodeSelector matches",
			in: func() Observed {
				n1, n2, n3 := labelled(readyNode("n1"), "disk", "ssd"), labelled(readyNode("n2"), "disk", "ssd"), readyNode("n3")
				p := launcher(vmi, nil)
				p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
				return Observed{Nodes: []corev1.Node{n1, n2, n3}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{p}}
			}(),
			want: State{Nodes: []Node{nodeState("n1"), nodeState("n2"), nodeState("n3")}, VMs: []VM{allowedOn(vmState("a", "n1"), "n1", "n2")}},
		},
		{
			name: "a VM is allowed the nodes its required node affinity matches",
			in: func() Observed {
				n1, n2, n3 := labelled(readyNode("n1"), corev1.LabelTopologyZone, "a"), labelled(readyNode("n2"), corev1.LabelTopologyZone, "b"), labelled(readyNode("n3"), corev1.LabelTopologyZone, "c")
				p := launcher(vmi, nil)
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelTopologyZone, Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "c"}}}}},
				}}}
				return Observed{Nodes: []corev1.Node{n1, n2, n3}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{p}}
			}(),
			want: State{Nodes: []Node{nodeState("n1"), nodeState("n2"), nodeState("n3")}, VMs: []VM{allowedOn(vmState("a", "n1"), "n1", "n3")}},
		},
		{
			name: "a node tainted NoSchedule or NoExecute receives only the VMs that tolerate the taint; PreferNoSchedule keeps none off",
			in: func() Observed {
				dedicated, evicting, soft := readyNode("dedicated"), readyNode("evicting"), readyNode("soft")
				dedicated.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
				evicting.Spec.Taints = []corev1.Taint{{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}}
				soft.Spec.Taints = []corev1.Taint{{Key: "busy", Effect: corev1.TaintEffectPreferNoSchedule}}
				plain, db, everywhere := running("plain", "n1"), running("db", "dedicated"), running("everywhere", "n1")
				dbPod, everywherePod := launcher(db, nil), launcher(everywhere, nil)
				dbPod.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}}
				everywherePod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), dedicated, evicting, soft},
					VMIs:  []kubevirtv1.VirtualMachineInstance{plain, db, everywhere},
					Pods:  []corev1.Pod{launcher(plain, nil), dbPod, everywherePod},
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), nodeState("dedicated"), nodeState("evicting"), nodeState("soft")},
				VMs: []VM{
					allowedOn(vmState("plain", "n1"), "n1", "soft"),
					allowedOn(vmState("db", "dedicated"), "n1", "dedicated", "soft"),
					vmState("everywhere", "n1"),
				},
			},
		},
		{
			name: "a VM whose launcher has required pod affinity or anti-affinity the planner does not model is allowed no node; preferred terms restrict nothing",
			in: func() Observed {
				together, apart, preferring := running("together", "n1"), running("apart", "n1"), running("preferring", "n1")
				togetherPod, apartPod, preferringPod := launcher(together, nil), launcher(apart, nil), launcher(preferring, nil)
				term := corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: corev1.LabelHostname}
				togetherPod.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term}}}
				apartPod.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term}}}
				preferringPod.Spec.Affinity = &corev1.Affinity{
					PodAffinity:     &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: term}}},
					PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: term}}},
				}
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), readyNode("n2")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{together, apart, preferring},
					Pods:  []corev1.Pod{togetherPod, apartPod, preferringPod},
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), nodeState("n2")},
				VMs:   []VM{allowedOn(vmState("together", "n1")), allowedOn(vmState("apart", "n1")), vmState("preferring", "n1")},
			},
		},
		{
			name: "the provider's control-plane anti-affinity is modelled on a control-plane VM of the tenant it names, and on no other VM (a worker, a control-plane VM whose term names another tenant)",
			in: func() Observed {
				master, devTerm, worker := running("master", "n1"), running("dev-term", "n1"), running("worker", "n1")
				cp := map[string]string{"cluster.x-k8s.io/cluster-name": "prod", "cluster.x-k8s.io/role": "control-plane"}
				masterPod, devTermPod, workerPod := launcher(master, cp), launcher(devTerm, cp), launcher(worker, map[string]string{"cluster.x-k8s.io/cluster-name": "prod", "cluster.x-k8s.io/role": "worker"})
				masterPod.Spec.Affinity = controlPlaneAffinity("prod")
				devTermPod.Spec.Affinity = controlPlaneAffinity("dev")
				workerPod.Spec.Affinity = controlPlaneAffinity("prod")
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), readyNode("n2")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{master, devTerm, worker},
					Pods:  []corev1.Pod{masterPod, devTermPod, workerPod},
				}
			}(),
			want: func() State {
				// The worker's term selects master, whatever the worker is: it keeps master off
				// the worker's node, n1.
				master, devTerm := allowedOn(vmState("master", "n1"), "n2"), vmState("dev-term", "n1")
				master.ControlPlaneOf, devTerm.ControlPlaneOf = "vms/prod", "vms/prod"
				return State{
					Nodes: []Node{nodeState("n1"), nodeState("n2")},
					VMs:   []VM{master, allowedOn(devTerm), allowedOn(vmState("worker", "n1"))},
				}
			}(),
		},
		{
			name: "a node where another pod's required anti-affinity selects the VM's launcher is left out; preferred terms, terms selecting other pods and finished pods' terms keep it off nowhere",
			in: func() Observed {
				web := launcher(vmi, map[string]string{"app": "web"})
				guard := antiAffinityPod("vms", "guard", "n2", corev1.LabelHostname, map[string]string{"app": "web"})
				other := antiAffinityPod("vms", "other", "n3", corev1.LabelHostname, map[string]string{"app": "db"})
				preferring := antiAffinityPod("vms", "preferring", "n3", corev1.LabelHostname, nil)
				preferring.Spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
					{Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, TopologyKey: corev1.LabelHostname}},
				}}
				finished := antiAffinityPod("vms", "finished", "n4", corev1.LabelHostname, map[string]string{"app": "web"})
				finished.Status.Phase = corev1.PodSucceeded
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), readyNode("n2"), readyNode("n3"), readyNode("n4")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{vmi},
					Pods:  []corev1.Pod{web, guard, other, preferring, finished},
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), withPods(nodeState("n2"), 1), withPods(nodeState("n3"), 2), nodeState("n4")},
				VMs:   []VM{allowedOn(vmState("a", "n1"), "n1", "n3", "n4")},
			},
		},
		{
			name: "a term with another topology key keeps the VM off every node with the same value as its pod's node; nodes without the key stay",
			in: func() Observed {
				zone := func(name, z string) corev1.Node { return labelled(readyNode(name), corev1.LabelTopologyZone, z) }
				guard := antiAffinityPod("vms", "guard", "b1", corev1.LabelTopologyZone, map[string]string{kubevirtv1.CreatedByLabel: "uid-a"})
				// A term whose pod's node lacks its key keeps the VM off nowhere.
				unzoned := antiAffinityPod("vms", "unzoned", "none", corev1.LabelTopologyZone, map[string]string{kubevirtv1.CreatedByLabel: "uid-a"})
				return Observed{
					Nodes: []corev1.Node{zone("n1", "a"), zone("b1", "b"), zone("b2", "b"), readyNode("none")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{vmi},
					Pods:  []corev1.Pod{launcher(vmi, nil), guard, unzoned},
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), withPods(nodeState("b1"), 1), nodeState("b2"), withPods(nodeState("none"), 1)},
				VMs:   []VM{allowedOn(vmState("a", "n1"), "n1", "none")},
			},
		},
		{
			name: "a term selects pods of its own pod's namespace, or of those it names; a namespaceSelector, whose Namespaces the consolidator does not list, selects every namespace",
			in: func() Observed {
				sel := map[string]string{"app": "web"}
				ownNamespace := antiAffinityPod("other", "own-namespace", "n2", corev1.LabelHostname, sel)
				naming := antiAffinityPod("other", "naming", "n3", corev1.LabelHostname, sel)
				naming.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].Namespaces = []string{"vms"}
				bySelector := antiAffinityPod("other", "by-selector", "n4", corev1.LabelHostname, sel)
				bySelector.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}
				namingOthers := antiAffinityPod("other", "naming-others", "n5", corev1.LabelHostname, sel)
				namingOthers.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].Namespaces = []string{"other", "db"}
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), readyNode("n2"), readyNode("n3"), readyNode("n4"), readyNode("n5")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{vmi},
					Pods:  []corev1.Pod{launcher(vmi, sel), ownNamespace, naming, bySelector, namingOthers},
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), withPods(nodeState("n2"), 1), withPods(nodeState("n3"), 1), withPods(nodeState("n4"), 1), withPods(nodeState("n5"), 1)},
				VMs:   []VM{allowedOn(vmState("a", "n1"), "n1", "n2", "n5")},
			},
		},
		{
			name: "control-plane VMs of a tenant keep each other off their nodes by their terms; a VM's own term does not keep it off its own node",
			in: func() Observed {
				m1, m2 := running("m1", "n1"), running("m2", "n2")
				cp := map[string]string{"cluster.x-k8s.io/cluster-name": "prod", "cluster.x-k8s.io/role": "control-plane"}
				p1, p2 := launcher(m1, cp), launcher(m2, cp)
				p1.Spec.Affinity, p2.Spec.Affinity = controlPlaneAffinity("prod"), controlPlaneAffinity("prod")
				return Observed{
					Nodes: []corev1.Node{readyNode("n1"), readyNode("n2"), readyNode("n3")},
					VMIs:  []kubevirtv1.VirtualMachineInstance{m1, m2},
					Pods:  []corev1.Pod{p1, p2},
				}
			}(),
			want: func() State {
				m1, m2 := allowedOn(vmState("m1", "n1"), "n1", "n3"), allowedOn(vmState("m2", "n2"), "n2", "n3")
				m1.ControlPlaneOf, m2.ControlPlaneOf = "vms/prod", "vms/prod"
				return State{Nodes: []Node{nodeState("n1"), nodeState("n2"), nodeState("n3")}, VMs: []VM{m1, m2}}
			}(),
		},
		{
			name: "the target of a consolidation migration of the VM that failed within the back-off is left out; older failures, other VMs', others' migrations and succeeded ones are not",
			in: func() Observed {
				var nodes []corev1.Node
				for _, name := range []string{"n1", "n2", "n3", "n4", "n5", "n6"} {
					nodes = append(nodes, labelled(readyNode(name), corev1.LabelHostname, "host-"+name))
				}
				return Observed{
					Nodes: nodes, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{launcher(vmi, nil)},
					Migrations: []kubevirtv1.VirtualMachineInstanceMigration{
						finishedMove("recent", "a", "host-n2", kubevirtv1.MigrationFailed, testNow.Add(-10*time.Minute)),
						finishedMove("old", "a", "host-n3", kubevirtv1.MigrationFailed, testNow.Add(-2*time.Hour)),
						finishedMove("other-vm", "b", "host-n4", kubevirtv1.MigrationFailed, testNow.Add(-10*time.Minute)),
						func() kubevirtv1.VirtualMachineInstanceMigration {
							m := finishedMove("not-ours", "a", "host-n5", kubevirtv1.MigrationFailed, testNow.Add(-10*time.Minute))
							m.Labels = nil
							return m
						}(),
						finishedMove("succeeded", "a", "host-n6", kubevirtv1.MigrationSucceeded, testNow.Add(-10*time.Minute)),
					},
					Now: testNow, FailedMoveBackoff: time.Hour,
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), nodeState("n2"), nodeState("n3"), nodeState("n4"), nodeState("n5"), nodeState("n6")},
				VMs: []VM{func() VM {
					v := allowedOn(vmState("a", "n1"), "n1", "n3", "n4", "n5", "n6")
					v.RecentlyFailed = []string{"n2"}
					return v
				}()},
			},
		},
		{
			name: "a failed migration without a transition to Failed on record is dated by its creation",
			in: func() Observed {
				recent := finishedMove("recent", "a", "host-n2", kubevirtv1.MigrationFailed, time.Time{})
				recent.CreationTimestamp = metav1.NewTime(testNow.Add(-10 * time.Minute))
				old := finishedMove("old", "a", "host-n3", kubevirtv1.MigrationFailed, time.Time{})
				old.CreationTimestamp = metav1.NewTime(testNow.Add(-2 * time.Hour))
				return Observed{
					Nodes:      []corev1.Node{labelled(readyNode("n1"), corev1.LabelHostname, "host-n1"), labelled(readyNode("n2"), corev1.LabelHostname, "host-n2"), labelled(readyNode("n3"), corev1.LabelHostname, "host-n3")},
					VMIs:       []kubevirtv1.VirtualMachineInstance{vmi},
					Pods:       []corev1.Pod{launcher(vmi, nil)},
					Migrations: []kubevirtv1.VirtualMachineInstanceMigration{recent, old},
					Now:        testNow, FailedMoveBackoff: time.Hour,
				}
			}(),
			want: State{
				Nodes: []Node{nodeState("n1"), nodeState("n2"), nodeState("n3")},
				VMs: []VM{func() VM {
					v := allowedOn(vmState("a", "n1"), "n1", "n3")
					v.RecentlyFailed = []string{"n2"}
					return v
				}()},
			},
		},
		{
			name: "no back-off: a failed move may be planned again",
			in: Observed{
				Nodes: []corev1.Node{readyNode("n1"), labelled(readyNode("n2"), corev1.LabelHostname, "host-n2")}, VMIs: []kubevirtv1.VirtualMachineInstance{vmi}, Pods: []corev1.Pod{launcher(vmi, nil)},
				Migrations: []kubevirtv1.VirtualMachineInstanceMigration{finishedMove("recent", "a", "host-n2", kubevirtv1.MigrationFailed, testNow.Add(-time.Minute))},
				Now:        testNow,
			},
			want: State{Nodes: []Node{nodeState("n1"), nodeState("n2")}, VMs: []VM{vmState("a", "n1")}},
		},
		{
			name: "other pods take room on their node, as does the launcher of a VMI not yet running; finished pods do not",
			in: func() Observed {
				daemon := corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "agent"},
					Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("500m"),
					}}}}},
				}
				done := daemon
				done.Name = "job"
				done.Status.Phase = corev1.PodSucceeded
				scheduling := running("b", "n1")
				scheduling.Status.Phase = kubevirtv1.Scheduling
				return Observed{Nodes: []corev1.Node{readyNode("n1")}, VMIs: []kubevirtv1.VirtualMachineInstance{scheduling}, Pods: []corev1.Pod{daemon, done, launcher(scheduling, nil)}}
			}(),
			want: func() State {
				n := nodeState("n1")
				n.Requested = Resources{corev1.ResourceCPU: 8500, corev1.ResourceMemory: 32 << 30, corev1.ResourcePods: 2}
				return State{Nodes: []Node{n}}
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := StateOf(tt.in, testLabels)
			if diff := cmp.Diff(tt.want, got, cmpEmptyMaps, cmp.AllowUnexported(NodeSet{})); diff != "" {
				t.Errorf("StateOf() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// antiAffinityPod is a pod on node, requesting nothing, whose required pod anti-affinity keeps
// the pods that carry selected off its topology domain for key.
func antiAffinityPod(namespace, name, node, key string, selected map[string]string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{NodeName: node, Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: selected},
			TopologyKey:   key,
		}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// withPods counts n pods that request nothing on the node.
func withPods(node Node, n int64) Node {
	node.Requested = Resources{corev1.ResourcePods: n}
	return node
}

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// finishedMove is a consolidation migration of VMI name in "vms", pinned to hostname, that ended
// in phase at the given time (none on record if zero).
func finishedMove(migration, name, hostname string, phase kubevirtv1.VirtualMachineInstanceMigrationPhase, at time.Time) kubevirtv1.VirtualMachineInstanceMigration {
	m := *MigrationFor(Migration{VM: "vms/" + name, From: "n1"}, hostname)
	m.Name = migration
	m.Status.Phase = phase
	if !at.IsZero() {
		m.Status.PhaseTransitionTimestamps = []kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
			{Phase: kubevirtv1.MigrationRunning, PhaseTransitionTimestamp: metav1.NewTime(at.Add(-90 * time.Minute))},
			{Phase: phase, PhaseTransitionTimestamp: metav1.NewTime(at)},
		}
	}
	return m
}

// cmpEmptyMaps treats a nil and an empty budget map alike.
var cmpEmptyMaps = cmp.FilterValues(func(a, b map[string]int) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestMigrationFor(t *testing.T) {
	got := MigrationFor(Migration{VM: "vms/a", From: "n1", To: "n2"}, "host-2")
	if got.Namespace != "vms" || got.Spec.VMIName != "a" {
		t.Errorf("migration of %s/%s, want vms/a", got.Namespace, got.Spec.VMIName)
	}
	if diff := cmp.Diff(map[string]string{corev1.LabelHostname: "host-2"}, got.Spec.AddedNodeSelector); diff != "" {
		t.Errorf("addedNodeSelector does not pin the target node (-want +got):\n%s", diff)
	}
	if got.Labels[MigrationLabel] != "n1" {
		t.Errorf("labels %v: want %s=n1, the node being emptied", got.Labels, MigrationLabel)
	}
}
