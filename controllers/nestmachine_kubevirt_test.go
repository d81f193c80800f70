package controllers_test

import (
	"context"
	"maps"
	"testing"
	"time"

	ignitionv34 "github.com/coreos/ignition/v2/config/v3_4"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// provisionedTenant is a tenant over the three shared Infra clusters whose infrastructure CAPI
// would consider provisioned.
func provisionedTenant(t *testing.T) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	ensureThreeInfras(t)
	cluster, nc := newTenant(t, threeInfras...)
	markInfrastructureProvisioned(t, cluster)
	return cluster, nc
}

func waitProvisioned(t *testing.T, nm *infrav1.NestMachine) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(ptr.Deref(nm.Status.Initialization.Provisioned, false)).To(BeTrue(),
			"VMProvisioned: %s", conditions.GetMessage(nm, infrav1.VMProvisionedCondition))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

func infraEnv(name string) *envtest.Environment {
	for i, n := range threeInfras {
		if n == name {
			return topo.Infras[i]
		}
	}
	panic("unknown infra " + name)
}

// withBootDelay makes the simulator hold the VM before it runs, through the JSON-patch escape hatch.
func withBootDelay(spec infrav1.NestMachineSpec, d string) infrav1.NestMachineSpec {
	spec.KubeVirt.VMPatches = append(spec.KubeVirt.VMPatches, infrav1.JSONPatch{
		Op: "add", Path: "/metadata/annotations/sim.nest.dev~1boot-delay", Value: &apiextensionsv1.JSON{Raw: []byte(`"` + d + `"`)},
	})
	return spec
}

func TestVMMachinesProvisionInTheirFailureDomain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	cpMachine, cp := newMachine(t, cluster, machineOpts{failureDomain: "infra-b", controlPlane: true, spec: vmSpec()})
	_, worker := newMachine(t, cluster, machineOpts{failureDomain: "infra-c", spec: vmSpec()})
	waitProvisioned(t, cp)
	waitProvisioned(t, worker)

	ns := tenantNamespace(nc)
	for _, tc := range []struct {
		nm    *infrav1.NestMachine
		infra string
	}{{cp, "infra-b"}, {worker, "infra-c"}} {
		vmName := kubevirt.VMName(tc.nm)
		g.Expect(tc.nm.Spec.ProviderID).To(Equal(infrav1.ProviderID(tc.infra, ns, vmName)))
		g.Expect(tc.nm.Status.FailureDomain).To(Equal(tc.infra))
		g.Expect(tc.nm.Status.Phase).To(Equal(infrav1.NestMachinePhaseRunning), "conditions: %+v", tc.nm.Status.Conditions)
		g.Expect(tc.nm.Status.Addresses).To(ContainElement(HaveField("Type", clusterv1.MachineInternalIP)))
		g.Expect(conditions.IsTrue(tc.nm, infrav1.BootstrapReadyCondition)).To(BeTrue())
		g.Expect(conditions.IsTrue(tc.nm, infrav1.ReadyCondition)).To(BeTrue())
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(infraEnv(tc.infra).Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: vmName}, vm)).To(Succeed(), "the VM is in %s", tc.infra)
	}

	// The VM stored by the Infra API server equals what was rendered: its schema pruned nothing.
	vm := &kubevirtv1.VirtualMachine{}
	g.Expect(infraEnv("infra-b").Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(cp)}, vm)).To(Succeed())
	rendered, err := kubevirt.RenderVM(kubevirt.Input{NestMachine: cp, Machine: cpMachine, ClusterName: cluster.Name, NestClusterName: nc.Name,
		Namespace: ns, BootstrapSecretName: kubevirt.BootstrapSecretName(vm.Name), BootstrapFormat: kubevirt.FormatCloudConfig})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(equality.Semantic.DeepEqual(rendered.Spec, vm.Spec)).To(BeTrue(), "stored VM spec differs from the rendered one")
	g.Expect(vm.Spec.Template.ObjectMeta.Labels).To(HaveKeyWithValue(kubevirt.RoleLabel, kubevirt.RoleControlPlane))
	g.Expect(vm.Spec.Template.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution).NotTo(BeEmpty(),
		"control-plane VMs of a tenant repel each other on an Infra node")

	secret := &corev1.Secret{}
	g.Expect(infraEnv("infra-b").Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.BootstrapSecretName(vm.Name)}, secret)).To(Succeed())
	g.Expect(secret.Data).To(HaveKey(kubevirt.UserDataKey))
	g.Expect(secret.OwnerReferences).To(ContainElement(HaveField("UID", vm.UID)), "the bootstrap Secret is owned by the VM")
}

