package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

var nameSeq atomic.Int64

// uniqueName keeps cases independent on the shared API server.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nameSeq.Add(1))
}

func qty(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func kubevirtMachine() *infrav1.NestMachine {
	return &infrav1.NestMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("vm")},
		Spec: infrav1.NestMachineSpec{
			KubeVirt: &infrav1.KubeVirtMachineSpec{
				CPU:       &infrav1.CPU{Cores: 2},
				Memory:    qty("4Gi"),
				BootImage: infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/centos-stream:9"}},
			},
		},
	}
}

func baremetalMachine() *infrav1.NestMachine {
	return &infrav1.NestMachine{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("bm")},
		Spec: infrav1.NestMachineSpec{
			BareMetal: &infrav1.BareMetalMachineSpec{
				HostSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}},
				Image:        infrav1.BareMetalImage{URL: "http://images.example.com/rhcos.qcow2", Checksum: "abc123", DiskFormat: "qcow2"},
			},
		},
	}
}

func nestCluster() *infrav1.NestCluster {
	return &infrav1.NestCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("tenant")},
		Spec: infrav1.NestClusterSpec{
			InfraClusters:        []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-b"}, {Name: "infra-c", ControlPlane: ptr.To(false)}},
			ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443},
		},
	}
}

func infraCluster() *infrav1.InfraCluster {
	return &infrav1.InfraCluster{
		ObjectMeta: metav1.ObjectMeta{Name: uniqueName("infra")},
		Spec: infrav1.InfraClusterSpec{
			KubeconfigSecretRef: &infrav1.SecretKeyReference{Name: "infra-a-kubeconfig"},
			AllowedNamespaces:   &infrav1.AllowedNamespaces{List: []string{"default"}},
			SchedulerName:       "nest-scheduler",
		},
	}
}

func TestValidObjectsAreAcceptedAndDefaulted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()

	ic := infraCluster()
	g.Expect(k8sClient.Create(ctx, ic)).To(Succeed())
	g.Expect(ic.Spec.KubeconfigSecretRef.Key).To(Equal("value"), "the kubeconfig key defaults to CAPI's")
	g.Expect(ic.Spec.TenantNamespacePrefix).To(Equal("nest-"))
	g.Expect(ic.Spec.OrphanGracePeriodSeconds).To(Equal(ptr.To[int32](300)))

	g.Expect(k8sClient.Create(ctx, nestCluster())).To(Succeed())

	single := nestCluster()
	single.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
	single.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
	single.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-a"}
	g.Expect(k8sClient.Create(ctx, single)).To(Succeed())
	g.Expect(single.Spec.ControlPlaneService.Type).To(Equal(infrav1.ControlPlaneServiceType("ClusterIP")))
	g.Expect(single.Spec.ControlPlaneService.Port).To(Equal(int32(6443)))

	g.Expect(k8sClient.Create(ctx, &infrav1.NestClusterTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("nct")},
		Spec:       infrav1.NestClusterTemplateSpec{Template: infrav1.NestClusterTemplateResource{Spec: nestCluster().Spec}},
	})).To(Succeed())

	g.Expect(k8sClient.Create(ctx, kubevirtMachine())).To(Succeed())
	g.Expect(k8sClient.Create(ctx, baremetalMachine())).To(Succeed())

	full := kubevirtMachine()
	full.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://images.example.com/rhcos.qcow2"}}
	full.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("40Gi"), StorageClassName: "ceph-rbd", AccessMode: "ReadWriteMany", VolumeMode: "Block"}
	full.Spec.KubeVirt.Networks = []infrav1.Network{
		{Name: "default", Pod: &infrav1.PodNetwork{Binding: "masquerade"}},
		{Name: "storage", Multus: &infrav1.MultusNetwork{NetworkName: "infra/storage-net"}, MACAddress: "02:00:00:00:00:01"},
	}
	full.Spec.KubeVirt.RunStrategy = "Always"
	full.Spec.KubeVirt.EvictionStrategy = "LiveMigrate"
	full.Spec.KubeVirt.Placement = &infrav1.Placement{NodeSelector: map[string]string{"node-role.kubernetes.io/worker": ""}}
	full.Spec.KubeVirt.VMPatches = []infrav1.JSONPatch{
		{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: &apiextensionsv1.JSON{Raw: []byte(`{"bootloader":{"efi":{}}}`)}},
		{Op: "remove", Path: "/spec/template/spec/domain/devices/autoattachSerialConsole"},
	}
	g.Expect(k8sClient.Create(ctx, full)).To(Succeed())

	it := kubevirtMachine()
	it.Spec.KubeVirt.CPU, it.Spec.KubeVirt.Memory = nil, nil
	it.Spec.KubeVirt.Instancetype = &infrav1.InstancetypeReference{Name: "u1.large"}
	it.Spec.KubeVirt.Preference = &infrav1.PreferenceReference{Name: "rhel.9"}
	g.Expect(k8sClient.Create(ctx, it)).To(Succeed())

	g.Expect(k8sClient.Create(ctx, &infrav1.NestMachineTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("nmt")},
		Spec:       infrav1.NestMachineTemplateSpec{Template: infrav1.NestMachineTemplateResource{Spec: kubevirtMachine().Spec}},
	})).To(Succeed())
}

