package webhooks_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestNestMachineDefaults(t *testing.T) {
	ns := namespace(t, nil)
	cases := []struct {
		name  string
		spec  infrav1.NestMachineSpec
		check func(g Gomega, spec infrav1.NestMachineSpec)
	}{
		{"containerDisk VM: every default, LiveMigrate", kubevirtSpec(), func(g Gomega, s infrav1.NestMachineSpec) {
			kv := s.KubeVirt
			g.Expect(kv.RunStrategy).To(Equal(infrav1.RunStrategy("Always")))
			g.Expect(kv.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("LiveMigrate")))
			g.Expect(kv.CPU.Sockets).To(Equal(int32(1)))
			g.Expect(kv.CPU.Threads).To(Equal(int32(1)))
			g.Expect(kv.Networks).To(Equal([]infrav1.Network{{Name: "default", Pod: &infrav1.PodNetwork{Binding: "masquerade"}}}))
		}},
		{"ReadWriteMany root disk: LiveMigrate", importedSpec("ReadWriteMany"), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.KubeVirt.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("LiveMigrate")))
		}},
		{"ReadWriteOnce root disk: None", importedSpec("ReadWriteOnce"), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.KubeVirt.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("None")))
		}},
		{"access mode left to the storage profile: LiveMigrateIfPossible", importedSpec(""), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.KubeVirt.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("LiveMigrateIfPossible")))
		}},
		{"bridge on the pod network: None", func() infrav1.NestMachineSpec {
			s := kubevirtSpec()
			s.KubeVirt.Networks = []infrav1.Network{{Name: "default", Pod: &infrav1.PodNetwork{Binding: "bridge"}}}
			return s
		}(), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.KubeVirt.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("None")))
		}},
		{"given values are kept", func() infrav1.NestMachineSpec {
			s := kubevirtSpec()
			s.KubeVirt.RunStrategy, s.KubeVirt.EvictionStrategy = "RerunOnFailure", "External"
			s.KubeVirt.CPU.Sockets, s.KubeVirt.CPU.Threads = 2, 2
			s.KubeVirt.Networks = []infrav1.Network{{Name: "storage", Multus: &infrav1.MultusNetwork{NetworkName: "infra/storage"}}, {Name: "pod", Pod: &infrav1.PodNetwork{}}}
			return s
		}(), func(g Gomega, s infrav1.NestMachineSpec) {
			kv := s.KubeVirt
			g.Expect(kv.RunStrategy).To(Equal(infrav1.RunStrategy("RerunOnFailure")))
			g.Expect(kv.EvictionStrategy).To(Equal(infrav1.EvictionStrategy("External")))
			g.Expect([]int32{kv.CPU.Sockets, kv.CPU.Threads}).To(Equal([]int32{2, 2}))
			g.Expect(kv.Networks).To(HaveLen(2))
			g.Expect(kv.Networks[1].Pod.Binding).To(Equal(infrav1.PodNetworkBinding("masquerade")), "an empty pod binding is defaulted")
		}},
		{"instancetype and preference kinds", func() infrav1.NestMachineSpec {
			s := kubevirtSpec()
			s.KubeVirt.CPU, s.KubeVirt.Memory = nil, nil
			s.KubeVirt.Instancetype = &infrav1.InstancetypeReference{Name: "u1.large"}
			s.KubeVirt.Preference = &infrav1.PreferenceReference{Name: "rhel.9"}
			return s
		}(), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.KubeVirt.Instancetype.Kind).To(Equal(infrav1.InstancetypeKind("VirtualMachineClusterInstancetype")))
			g.Expect(s.KubeVirt.Preference.Kind).To(Equal(infrav1.PreferenceKind("VirtualMachineClusterPreference")))
			g.Expect(s.KubeVirt.CPU).To(BeNil(), "no CPU is invented next to an instancetype")
		}},
		{"bare metal: checksum type and cleaning mode", baremetalSpec(), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.BareMetal.Image.ChecksumType).To(Equal(infrav1.ImageChecksumType("auto")))
			g.Expect(s.BareMetal.CleaningMode).To(Equal(infrav1.CleaningMode("metadata")))
		}},
		{"bare metal live ISO without checksum: no checksum type", func() infrav1.NestMachineSpec {
			s := baremetalSpec()
			s.BareMetal.Image.Checksum, s.BareMetal.Image.DiskFormat = "", "live-iso"
			return s
		}(), func(g Gomega, s infrav1.NestMachineSpec) {
			g.Expect(s.BareMetal.Image.ChecksumType).To(BeEmpty())
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			m := nestMachine(ns, tc.spec)
			g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
			tc.check(g, m.Spec)

			tmpl := nestMachineTemplate(ns, tc.spec)
			g.Expect(k8sClient.Create(ctx, tmpl)).To(Succeed())
			g.Expect(tmpl.Spec.Template.Spec).To(Equal(m.Spec), "a template is defaulted like the machines it stamps out")
		})
	}
}

