package kubevirt

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func qty(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// workerInput is a worker VM with a container disk, the smallest valid input.
func workerInput() Input {
	return Input{
		NestMachine: &infrav1.NestMachine{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tenant1-md-0-abcde", UID: "9b2d1c3e-0000-4000-8000-000000000001"},
			Spec: infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{
				CPU:       &infrav1.CPU{Cores: 2},
				Memory:    qty("4Gi"),
				BootImage: infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/centos-stream:9"}},
			}},
		},
		Machine:             &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tenant1-md-0-abcde"}},
		ClusterName:         "tenant1",
		Namespace:           "nest-team-a-tenant1",
		SchedulerName:       "nest-scheduler",
		BootstrapSecretName: "tenant1-md-0-abcde-bootstrap",
		BootstrapFormat:     FormatCloudConfig,
	}
}

// controlPlaneInput is workerInput for a control-plane Machine.
func controlPlaneInput() Input {
	in := workerInput()
	in.NestMachine.Name = "tenant1-control-plane-x7k2p"
	in.Machine.Name = in.NestMachine.Name
	in.Machine.Labels = map[string]string{clusterv1.MachineControlPlaneLabel: ""}
	return in
}

func mustRender(t *testing.T, in Input) *kubevirtv1.VirtualMachine {
	t.Helper()
	vm, err := RenderVM(in)
	if err != nil {
		t.Fatalf("RenderVM: %v", err)
	}
	return vm
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func jsonValue(s string) *apiextensionsv1.JSON {
	return &apiextensionsv1.JSON{Raw: []byte(s)}
}

func userNodeAffinity() *corev1.Affinity {
	return &corev1.Affinity{
		NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "node-role.kubernetes.io/virt", Operator: corev1.NodeSelectorOpExists},
			}}},
		}},
		PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight:          10,
			PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "topology.kubernetes.io/zone", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
		}}},
	}
}