// TestInvalidObjectsAreRejectedNamingTheField creates each invalid object through the API server and
// checks the rejection names the field and what is allowed.
func TestInvalidObjectsAreRejectedNamingTheField(t *testing.T) {
	cases := []struct {
		name string
		obj  func() client.Object
		want []string
	}{
		{"machine with both kubevirt and baremetal", func() client.Object {
			m := kubevirtMachine()
			m.Spec.BareMetal = baremetalMachine().Spec.BareMetal
			return m
		}, []string{"spec", "exactly one of spec.kubevirt or spec.baremetal"}},
		{"machine with neither kubevirt nor baremetal", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt = nil
			return m
		}, []string{"spec", "exactly one of spec.kubevirt or spec.baremetal"}},
		{"zero cores", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.CPU.Cores = 0
			return m
		}, []string{"spec.kubevirt.cpu.cores", "should be greater than or equal to 1"}},
		{"too many cores", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.CPU.Cores = 4096
			return m
		}, []string{"spec.kubevirt.cpu.cores", "should be less than or equal to 512"}},
		{"memory too small", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Memory = qty("64Mi")
			return m
		}, []string{"spec.kubevirt.memory", "memory must be between 128Mi and 8Ti"}},
		{"memory too large", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Memory = qty("100Ti")
			return m
		}, []string{"spec.kubevirt.memory", "memory must be between 128Mi and 8Ti"}},
		{"negative memory", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Memory = qty("-4Gi")
			return m
		}, []string{"spec.kubevirt.memory", "memory must be between 128Mi and 8Ti"}},
		{"cpu without memory", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Memory = nil
			return m
		}, []string{"spec.kubevirt", "set spec.kubevirt.instancetype, or both spec.kubevirt.cpu and spec.kubevirt.memory"}},
		{"instancetype with cpu", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Instancetype = &infrav1.InstancetypeReference{Name: "u1.large"}
			return m
		}, []string{"spec.kubevirt", "cannot be set with spec.kubevirt.instancetype"}},
		{"instancetype name not a DNS subdomain", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.CPU, m.Spec.KubeVirt.Memory = nil, nil
			m.Spec.KubeVirt.Instancetype = &infrav1.InstancetypeReference{Name: "U1_Large"}
			return m
		}, []string{"spec.kubevirt.instancetype.name", "should match"}},
		{"two boot image sources", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage.HTTP = &infrav1.HTTPSource{URL: "https://example.com/disk.img"}
			return m
		}, []string{"spec.kubevirt.bootImage", "exactly one of containerDisk, http, registry, pvc or dataSource"}},
		{"no boot image source", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{}
			return m
		}, []string{"spec.kubevirt.bootImage", "exactly one of containerDisk, http, registry, pvc or dataSource"}},
		{"imported image without root disk size", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{DataSource: &infrav1.NamespacedName{Namespace: "openshift-virtualization-os-images", Name: "rhel9"}}
			return m
		}, []string{"spec.kubevirt", "spec.kubevirt.rootDisk.size is required"}},
		{"root disk too small", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://example.com/disk.img"}}
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("512Mi")}
			return m
		}, []string{"spec.kubevirt.rootDisk.size", "rootDisk.size must be between 1Gi and 64Ti"}},
		{"http source that is not http", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "ftp://example.com/disk.img"}}
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("10Gi")}
			return m
		}, []string{"spec.kubevirt.bootImage.http.url", "must be an http:// or https:// URL"}},
		{"registry source without scheme", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{Registry: &infrav1.RegistrySource{URL: "quay.io/containerdisks/fedora"}}
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("10Gi")}
			return m
		}, []string{"spec.kubevirt.bootImage.registry.url", "must start with docker:// or oci-archive://"}},
		{"root disk storage class that is no object name", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://example.com/disk.img"}}
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("10Gi"), StorageClassName: "Fast_SSD"}
			return m
		}, []string{"spec.kubevirt.rootDisk.storageClassName", "should match"}},
		{"http source CA config map that is no object name", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.BootImage = infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://example.com/disk.img", CertConfigMap: "Images CA"}}
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{Size: qty("10Gi")}
			return m
		}, []string{"spec.kubevirt.bootImage.http.certConfigMap", "should match"}},
		{"unknown access mode", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{AccessMode: "ReadWriteSometimes"}
			return m
		}, []string{"spec.kubevirt.rootDisk.accessMode", "supported values", "ReadWriteMany"}},
		{"two pod networks", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Networks = []infrav1.Network{{Name: "a", Pod: &infrav1.PodNetwork{}}, {Name: "b", Pod: &infrav1.PodNetwork{}}}
			return m
		}, []string{"spec.kubevirt", "at most one network in spec.kubevirt.networks may be the pod network"}},
		{"network that is both pod and multus", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Networks = []infrav1.Network{{Name: "a", Pod: &infrav1.PodNetwork{}, Multus: &infrav1.MultusNetwork{NetworkName: "x"}}}
			return m
		}, []string{"spec.kubevirt.networks[0]", "exactly one of pod or multus"}},
		{"network name not a DNS label", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Networks = []infrav1.Network{{Name: "Pod_Net", Pod: &infrav1.PodNetwork{}}}
			return m
		}, []string{"spec.kubevirt.networks[0].name", "should match"}},
		{"unknown pod binding", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.Networks = []infrav1.Network{{Name: "default", Pod: &infrav1.PodNetwork{Binding: "sriov"}}}
			return m
		}, []string{"spec.kubevirt.networks[0].pod.binding", "supported values", "masquerade", "bridge"}},
		{"unknown run strategy", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.RunStrategy = "Sometimes"
			return m
		}, []string{"spec.kubevirt.runStrategy", "supported values", "RerunOnFailure"}},
		{"unknown eviction strategy", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.EvictionStrategy = "Teleport"
			return m
		}, []string{"spec.kubevirt.evictionStrategy", "supported values", "LiveMigrate"}},
		{"vm patch path not a pointer", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "remove", Path: "spec.template"}}
			return m
		}, []string{"spec.kubevirt.vmPatches[0].path", "should match '^/'"}},
		{"vm patch unknown op", func() client.Object {
			m := kubevirtMachine()
			m.Spec.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "merge", Path: "/spec/x"}}
			return m
		}, []string{"spec.kubevirt.vmPatches[0].op", "supported values"}},
		{"bare-metal image without checksum", func() client.Object {
			m := baremetalMachine()
			m.Spec.BareMetal.Image.Checksum = ""
			return m
		}, []string{"spec.baremetal.image", "image.checksum is required unless image.diskFormat is live-iso"}},
		{"bare-metal unknown checksum type", func() client.Object {
			m := baremetalMachine()
			m.Spec.BareMetal.Image.ChecksumType = "crc32"
			return m
		}, []string{"spec.baremetal.image.checksumType", "supported values", "sha256"}},
		{"bare-metal unknown cleaning mode", func() client.Object {
			m := baremetalMachine()
			m.Spec.BareMetal.CleaningMode = "full"
			return m
		}, []string{"spec.baremetal.cleaningMode", "supported values", "metadata"}},
		{"template with invalid machine spec", func() client.Object {
			spec := kubevirtMachine().Spec
			spec.KubeVirt.CPU.Cores = 0
			return &infrav1.NestMachineTemplate{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("nmt")},
				Spec:       infrav1.NestMachineTemplateSpec{Template: infrav1.NestMachineTemplateResource{Spec: spec}},
			}
		}, []string{"spec.template.spec.kubevirt.cpu.cores", "should be greater than or equal to 1"}},
		{"infra cluster name not a DNS label", func() client.Object {
			ic := infraCluster()
			ic.Name = "infra.east.example.com"
			return ic
		}, []string{"metadata.name must be a DNS label"}},
		{"infra cluster probe timeout above interval", func() client.Object {
			ic := infraCluster()
			ic.Spec.Probe = &infrav1.ProbeSpec{IntervalSeconds: 5, TimeoutSeconds: 10}
			return ic
		}, []string{"spec", "probe.timeoutSeconds must not exceed probe.intervalSeconds"}},
		{"infra cluster allowed namespace not a DNS label", func() client.Object {
			ic := infraCluster()
			ic.Spec.AllowedNamespaces = &infrav1.AllowedNamespaces{List: []string{"Team_A"}}
			return ic
		}, []string{"spec.allowedNamespaces.list[0]", "should match"}},
		{"nest cluster without infra clusters", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = nil
			return c
		}, []string{"spec.infraClusters", "Required value"}},
		{"nest cluster infra cluster name not a DNS label", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "Infra_A"}}
			return c
		}, []string{"spec.infraClusters[0].name", "should match"}},
		{"nest cluster infra cluster listed twice", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-a"}}
			return c
		}, []string{"spec.infraClusters[1]", "Duplicate value"}},
		{"control-plane service in an unlisted infra cluster", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
			c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
			c.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-z"}
			return c
		}, []string{"spec", "controlPlaneService.infraCluster must be one of spec.infraClusters"}},
		{"control-plane service in a workers-only infra cluster", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-c", ControlPlane: ptr.To(false)}}
			c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
			c.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-c"}
			return c
		}, []string{"spec", "controlPlaneService.infraCluster must be one of spec.infraClusters with controlPlane true", "the control-plane VMs"}},
		{"template with a control-plane service in a workers-only infra cluster", func() client.Object {
			spec := nestCluster().Spec
			spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-c", ControlPlane: ptr.To(false)}}
			spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
			spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-c"}
			return &infrav1.NestClusterTemplate{
				ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: uniqueName("nct")},
				Spec:       infrav1.NestClusterTemplateSpec{Template: infrav1.NestClusterTemplateResource{Spec: spec}},
			}
		}, []string{"spec.template.spec", "controlPlaneService.infraCluster must be one of spec.infraClusters with controlPlane true"}},
		{"control-plane service over several control-plane infra clusters", func() client.Object {
			c := nestCluster()
			c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
			c.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-a"}
			return c
		}, []string{"spec", "controlPlaneService needs exactly one Infra cluster", "give spec.controlPlaneEndpoint"}},
		{"control-plane service of unknown type", func() client.Object {
			c := nestCluster()
			c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
			c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
			c.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-a", Type: "ExternalName"}
			return c
		}, []string{"spec.controlPlaneService.type", "supported values", "LoadBalancer"}},
		{"control-plane endpoint port out of range", func() client.Object {
			c := nestCluster()
			c.Spec.ControlPlaneEndpoint.Port = 70000
			return c
		}, []string{"spec.controlPlaneEndpoint.port", "should be less than or equal to 65535"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(context.Background(), tc.obj())
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

// TestImmutableFieldsCannotChange updates created objects and checks the API server refuses. The
// immutability of the rest of a machine's spec is the webhook's (webhooks/): a CEL rule there would also
// bind templates, whose changes ClusterClass must be able to dry-run.
func TestImmutableFieldsCannotChange(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		create func() client.Object
		mutate func(client.Object)
		want   string
	}{
		{"machine kind swapped", func() client.Object { return kubevirtMachine() }, func(o client.Object) {
			m := o.(*infrav1.NestMachine)
			m.Spec.KubeVirt, m.Spec.BareMetal = nil, baremetalMachine().Spec.BareMetal
		}, "cannot be swapped"},
		{"machine providerID", func() client.Object {
			m := kubevirtMachine()
			m.Spec.ProviderID = "nest://infra-a/ns/vm"
			return m
		}, func(o client.Object) {
			o.(*infrav1.NestMachine).Spec.ProviderID = "nest://infra-b/ns/vm"
		}, "providerID is immutable once set"},
		{"cluster endpoint", func() client.Object { return nestCluster() }, func(o client.Object) {
			o.(*infrav1.NestCluster).Spec.ControlPlaneEndpoint.Host = "10.0.0.99"
		}, "controlPlaneEndpoint is immutable once set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := tc.create()
			g.Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			tc.mutate(obj)
			err := k8sClient.Update(ctx, obj)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}

	t.Run("mutable fields of a machine can change", func(t *testing.T) {
		g := NewWithT(t)
		m := kubevirtMachine()
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		m.Spec.KubeVirt.RunStrategy = "Halted"
		m.Spec.KubeVirt.EvictionStrategy = "None"
		m.Spec.KubeVirt.Placement = &infrav1.Placement{NodeSelector: map[string]string{"zone": "a"}}
		g.Expect(k8sClient.Update(ctx, m)).To(Succeed())
	})
	t.Run("an empty endpoint can be filled in once", func(t *testing.T) {
		g := NewWithT(t)
		c := nestCluster()
		c.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: "infra-a"}}
		c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
		c.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: "infra-a"}
		g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
		c.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: "172.30.0.10", Port: 6443}
		g.Expect(k8sClient.Update(ctx, c)).To(Succeed())
	})
}

// TestCRDsCarryTheCAPIContractLabel: CAPI finds the contract version of a provider's kinds by this label.
func TestCRDsCarryTheCAPIContractLabel(t *testing.T) {
	g := NewWithT(t)
	for _, plural := range []string{"infraclusters", "nestclusters", "nestclustertemplates", "nestmachines", "nestmachinetemplates"} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: plural + "." + infrav1.GroupVersion.Group}, crd)).To(Succeed())
		g.Expect(crd.Labels).To(HaveKeyWithValue("cluster.x-k8s.io/v1beta2", "v1alpha1"), plural)
		g.Expect(crd.Spec.Names.Categories).To(ContainElement("cluster-api"), plural)
		g.Expect(strings.Join(crd.Spec.Names.ShortNames, ",")).NotTo(BeEmpty(), plural)
	}
}