// invalidMachineSpecs are specs the CRD schema admits and the webhook rejects, with what the
// message must say.
var invalidMachineSpecs = []struct {
	name string
	spec func() infrav1.NestMachineSpec
	want []string
}{
	{"rootDisk with a containerDisk", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.RootDisk = &infrav1.RootDisk{StorageClassName: "ceph-rbd"}
		return s
	}, []string{"spec.kubevirt.rootDisk: Forbidden", "containerDisk root disk is ephemeral"}},
	{"LiveMigrate with a ReadWriteOnce root disk", func() infrav1.NestMachineSpec {
		s := importedSpec("ReadWriteOnce")
		s.KubeVirt.EvictionStrategy = "LiveMigrate"
		return s
	}, []string{`spec.kubevirt.evictionStrategy: Invalid value: "LiveMigrate"`, "ReadWriteOnce root disk", "spec.kubevirt.rootDisk.accessMode",
		"use rootDisk.accessMode ReadWriteMany, or evictionStrategy None or LiveMigrateIfPossible"}},
	{"LiveMigrate with a ReadWriteOncePod root disk", func() infrav1.NestMachineSpec {
		s := importedSpec("ReadWriteOncePod")
		s.KubeVirt.EvictionStrategy = "LiveMigrate"
		return s
	}, []string{"spec.kubevirt.evictionStrategy", "ReadWriteOncePod root disk", "ReadWriteMany"}},
	{"LiveMigrate with a bridge on the pod network", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.EvictionStrategy = "LiveMigrate"
		s.KubeVirt.Networks = []infrav1.Network{{Name: "default", Pod: &infrav1.PodNetwork{Binding: "bridge"}}}
		return s
	}, []string{"spec.kubevirt.evictionStrategy", "spec.kubevirt.networks[0].pod.binding", "use binding masquerade, or evictionStrategy None or LiveMigrateIfPossible"}},
	{"duplicate MAC address", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Networks = []infrav1.Network{
			{Name: "a", Multus: &infrav1.MultusNetwork{NetworkName: "net-a"}, MACAddress: "02:00:00:00:00:01"},
			{Name: "b", Multus: &infrav1.MultusNetwork{NetworkName: "net-b"}, MACAddress: "02:00:00:00:00:01"},
		}
		return s
	}, []string{"spec.kubevirt.networks[1].macAddress: Duplicate value", "already used by spec.kubevirt.networks[0].macAddress"}},
	{"multicast MAC address", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Networks = []infrav1.Network{{Name: "default", Pod: &infrav1.PodNetwork{}, MACAddress: "11:22:33:44:55:66"}}
		return s
	}, []string{`spec.kubevirt.networks[0].macAddress: Invalid value: "11:22:33:44:55:66"`, "a multicast address", "use a unicast address"}},
	{"node selector key", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{NodeSelector: map[string]string{"bad key!": "x"}}
		return s
	}, []string{"spec.kubevirt.placement.nodeSelector", "bad key!"}},
	{"toleration Exists with a value", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Tolerations: []corev1.Toleration{{Key: "k", Operator: "Exists", Value: "v"}}}
		return s
	}, []string{"spec.kubevirt.placement.tolerations[0].value", "operator Exists takes no value"}},
	{"toleration effect", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Tolerations: []corev1.Toleration{{Key: "k", Operator: "Equal", Value: "v", Effect: "Sometimes"}}}
		return s
	}, []string{"spec.kubevirt.placement.tolerations[0].effect: Unsupported value", `"NoSchedule", "PreferNoSchedule", "NoExecute"`}},
	{"toleration value that is no label value", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Tolerations: []corev1.Toleration{{Key: "gpu", Operator: "Equal", Value: "nvidia.com/a100", Effect: "NoSchedule"}}}
		return s
	}, []string{`spec.kubevirt.placement.tolerations[0].value: Invalid value: "nvidia.com/a100"`, "a taint's value is a label value"}},
	{"pod affinity namespace that is no namespace name", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: "kubernetes.io/hostname", Namespaces: []string{"Tenants_A"}, MatchLabelKeys: []string{"not a key"},
			}},
		}}}
		return s
	}, []string{
		`spec.kubevirt.placement.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces[0]: Invalid value: "Tenants_A"`,
		`spec.kubevirt.placement.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].matchLabelKeys[0]: Invalid value: "not a key"`,
	}},
	{"dedicated CPUs with more than two threads per core", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.CPU = &infrav1.CPU{Cores: 4, Threads: 4, Dedicated: true}
		return s
	}, []string{"spec.kubevirt.cpu.threads: Invalid value: 4", "with spec.kubevirt.cpu.dedicated KubeVirt allows at most 2 threads per core"}},
	{"toleration without key", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Tolerations: []corev1.Toleration{{Operator: "Equal", Value: "v"}}}
		return s
	}, []string{"spec.kubevirt.placement.tolerations[0].operator", "must use operator Exists"}},
	{"node affinity In without values", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: "In"}}},
			}},
		}}}
		return s
	}, []string{"spec.kubevirt.placement.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values", "need at least one value"}},
	{"node affinity operator", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 10, Preference: corev1.NodeSelectorTerm{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: "Near", Values: []string{"a"}}},
			}}},
		}}}
		return s
	}, []string{"preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator: Unsupported value", `"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"`}},
	{"pod anti-affinity without topology key", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}},
		}}}
		return s
	}, []string{"spec.kubevirt.placement.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value", "kubernetes.io/hostname"}},
	{"pod affinity weight", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.Placement = &infrav1.Placement{Affinity: &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 0, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}},
		}}}
		return s
	}, []string{"podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "between 1 and 100"}},
	{"patch without value", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/firmware"}}
		return s
	}, []string{"spec.kubevirt.vmPatches[0].value: Required value", "op add needs a value"}},
	{"patch pointer", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "remove", Path: "/spec/a~2b"}}
		return s
	}, []string{"spec.kubevirt.vmPatches[0].path", "not a JSON pointer (RFC 6901)"}},
	{"patch renames the VM", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{
			{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{}`)},
			{Op: "replace", Path: "/metadata/name", Value: jsonValue(`"other"`)},
		}
		return s
	}, []string{"spec.kubevirt.vmPatches[1].path: Forbidden", "/metadata/name", "which the provider owns"}},
	{"container disk that is not an image reference", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.BootImage = infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/Fedora:42 --privileged"}}
		return s
	}, []string{"spec.kubevirt.bootImage.containerDisk.image", "not an image reference"}},
	{"registry import that is not an image reference", func() infrav1.NestMachineSpec {
		s := importedSpec("ReadWriteMany")
		s.KubeVirt.BootImage = infrav1.BootImage{Registry: &infrav1.RegistrySource{URL: "docker://quay.io//fedora::42"}}
		return s
	}, []string{"spec.kubevirt.bootImage.registry.url", "not docker://<image reference>"}},
	{"patch drops the ownership labels", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "remove", Path: "/metadata/labels"}}
		return s
	}, []string{"spec.kubevirt.vmPatches[0].path: Forbidden", "infrastructure.cluster.x-k8s.io~1managed-by"}},
	{"patch moves a location into itself", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "move", From: "/spec/template", Path: "/spec/template/x"}}
		return s
	}, []string{"spec.kubevirt.vmPatches[0].path", "cannot be moved into itself"}},
	{"patch that does not apply to the rendered VM", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{
			{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{}`)},
			{Op: "replace", Path: "/spec/template/spec/noSuchField", Value: jsonValue(`1`)},
		}
		return s
	}, []string{"spec.kubevirt.vmPatches[1].path", "replace /spec/template/spec/noSuchField does not apply to the VirtualMachine rendered from this spec"}},
	{"patch that makes the VM invalid", func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/domain/notAKubeVirtField", Value: jsonValue(`1`)}}
		return s
	}, []string{"spec.kubevirt.vmPatches[0].path", "does not apply to the VirtualMachine"}},
	{"host selector operator", func() infrav1.NestMachineSpec {
		s := baremetalSpec()
		s.BareMetal.HostSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Near"}}}
		return s
	}, []string{"spec.baremetal.hostSelector.matchExpressions[0].operator", "one of In, NotIn, Exists, DoesNotExist"}},
	{"checksum type without checksum", func() infrav1.NestMachineSpec {
		s := baremetalSpec()
		s.BareMetal.Image = infrav1.BareMetalImage{URL: "http://images.example.com/live.iso", DiskFormat: "live-iso", ChecksumType: "sha256"}
		return s
	}, []string{"spec.baremetal.image.checksumType: Forbidden", "needs image.checksum"}},
	{"sha256 checksum of the wrong length", func() infrav1.NestMachineSpec {
		s := baremetalSpec()
		s.BareMetal.Image.Checksum, s.BareMetal.Image.ChecksumType = "abc123", "sha256"
		return s
	}, []string{"spec.baremetal.image.checksum", "a sha256 checksum is 64 hexadecimal characters"}},
	{"auto checksum that is no digest", func() infrav1.NestMachineSpec {
		s := baremetalSpec()
		s.BareMetal.Image.Checksum = "not-a-digest"
		return s
	}, []string{"spec.baremetal.image.checksum", "md5, sha256 or sha512 digest"}},
}

