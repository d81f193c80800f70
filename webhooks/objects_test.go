package webhooks_test

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func qty(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func jsonValue(s string) *apiextensionsv1.JSON {
	return &apiextensionsv1.JSON{Raw: []byte(s)}
}

func kubevirtSpec() infrav1.NestMachineSpec {
	return infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{
		CPU:       &infrav1.CPU{Cores: 2},
		Memory:    qty("4Gi"),
		BootImage: infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/centos-stream:9"}},
	}}
}

// importedSpec boots from an imported disk with the given root-disk access mode ("" = the storage
// profile's).
func importedSpec(accessMode string) infrav1.NestMachineSpec {
	spec := kubevirtSpec()
	spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://images.example.com/rhcos.qcow2"}}
	spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi"), AccessMode: corev1.PersistentVolumeAccessMode(accessMode)}
	return spec
}

func baremetalSpec() infrav1.NestMachineSpec {
	return infrav1.NestMachineSpec{BareMetal: &infrav1.BareMetalMachineSpec{
		HostSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}},
		Image: infrav1.BareMetalImage{URL: "http://images.example.com/rhcos.qcow2",
			Checksum: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", DiskFormat: "qcow2"},
	}}
}

func nestMachine(ns string, spec infrav1.NestMachineSpec) *infrav1.NestMachine {
	return &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("nm")}, Spec: spec}
}

func nestMachineTemplate(ns string, spec infrav1.NestMachineSpec) *infrav1.NestMachineTemplate {
	return &infrav1.NestMachineTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("nmt")},
		Spec:       infrav1.NestMachineTemplateSpec{Template: infrav1.NestMachineTemplateResource{Spec: spec}},
	}
}

func infraCluster(allowed *infrav1.AllowedNamespaces) *infrav1.InfraCluster {
	return &infrav1.InfraCluster{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("infra")},
		Spec:       infrav1.InfraClusterSpec{AllowedNamespaces: allowed},
	}
}

func nestClusterSpec(infraClusters ...string) infrav1.NestClusterSpec {
	spec := infrav1.NestClusterSpec{ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443}}
	for _, name := range infraClusters {
		spec.InfraClusters = append(spec.InfraClusters, infrav1.InfraClusterUse{Name: name})
	}
	return spec
}

func nestCluster(ns string, infraClusters ...string) *infrav1.NestCluster {
	return &infrav1.NestCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("nc")}, Spec: nestClusterSpec(infraClusters...)}
}

func nestClusterTemplate(ns string, infraClusters ...string) *infrav1.NestClusterTemplate {
	return &infrav1.NestClusterTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: uniqueName("nct")},
		Spec:       infrav1.NestClusterTemplateSpec{Template: infrav1.NestClusterTemplateResource{Spec: nestClusterSpec(infraClusters...)}},
	}
}
