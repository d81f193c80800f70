package metal3

import (
	"strings"
	"testing"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func owner() Owner {
	return Owner{NestMachine: machine("worker-1", "uid-1"), NestClusterName: "tenant1"}
}

func provision(spec infrav1.BareMetalMachineSpec, withNetworkData bool) Provision {
	o := owner()
	return Provision{Owner: o, Spec: &spec, DataSecretName: DataSecretName("h", o.NestMachine.UID), WithNetworkData: withNetworkData}
}

func TestRenderClaimSetsConsumerAndOwnershipAndKeepsTheRest(t *testing.T) {
	g := NewWithT(t)
	h := host("h", withLabels("pool", "workers", "cluster.x-k8s.io/cluster-name", "tenant1"))
	claimed := RenderClaim(&h, owner())
	g.Expect(claimed.Spec.ConsumerRef).To(Equal(&corev1.ObjectReference{
		APIVersion: "infrastructure.cluster.x-k8s.io/v1alpha1", Kind: "NestMachine", Namespace: "team-a", Name: "worker-1", UID: "uid-1",
	}))
	g.Expect(claimed.Labels).To(And(
		HaveKeyWithValue("pool", "workers"),
		HaveKeyWithValue("cluster.x-k8s.io/cluster-name", "tenant1"),
		HaveKeyWithValue(infrav1.ManagedByLabel, infrav1.ManagedByValue),
		HaveKeyWithValue(infrav1.NestMachineNamespaceLabel, "team-a"),
		HaveKeyWithValue(infrav1.NestMachineNameLabel, "worker-1"),
		HaveKeyWithValue(infrav1.NestMachineUIDLabel, "uid-1"),
		HaveKeyWithValue(infrav1.NestClusterNameLabel, "tenant1"),
	))
	g.Expect(claimed.Annotations).To(HaveKeyWithValue(infrav1.NestMachineAnnotation, "team-a/worker-1"))
	g.Expect(claimed.Spec.Image).To(BeNil(), "claiming is not provisioning")
	g.Expect(h.Spec.ConsumerRef).To(BeNil(), "the input is not changed")
}

func TestRenderProvision(t *testing.T) {
	qcow2 := infrav1.BareMetalMachineSpec{
		Image: infrav1.BareMetalImage{URL: "http://images/ubuntu.qcow2", Checksum: "http://images/ubuntu.qcow2.sha256sum", DiskFormat: "qcow2"},
	}
	secret := DataSecretName("h", "uid-1")
	for _, tc := range []struct {
		name      string
		host      bmov1alpha1.BareMetalHost
		spec      infrav1.BareMetalMachineSpec
		netData   bool
		wantImage *bmov1alpha1.Image
		wantNet   *corev1.SecretReference
		wantClean bmov1alpha1.AutomatedCleaningMode
	}{{
		name:      "checksum type defaults to auto, cleaning to metadata",
		host:      host("h"),
		spec:      qcow2,
		wantImage: &bmov1alpha1.Image{URL: "http://images/ubuntu.qcow2", Checksum: "http://images/ubuntu.qcow2.sha256sum", ChecksumType: "auto", DiskFormat: ptr.To("qcow2")},
		wantClean: bmov1alpha1.CleaningModeMetadata,
	}, {
		name: "explicit checksum type, raw, cleaning disabled, network data",
		host: host("h"),
		spec: infrav1.BareMetalMachineSpec{
			Image:        infrav1.BareMetalImage{URL: "http://images/rhcos.raw", Checksum: "abc", ChecksumType: "sha256", DiskFormat: "raw"},
			CleaningMode: "disabled",
		},
		netData:   true,
		wantImage: &bmov1alpha1.Image{URL: "http://images/rhcos.raw", Checksum: "abc", ChecksumType: "sha256", DiskFormat: ptr.To("raw")},
		wantNet:   &corev1.SecretReference{Namespace: "metal3", Name: secret},
		wantClean: bmov1alpha1.CleaningModeDisabled,
	}, {
		name:      "a live ISO has no checksum and so no checksum type",
		host:      host("h"),
		spec:      infrav1.BareMetalMachineSpec{Image: infrav1.BareMetalImage{URL: "http://images/live.iso", DiskFormat: "live-iso"}},
		wantImage: &bmov1alpha1.Image{URL: "http://images/live.iso", DiskFormat: ptr.To("live-iso")},
		wantClean: bmov1alpha1.CleaningModeMetadata,
	}, {
		name: "an image already on the host is not replaced",
		host: host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Spec.Image = &bmov1alpha1.Image{URL: "http://images/old.qcow2", Checksum: "x"}
		}),
		spec:      qcow2,
		wantImage: &bmov1alpha1.Image{URL: "http://images/old.qcow2", Checksum: "x"},
		wantClean: bmov1alpha1.CleaningModeMetadata,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, changed := RenderProvision(&tc.host, provision(tc.spec, tc.netData))
			g.Expect(changed).To(BeTrue())
			g.Expect(out.Spec.Image).To(Equal(tc.wantImage))
			g.Expect(out.Spec.Online).To(BeTrue())
			g.Expect(out.Spec.AutomatedCleaningMode).To(Equal(tc.wantClean))
			g.Expect(out.Spec.ConsumerRef).To(Equal(ConsumerRef(owner().NestMachine)))
			if tc.host.Spec.Image == nil {
				g.Expect(out.Spec.UserData).To(Equal(&corev1.SecretReference{Namespace: "metal3", Name: secret}), "the operator reads the Secret from the host's namespace")
				g.Expect(out.Spec.NetworkData).To(Equal(tc.wantNet))
			}

			again, changed := RenderProvision(out, provision(tc.spec, tc.netData))
			g.Expect(changed).To(BeFalse(), "rendering is idempotent")
			g.Expect(again).To(Equal(out))
		})
	}
}