func TestIgnitionUsesAConfigDriveAndTheSecretGoesWithTheVM(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", format: "ignition", spec: vmSpec()})
	waitProvisioned(t, nm)

	ns, name := tenantNamespace(nc), kubevirt.VMName(nm)
	c := infraEnv("infra-a").Client
	vm := &kubevirtv1.VirtualMachine{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vm)).To(Succeed())
	var configDrive, noCloud bool
	for _, v := range vm.Spec.Template.Spec.Volumes {
		configDrive = configDrive || v.CloudInitConfigDrive != nil
		noCloud = noCloud || v.CloudInitNoCloud != nil
	}
	g.Expect(configDrive).To(BeTrue(), "ignition is read from a config drive")
	g.Expect(noCloud).To(BeFalse())

	// The provider merged the hostname the Node must have (the VM's name) into the config, as Ignition.
	secret := &corev1.Secret{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.BootstrapSecretName(name)}, secret)).To(Succeed())
	cfg, rpt, err := ignitionv34.ParseCompatibleVersion(secret.Data[kubevirt.UserDataKey])
	g.Expect(err).NotTo(HaveOccurred(), rpt.String())
	g.Expect(cfg.Passwd.Users).To(HaveLen(1), "the user's config is kept")
	g.Expect(cfg.Storage.Files).To(HaveLen(1))
	g.Expect(cfg.Storage.Files[0].Path).To(Equal("/etc/hostname"))
	g.Expect(ptr.Deref(cfg.Storage.Files[0].Contents.Source, "")).To(Equal("data:," + name + "%0A"))

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "NestMachine released")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, c, ns, nm)
}

// expectNothingLeft checks no VM, instance, DataVolume or Secret of the NestMachine is left.
// expectNothingLeft waits until nothing the NestMachine made is left in the Infra cluster. The
// provider deletes the VM; its bootstrap Secret, DataVolumes and VMI go with it through the garbage
// collector (the KubeVirt simulator's here), a moment later.
func expectNothingLeft(t *testing.T, c client.Client, ns string, nm *infrav1.NestMachine) {
	t.Helper()
	owned := []client.ListOption{client.InNamespace(ns), client.MatchingLabels{infrav1.NestMachineUIDLabel: string(nm.UID)}}
	NewWithT(t).Eventually(func(g Gomega) {
		for _, l := range []client.ObjectList{&kubevirtv1.VirtualMachineList{}, &kubevirtv1.VirtualMachineInstanceList{}, &cdiv1beta1.DataVolumeList{}, &corev1.SecretList{}} {
			g.Expect(c.List(context.Background(), l, owned...)).To(Succeed())
			g.Expect(l).To(HaveField("Items", BeEmpty()), "%T left behind", l)
		}
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
}

func TestManagerRestartMidProvisioningCreatesNoSecondVM(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", spec: withBootDelay(vmSpec(), "3s")})
	ns := tenantNamespace(nc)
	c := infraEnv("infra-a").Client
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})).To(Succeed())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed(), "the VM is created")
	g.Expect(ptr.Deref(get(g, nm).(*infrav1.NestMachine).Status.Initialization.Provisioned, false)).To(BeFalse(), "still booting")

	stopManager()
	g.Expect(startManager(ctx)).To(Succeed())
	waitProvisioned(t, nm)
	vms := &kubevirtv1.VirtualMachineList{}
	g.Expect(c.List(ctx, vms, client.InNamespace(ns), client.MatchingLabels{infrav1.NestMachineUIDLabel: string(nm.UID)})).To(Succeed())
	g.Expect(vms.Items).To(HaveLen(1), "one VM per NestMachine, across restarts")
}

func TestDeletingDuringProvisioningLeaksNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-b", spec: withBootDelay(vmSpec(), "30s")})
	ns := tenantNamespace(nc)
	c := infraEnv("infra-b").Client
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachineInstance{})).To(Succeed())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed(), "the VM is booting")

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "NestMachine released")
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, c, ns, nm)
	pods := &corev1.PodList{}
	g.Expect(c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{infrav1.NestMachineUIDLabel: string(nm.UID)})).To(Succeed())
	g.Expect(pods.Items).To(BeEmpty(), "launcher pod left behind")
}

