package consolidation

import (
	"testing"

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
			name: "cordoned, tainted and not-Ready nodes receive nothing",
			in: func() Observed {
				cordoned, tainted, notReady := readyNode("c"), readyNode("t"), readyNode("r")
				cordoned.Spec.Unschedulable = true
				tainted.Spec.Taints = []corev1.Taint{{Key: "maintenance", Effect: corev1.TaintEffectNoSchedule}}
				notReady.Status.Conditions[0].Status = corev1.ConditionFalse
				return Observed{Nodes: []corev1.Node{cordoned, tainted, notReady}}
			}(),
			want: func() State {
				var s State
				for _, name := range []string{"c", "t", "r"} {
					n := nodeState(name)
					n.Unschedulable = true
					s.Nodes = append(s.Nodes, n)
				}
				return s
			}(),
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
			if diff := cmp.Diff(tt.want, got, cmpEmptyMaps); diff != "" {
				t.Errorf("StateOf() mismatch (-want +got):\n%s", diff)
			}
		})
	}
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