func TestInvalidNestMachinesAreRejectedNamingTheField(t *testing.T) {
	ns := namespace(t, nil)
	for _, tc := range invalidMachineSpecs {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			expectInvalid(g, k8sClient.Create(ctx, nestMachine(ns, tc.spec())), tc.want...)

			templateWant := make([]string, 0, len(tc.want))
			for _, w := range tc.want {
				templateWant = append(templateWant, replaceSpecPath(w))
			}
			expectInvalid(g, k8sClient.Create(ctx, nestMachineTemplate(ns, tc.spec())), templateWant...)
		})
	}
}

// replaceSpecPath moves the field paths of a NestMachine message under spec.template.spec.
func replaceSpecPath(s string) string {
	return strings.NewReplacer("spec.kubevirt", "spec.template.spec.kubevirt", "spec.baremetal", "spec.template.spec.baremetal").Replace(s)
}

func TestValidNestMachinesAreAdmitted(t *testing.T) {
	ns := namespace(t, nil)
	specs := map[string]infrav1.NestMachineSpec{
		"containerDisk": kubevirtSpec(),
		"ReadWriteMany LiveMigrate": func() infrav1.NestMachineSpec {
			s := importedSpec("ReadWriteMany")
			s.KubeVirt.EvictionStrategy = "LiveMigrate"
			return s
		}(),
		"ReadWriteOnce LiveMigrateIfPossible": func() infrav1.NestMachineSpec {
			s := importedSpec("ReadWriteOnce")
			s.KubeVirt.EvictionStrategy = "LiveMigrateIfPossible"
			return s
		}(),
		"placement and patches": func() infrav1.NestMachineSpec {
			s := kubevirtSpec()
			s.KubeVirt.Placement = &infrav1.Placement{
				NodeSelector: map[string]string{"node-role.kubernetes.io/worker": ""},
				Tolerations:  []corev1.Toleration{{Operator: "Exists"}, {Key: "k", Operator: "Equal", Value: "v", Effect: "NoExecute", TolerationSeconds: ptr.To[int64](30)}},
				Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cpus", Operator: "Gt", Values: []string{"8"}}}}},
				}}},
			}
			s.KubeVirt.VMPatches = []infrav1.JSONPatch{
				{Op: "add", Path: "/spec/template/spec/domain/firmware", Value: jsonValue(`{"bootloader":{"efi":{}}}`)},
				{Op: "add", Path: "/metadata/labels/team", Value: jsonValue(`"a"`)},
				{Op: "test", Path: "/kind", Value: jsonValue(`"VirtualMachine"`)},
				{Op: "copy", From: "/spec/template/spec/domain/firmware", Path: "/spec/template/spec/domain/firmware"},
			}
			return s
		}(),
		"dedicated CPUs with two threads per core": func() infrav1.NestMachineSpec {
			s := kubevirtSpec()
			s.KubeVirt.CPU = &infrav1.CPU{Cores: 4, Threads: 2, Dedicated: true}
			return s
		}(),
		"bare metal with a checksum URL": func() infrav1.NestMachineSpec {
			s := baremetalSpec()
			s.BareMetal.Image.Checksum, s.BareMetal.Image.ChecksumType = "http://images.example.com/rhcos.qcow2.sha256sum", "sha256"
			return s
		}(),
		"bare metal live ISO": func() infrav1.NestMachineSpec {
			s := baremetalSpec()
			s.BareMetal.Image = infrav1.BareMetalImage{URL: "http://images.example.com/live.iso", DiskFormat: "live-iso"}
			return s
		}(),
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(k8sClient.Create(context.Background(), nestMachine(ns, spec))).To(Succeed())
			g.Expect(k8sClient.Create(context.Background(), nestMachineTemplate(ns, spec))).To(Succeed())
		})
	}
}