// TestUnreachableInfraDuringDeleteReleasesAfterGraceAndSweepsOnReturn registers a second
// InfraCluster on the third Infra API server with a 2 s grace period, loses it during a delete, and
// brings it back.
func TestUnreachableInfraDuringDeleteReleasesAfterGraceAndSweepsOnReturn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	// A name of its own, so that the test can run again in one process (-count).
	ic := registerInfraCluster(t, uniqueName("infra-z"), topo.Infras[2], &infrav1.AllowedNamespaces{})
	before := ic.DeepCopy()
	ic.Spec.OrphanGracePeriodSeconds = ptr.To[int32](2)
	g.Expect(mgmt.Patch(ctx, ic, client.MergeFrom(before))).To(Succeed())
	cluster, nc := newTenant(t, ic.Name)
	markInfrastructureProvisioned(t, cluster)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: ic.Name, spec: vmSpec()})
	waitProvisioned(t, nm)
	ns, vmName := tenantNamespace(nc), kubevirt.VMName(nm)

	restartInfra := stopAPIServer(t, topo.Infras[2])
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsFalse(get(g, ic).(*infrav1.InfraCluster), infrav1.ReadyCondition)).To(BeTrue())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())

	// A provisioned machine stays provisioned while its Infra cluster is away; Ready says why not.
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.GetReason(nm, infrav1.ReadyCondition)).To(Equal(infrav1.InfraClusterUnavailableReason))
		g.Expect(conditions.IsTrue(nm, infrav1.VMProvisionedCondition)).To(BeTrue())
		g.Expect(nm.Status.Phase).To(Equal(infrav1.NestMachinePhaseRunning))
		g.Expect(ptr.Deref(nm.Status.Initialization.Provisioned, false)).To(BeTrue())
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())

	g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(nm), &infrav1.NestMachine{}))).To(BeTrue(), "released after the grace period")
		g.Expect(get(g, ic).(*infrav1.InfraCluster).Status.Orphans).To(ContainElement(And(
			HaveField("Kind", "VirtualMachine"), HaveField("Namespace", ns), HaveField("Name", vmName))))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())

	restartInfra()
	g.Eventually(func(g Gomega) {
		err := topo.Infras[2].Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: vmName}, &kubevirtv1.VirtualMachine{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the sweeper deletes the orphaned VM, got %v", err)
		g.Expect(get(g, ic).(*infrav1.InfraCluster).Status.Orphans).To(BeEmpty())
		// The sweeper deletes within a probe of the return; the VM is gone once the KubeVirt
		// simulator, whose watches reconnect with client-go's backoff (up to ~40 s after an outage),
		// has finished its deletion.
	}, 90*time.Second, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, topo.Infras[2].Client, ns, nm)
}

// A paused Cluster (clusterctl move pauses it) stops its NestMachines before they create anything;
// unpausing carries on.
func TestPausedClusterCreatesNothingUntilUnpaused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	before := cluster.DeepCopy()
	cluster.Spec.Paused = ptr.To(true)
	g.Expect(mgmt.Patch(ctx, cluster, client.MergeFrom(before))).To(Succeed())
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", spec: vmSpec()})

	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.IsTrue(nm, clusterv1.PausedCondition)).To(BeTrue(), "conditions: %+v", nm.Status.Conditions)
		g.Expect(conditions.GetMessage(nm, clusterv1.PausedCondition)).To(Equal("Cluster spec.paused is set to true"))
	}, eventuallyTimeout, 100*time.Millisecond).Should(Succeed())
	// The Paused condition was written by the reconcile that saw the NestMachine; a wrongly unpaused
	// reconcile would create the VM within the window.
	ns := tenantNamespace(nc)
	g.Consistently(func(g Gomega) {
		err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no VM while the Cluster is paused, got %v", err)
		g.Expect(get(g, nm).(*infrav1.NestMachine).Finalizers).To(BeEmpty(), "nothing done while paused, not even the finalizer")
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())

	before = cluster.DeepCopy()
	cluster.Spec.Paused = nil
	g.Expect(mgmt.Patch(ctx, cluster, client.MergeFrom(before))).To(Succeed())
	waitProvisioned(t, nm)
	g.Expect(conditions.IsFalse(nm, clusterv1.PausedCondition)).To(BeTrue())
}