func TestRenderDataSecret(t *testing.T) {
	g := NewWithT(t)
	h := host("h")
	s := RenderDataSecret(owner(), &h, []byte("#cloud-config\n"), []byte("links: []"))
	g.Expect(s.Namespace).To(Equal("metal3"))
	g.Expect(s.Name).To(Equal(DataSecretName("h", "uid-1")))
	g.Expect(s.Data).To(Equal(map[string][]byte{UserDataKey: []byte("#cloud-config\n"), NetworkDataKey: []byte("links: []")}))
	g.Expect(s.Labels).To(HaveKeyWithValue(infrav1.ManagedByLabel, infrav1.ManagedByValue), "the label-selected Secret cache sees it")
	g.Expect(s.Labels).To(HaveKeyWithValue(infrav1.NestMachineUIDLabel, "uid-1"))

	g.Expect(RenderDataSecret(owner(), &h, []byte("x"), nil).Data).To(HaveLen(1), "no network data, no key")
}

func TestDataSecretName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(DataSecretName("host-1", "uid-1")).To(Equal(DataSecretName("host-1", "uid-1")))
	g.Expect(DataSecretName("host-1", "uid-1")).To(HavePrefix("host-1-nest-data-"))
	g.Expect(DataSecretName("host-1", "uid-1")).NotTo(Equal(DataSecretName("host-1", "uid-2")), "a later claimer never shares a Secret")
	long := strings.Repeat("rack1.", 45) + "node"
	name := DataSecretName(long, "uid-1")
	g.Expect(len(name)).To(BeNumerically("<=", validation.DNS1123SubdomainMaxLength))
	g.Expect(validation.IsDNS1123Subdomain(name)).To(BeEmpty())
	g.Expect(name).NotTo(Equal(DataSecretName(long, "uid-2")))
}

func TestRenderDeprovisionClearsDataAndKeepsTheClaim(t *testing.T) {
	g := NewWithT(t)
	h := host("h", inState(bmov1alpha1.StateProvisioned))
	provisioned, _ := RenderProvision(&h, provision(infrav1.BareMetalMachineSpec{Image: infrav1.BareMetalImage{URL: "http://i", Checksum: "c"}}, true))
	provisioned.Spec.CustomDeploy = &bmov1alpha1.CustomDeploy{Method: "m"}
	provisioned.Spec.MetaData = &corev1.SecretReference{Name: "meta"}

	out, changed := RenderDeprovision(provisioned)
	g.Expect(changed).To(BeTrue())
	g.Expect(out.Spec.Image).To(BeNil())
	g.Expect(out.Spec.CustomDeploy).To(BeNil())
	g.Expect(out.Spec.UserData).To(BeNil())
	g.Expect(out.Spec.NetworkData).To(BeNil())
	g.Expect(out.Spec.MetaData).To(BeNil())
	g.Expect(out.Spec.Online).To(BeFalse())
	g.Expect(out.Spec.ConsumerRef).To(Equal(provisioned.Spec.ConsumerRef), "the claim stays until the host is available again")
	g.Expect(out.Labels).To(HaveKey(infrav1.NestMachineUIDLabel))

	_, changed = RenderDeprovision(out)
	g.Expect(changed).To(BeFalse())
}

func TestDeprovisioned(t *testing.T) {
	withImage := func(h *bmov1alpha1.BareMetalHost) { h.Spec.Image = &bmov1alpha1.Image{URL: "http://i"} }
	for _, tc := range []struct {
		name string
		host bmov1alpha1.BareMetalHost
		want bool
	}{
		{"available", host("h"), true},
		{"ready", host("h", inState(bmov1alpha1.StateReady)), true},
		{"still provisioned: the operator has not seen the request", host("h", inState(bmov1alpha1.StateProvisioned)), false},
		{"deprovisioning (cleaning)", host("h", inState(bmov1alpha1.StateDeprovisioning)), false},
		{"provisioning", host("h", inState(bmov1alpha1.StateProvisioning)), false},
		{"preparing", host("h", inState(bmov1alpha1.StatePreparing)), false},
		{"powering off before delete", host("h", inState(bmov1alpha1.StatePoweringOffBeforeDelete)), false},
		{"available but the image is still asked for", host("h", withImage), false},
		{"externally provisioned and on", host("h", inState(bmov1alpha1.StateExternallyProvisioned), func(h *bmov1alpha1.BareMetalHost) { h.Status.PoweredOn = true }), false},
		{"externally provisioned and off", host("h", inState(bmov1alpha1.StateExternallyProvisioned)), true},
		{"registering again", host("h", inState(bmov1alpha1.StateRegistering)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(Deprovisioned(&tc.host)).To(Equal(tc.want))
		})
	}
}

func TestRenderReleaseRemovesOnlyWhatIsOurs(t *testing.T) {
	g := NewWithT(t)
	h := host("h", withLabels("pool", "workers", "cluster.x-k8s.io/cluster-name", "tenant1"), func(h *bmov1alpha1.BareMetalHost) {
		h.Annotations = map[string]string{"note": "rack 4"}
	})
	claimed := RenderClaim(&h, owner())
	out, changed := RenderRelease(claimed)
	g.Expect(changed).To(BeTrue())
	g.Expect(out.Spec.ConsumerRef).To(BeNil())
	g.Expect(out.Labels).To(Equal(map[string]string{"pool": "workers", "cluster.x-k8s.io/cluster-name": "tenant1"}))
	g.Expect(out.Annotations).To(Equal(map[string]string{"note": "rack 4"}))
	g.Expect(Claimable(out)).To(BeTrue(), "a released available host is claimable again")

	_, changed = RenderRelease(out)
	g.Expect(changed).To(BeFalse())
}