func TestNestMachineWarnings(t *testing.T) {
	g := NewWithT(t)
	ns := namespace(t, nil)
	ctx, recorded := withWarnings(context.Background())
	spec := importedSpec("")
	spec.KubeVirt.EvictionStrategy, spec.KubeVirt.RunStrategy = "LiveMigrate", "Halted"
	g.Expect(k8sClient.Create(ctx, nestMachine(ns, spec))).To(Succeed())
	g.Expect(recorded.all()).To(ContainElements(
		ContainSubstring("spec.kubevirt.rootDisk.accessMode is not set"),
		ContainSubstring("spec.kubevirt.runStrategy is Halted"),
	))
}

func TestNestMachineUpdates(t *testing.T) {
	ns := namespace(t, nil)
	cases := []struct {
		name   string
		spec   infrav1.NestMachineSpec
		change func(*infrav1.NestMachine)
		want   []string // nil: admitted
	}{
		{"run strategy may change", kubevirtSpec(), func(m *infrav1.NestMachine) { m.Spec.KubeVirt.RunStrategy = "Halted" }, nil},
		{"eviction strategy may change", kubevirtSpec(), func(m *infrav1.NestMachine) { m.Spec.KubeVirt.EvictionStrategy = "None" }, nil},
		{"placement may change", kubevirtSpec(), func(m *infrav1.NestMachine) {
			m.Spec.KubeVirt.Placement = &infrav1.Placement{NodeSelector: map[string]string{"zone": "a"}}
		}, nil},
		{"providerID may be set", kubevirtSpec(), func(m *infrav1.NestMachine) { m.Spec.ProviderID = "nest://infra-a/ns/vm" }, nil},
		{"labels may change", kubevirtSpec(), func(m *infrav1.NestMachine) { m.Labels = map[string]string{"x": "y"} }, nil},
		{"CPU is immutable", kubevirtSpec(), func(m *infrav1.NestMachine) { m.Spec.KubeVirt.CPU.Cores = 4 },
			[]string{"spec.kubevirt.cpu.cores: Forbidden", "immutable", "spec.kubevirt.runStrategy, spec.kubevirt.evictionStrategy and spec.kubevirt.placement"}},
		{"boot image is immutable", kubevirtSpec(), func(m *infrav1.NestMachine) {
			m.Spec.KubeVirt.BootImage.ContainerDisk.Image = "quay.io/containerdisks/fedora:40"
		}, []string{"spec.kubevirt.bootImage.containerDisk.image: Forbidden"}},
		{"networks are immutable", kubevirtSpec(), func(m *infrav1.NestMachine) {
			m.Spec.KubeVirt.Networks = append(m.Spec.KubeVirt.Networks, infrav1.Network{Name: "extra", Multus: &infrav1.MultusNetwork{NetworkName: "n"}})
		}, []string{"spec.kubevirt.networks: Forbidden"}},
		{"bare-metal image is immutable", baremetalSpec(), func(m *infrav1.NestMachine) {
			m.Spec.BareMetal.Image.URL = "http://images.example.com/other.qcow2"
		}, []string{"spec.baremetal.image.url: Forbidden"}},
		{"LiveMigrate cannot be switched on for a ReadWriteOnce disk", importedSpec("ReadWriteOnce"), func(m *infrav1.NestMachine) {
			m.Spec.KubeVirt.EvictionStrategy = "LiveMigrate"
		}, []string{"spec.kubevirt.evictionStrategy", "ReadWriteMany"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			m := nestMachine(ns, tc.spec)
			g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
			tc.change(m)
			err := k8sClient.Update(ctx, m)
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			expectInvalid(g, err, tc.want...)
		})
	}

	t.Run("providerID is set once", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		m := nestMachine(ns, kubevirtSpec())
		m.Spec.ProviderID = "nest://infra-a/ns/" + m.Name
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		m.Spec.ProviderID = ""
		expectInvalid(g, k8sClient.Update(ctx, m), "spec.providerID: Forbidden", `providerID is set once, by the provider; it is "nest://infra-a/ns/`+m.Name+`"`)
	})

	t.Run("a machine being deleted may lose its finalizer", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		m := nestMachine(ns, kubevirtSpec())
		m.Finalizers = []string{infrav1.NestMachineFinalizer}
		g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
		g.Expect(k8sClient.Delete(ctx, m)).To(Succeed())
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(m), m)).To(Succeed())
		m.Finalizers = nil
		g.Expect(k8sClient.Update(ctx, m)).To(Succeed())
	})
}