// Bootstrap data of format ignition that is not a valid Ignition config is a condition on the
// NestMachine, never a VM that cannot boot; the condition does not quote the data.
func TestInvalidIgnitionIsAConditionAndNoVM(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, nc := provisionedTenant(t)
	_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", format: "ignition", spec: vmSpec(),
		data: []byte(`{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"relative/s3cr3t-token"}]}}`)})
	g.Eventually(func(g Gomega) {
		get(g, nm)
		g.Expect(conditions.GetReason(nm, infrav1.VMProvisionedCondition)).To(Equal(infrav1.InvalidBootstrapDataReason))
		g.Expect(conditions.GetMessage(nm, infrav1.BootstrapReadyCondition)).To(ContainSubstring("not a valid Ignition config"))
	}, eventuallyTimeout, 200*time.Millisecond).Should(Succeed())
	for _, c := range nm.Status.Conditions {
		g.Expect(c.Message).NotTo(ContainSubstring("s3cr3t"), "condition %s quotes the data", c.Type)
	}
	err := infraEnv("infra-a").Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no VM for invalid bootstrap data, got %v", err)
}

// The OpenShift installer's bootstrap machine is a fourth control-plane machine while the cluster
// forms. A tenant on one Infra cluster whose VMs may use three nodes gets its three masters on three
// nodes and the bootstrap VM beside one of them: the control-plane anti-affinity exempts it, where it
// used to need a fourth node (its VMI stayed unschedulable). Placed by the KubeVirt simulator's
// scheduler, which enforces required pod anti-affinity as kube-scheduler does.
func TestTheOpenShiftBootstrapVMDoesNotNeedAFourthInfraNode(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ensureThreeInfras(t)
	cluster, nc := newTenant(t, "infra-a") // the openshift flavor: one Infra cluster
	markInfrastructureProvisioned(t, cluster)
	infra := infraEnv("infra-a")

	// Three of infra-a's nodes, labelled for this test only, are all the VMs may use.
	nodeList := &corev1.NodeList{}
	g.Expect(infra.Client.List(ctx, nodeList)).To(Succeed())
	g.Expect(len(nodeList.Items)).To(BeNumerically(">", 3), "the test needs an Infra cluster with a fourth node the VMs could have used")
	pool := map[string]string{"nest.test/bootstrap-spread": cluster.Name}
	for i := range nodeList.Items[:3] {
		n := &nodeList.Items[i]
		before := n.DeepCopy()
		maps.Copy(n.Labels, pool)
		g.Expect(infra.Client.Patch(ctx, n, client.MergeFrom(before))).To(Succeed())
	}
	spec := vmSpec()
	spec.KubeVirt.Placement = &infrav1.Placement{NodeSelector: pool}

	var masters []*infrav1.NestMachine
	for range 3 {
		_, nm := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: *spec.DeepCopy()})
		masters = append(masters, nm)
	}
	_, bootstrap := newMachine(t, cluster, machineOpts{failureDomain: "infra-a", controlPlane: true, spec: *spec.DeepCopy(),
		labels: map[string]string{infrav1.BootstrapMachineLabel: ""}})
	for _, nm := range append(masters, bootstrap) {
		waitProvisioned(t, nm)
	}

	nodeOf := func(nm *infrav1.NestMachine) string {
		vmi := &kubevirtv1.VirtualMachineInstance{}
		g.Expect(infra.Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace(nc), Name: kubevirt.VMName(nm)}, vmi)).To(Succeed())
		g.Expect(vmi.Labels).To(HaveKeyWithValue(kubevirt.RoleLabel, kubevirt.RoleControlPlane), "every control-plane VM, the bootstrap one too, is behind the API Services")
		return vmi.Status.NodeName
	}
	masterNodes := map[string]bool{}
	for _, nm := range masters {
		masterNodes[nodeOf(nm)] = true
	}
	g.Expect(masterNodes).To(HaveLen(3), "the masters run one per node")
	g.Expect(masterNodes).To(HaveKey(nodeOf(bootstrap)), "the bootstrap VM shares a node with a master")
}
