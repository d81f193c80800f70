package kubevirt

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, cpu, memory string, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory), corev1.ResourcePods: resource.MustParse("110"),
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func pod(name string, cpu, memory string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
		}}}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func controlPlane(tenant string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		sel := map[string]string{"cluster.x-k8s.io/cluster-name": tenant, "cluster.x-k8s.io/role": "control-plane"}
		for k, v := range sel {
			p.Labels[k] = v
		}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: sel}, TopologyKey: corev1.LabelHostname,
			}},
		}}
	}
}

func TestFirstFit(t *testing.T) {
	cases := []struct {
		name    string
		pod     *corev1.Pod
		nodes   []NodePods
		want    string
		wantWhy string
	}{
		{
			name:  "first node by name that fits",
			pod:   pod("p", "1", "1Gi"),
			nodes: []NodePods{{Node: node("b", "4", "8Gi")}, {Node: node("a", "4", "8Gi")}},
			want:  "a",
		},
		{
			name: "requests of pods already there count",
			pod:  pod("p", "1", "4Gi"),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi"), Pods: []*corev1.Pod{pod("q", "1", "5Gi")}},
				{Node: node("b", "4", "8Gi")},
			},
			want: "b",
		},
		{
			name: "nothing fits: kube-scheduler's message",
			pod:  pod("p", "3", "1Gi", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"zone": "a"} }),
			nodes: []NodePods{
				{Node: node("a", "2", "8Gi", func(n *corev1.Node) { n.Labels["zone"] = "a" })},
				{Node: node("b", "8", "8Gi", func(n *corev1.Node) { n.Labels["zone"] = "b" })},
			},
			wantWhy: "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector.",
		},
		{
			name: "pod count is a resource",
			pod:  pod("p", "1", "1Gi"),
			nodes: []NodePods{{Node: node("a", "4", "8Gi", func(n *corev1.Node) {
				n.Status.Allocatable[corev1.ResourcePods] = resource.MustParse("1")
			}), Pods: []*corev1.Pod{pod("q", "0", "0")}}},
			wantWhy: "0/1 nodes are available: 1 Too many pods.",
		},
		{
			name: "extended resources are checked",
			pod: pod("p", "1", "1Gi", func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests[KVMDevice] = resource.MustParse("1")
			}),
			nodes:   []NodePods{{Node: node("a", "4", "8Gi")}},
			wantWhy: "0/1 nodes are available: 1 Insufficient devices.kubevirt.io/kvm.",
		},
		{
			name: "not ready, unschedulable and tainted nodes are skipped",
			pod:  pod("p", "1", "1Gi"),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi", func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse })},
				{Node: node("b", "4", "8Gi", func(n *corev1.Node) { n.Spec.Unschedulable = true })},
				{Node: node("c", "4", "8Gi", func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
				})},
				{Node: node("d", "4", "8Gi", func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}}
				})},
			},
			want: "d",
		},
		{
			name: "a toleration lets a pod onto a tainted node",
			pod: pod("p", "1", "1Gi", func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}}
			}),
			nodes: []NodePods{{Node: node("c", "4", "8Gi", func(n *corev1.Node) {
				n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
			})}},
			want: "c",
		},
		{
			name: "required node affinity",
			pod: pod("p", "1", "1Gi", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}}},
				}}}
			}),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi", func(n *corev1.Node) { n.Labels["zone"] = "a" })},
				{Node: node("b", "4", "8Gi", func(n *corev1.Node) { n.Labels["zone"] = "b" })},
			},
			want: "b",
		},
		{
			name: "control-plane anti-affinity spreads one tenant",
			pod:  pod("cp-1", "1", "1Gi", controlPlane("acme")),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi"), Pods: []*corev1.Pod{pod("cp-0", "1", "1Gi", controlPlane("acme"))}},
				{Node: node("b", "4", "8Gi")},
			},
			want: "b",
		},
		{
			name: "other tenants' control planes do not repel",
			pod:  pod("cp-1", "1", "1Gi", controlPlane("acme")),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi"), Pods: []*corev1.Pod{pod("other", "1", "1Gi", controlPlane("globex"))}},
			},
			want: "a",
		},
		{
			name: "existing pods' anti-affinity is honoured too",
			pod: pod("plain", "1", "1Gi", func(p *corev1.Pod) {
				p.Labels["cluster.x-k8s.io/cluster-name"] = "acme"
				p.Labels["cluster.x-k8s.io/role"] = "control-plane"
			}),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi"), Pods: []*corev1.Pod{pod("cp-0", "1", "1Gi", controlPlane("acme"))}},
			},
			wantWhy: "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.",
		},
		{
			name: "three nodes hold three control-plane VMs, not four",
			pod:  pod("cp-3", "1", "1Gi", controlPlane("acme")),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi"), Pods: []*corev1.Pod{pod("cp-0", "1", "1Gi", controlPlane("acme"))}},
				{Node: node("b", "4", "8Gi"), Pods: []*corev1.Pod{pod("cp-1", "1", "1Gi", controlPlane("acme"))}},
				{Node: node("c", "4", "8Gi"), Pods: []*corev1.Pod{pod("cp-2", "1", "1Gi", controlPlane("acme"))}},
			},
			wantWhy: "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.",
		},
		{
			name: "required pod affinity follows its peer",
			pod: pod("p", "1", "1Gi", func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: corev1.LabelHostname,
				}}}}
			}),
			nodes: []NodePods{
				{Node: node("a", "4", "8Gi")},
				{Node: node("b", "4", "8Gi"), Pods: []*corev1.Pod{pod("db", "1", "1Gi", func(p *corev1.Pod) { p.Labels["app"] = "db" })}},
			},
			want: "b",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, why := FirstFit(tc.pod, tc.nodes)
			g.Expect(got).To(Equal(tc.want), "why: %s", why)
			if tc.want == "" {
				g.Expect(why).To(Equal(tc.wantWhy))
			}
		})
	}
}

func TestPodRequestsSumContainersAndTakeTheLargestInitContainer(t *testing.T) {
	p := pod("p", "500m", "1Gi")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("250m"),
	}}})
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"),
	}}}}
	p.Spec.Overhead = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Mi")}
	got := PodRequests(p)
	g := NewWithT(t)
	g.Expect(got.Cpu().MilliValue()).To(Equal(int64(2000)))
	g.Expect(got.Memory().Value()).To(Equal(int64(1024+100) * mi))
}