func TestNestMachineTemplateRules(t *testing.T) {
	ns := namespace(t, nil)
	ctx := context.Background()

	t.Run("no providerID in a template", func(t *testing.T) {
		spec := kubevirtSpec()
		spec.ProviderID = "nest://infra-a/ns/vm"
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, nestMachineTemplate(ns, spec)), "spec.template.spec.providerID: Forbidden", "sets one per machine")
	})

	t.Run("template metadata is validated", func(t *testing.T) {
		tmpl := nestMachineTemplate(ns, kubevirtSpec())
		tmpl.Spec.Template.ObjectMeta = clusterv1.ObjectMeta{Labels: map[string]string{"bad key!": "v"}}
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, tmpl), "spec.template.metadata.labels")
	})

	t.Run("spec.template.spec is immutable", func(t *testing.T) {
		g := NewWithT(t)
		tmpl := nestMachineTemplate(ns, kubevirtSpec())
		g.Expect(k8sClient.Create(ctx, tmpl)).To(Succeed())
		tmpl.Spec.Template.Spec.KubeVirt.Memory = qty("8Gi")
		tmpl.Spec.Template.Spec.KubeVirt.RunStrategy = "Manual"
		expectInvalid(g, k8sClient.Update(ctx, tmpl), "spec.template.spec: Forbidden",
			"changed: spec.template.spec.kubevirt.memory, spec.template.spec.kubevirt.runStrategy", "create a new NestMachineTemplate")
	})

	t.Run("metadata of a template may change", func(t *testing.T) {
		g := NewWithT(t)
		tmpl := nestMachineTemplate(ns, kubevirtSpec())
		g.Expect(k8sClient.Create(ctx, tmpl)).To(Succeed())
		tmpl.Labels = map[string]string{"cluster.x-k8s.io/cluster-name": "c"}
		tmpl.Spec.Template.ObjectMeta.Labels = map[string]string{"tier": "control-plane"}
		g.Expect(k8sClient.Update(ctx, tmpl)).To(Succeed())
	})

	t.Run("a ClusterClass topology dry run may change it", func(t *testing.T) {
		g := NewWithT(t)
		tmpl := nestMachineTemplate(ns, kubevirtSpec())
		g.Expect(k8sClient.Create(ctx, tmpl)).To(Succeed())

		changed := tmpl.DeepCopy()
		changed.Spec.Template.Spec.KubeVirt.Memory = qty("8Gi")
		expectInvalid(g, k8sClient.Update(ctx, changed.DeepCopy(), client.DryRunAll), "spec.template.spec: Forbidden")

		changed.Annotations = map[string]string{clusterv1.TopologyDryRunAnnotation: ""}
		g.Expect(k8sClient.Update(ctx, changed.DeepCopy(), client.DryRunAll)).To(Succeed(), "the topology dry run is admitted")
		expectInvalid(g, k8sClient.Update(ctx, changed.DeepCopy()), "spec.template.spec: Forbidden")

		stored := &infrav1.NestMachineTemplate{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(tmpl), stored)).To(Succeed())
		g.Expect(stored.Spec.Template.Spec.KubeVirt.Memory.String()).To(Equal("4Gi"), "a dry run changes nothing")

		invalidToo := changed.DeepCopy()
		invalidToo.Spec.Template.Spec.KubeVirt.RootDisk = &infrav1.RootDisk{StorageClassName: "x"}
		expectInvalid(g, k8sClient.Update(ctx, invalidToo, client.DryRunAll), "spec.template.spec.kubevirt.rootDisk: Forbidden")
	})
}

// VM patches may add host disks, host devices or another scheduler only where an InfraCluster that
// admits the namespace allows it in spec.vmPatchPolicy.
func TestVMPatchesThatTheInfraPolicyGovernsAreRefusedUnlessAllowed(t *testing.T) {
	env(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	spec := func() infrav1.NestMachineSpec {
		s := kubevirtSpec()
		s.KubeVirt.VMPatches = []infrav1.JSONPatch{{Op: "add", Path: "/spec/template/spec/volumes/-",
			Value: jsonValue(`{"name":"shadow","hostDisk":{"path":"/etc/shadow","type":"Disk"}}`)}}
		return s
	}
	expectInvalid(g, k8sClient.Create(ctx, nestMachine(ns, spec())), "spec.kubevirt.vmPatches: Forbidden", `the hostDisk volume "shadow" (path /etc/shadow`, "does not list HostDisk")
	expectInvalid(g, k8sClient.Create(ctx, nestMachineTemplate(ns, spec())), "spec.template.spec.kubevirt.vmPatches: Forbidden", "does not list HostDisk")

	ic := infraCluster(&infrav1.AllowedNamespaces{List: []string{ns}})
	ic.Spec.VMPatchPolicy = &infrav1.VMPatchPolicy{Allow: []infrav1.VMPatchFeature{infrav1.VMPatchHostDisk}}
	g.Expect(k8sClient.Create(ctx, ic)).To(Succeed())
	waitCached(t, ic)
	g.Expect(k8sClient.Create(ctx, nestMachine(ns, spec()))).To(Succeed(), "an InfraCluster admitting the namespace allows host disks")
	g.Expect(k8sClient.Create(ctx, nestMachineTemplate(ns, spec()))).To(Succeed())
}
