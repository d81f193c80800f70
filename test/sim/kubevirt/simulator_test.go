package kubevirt_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
)

func TestContainerDiskVMRunsWithAddressNodeAndLauncherPod(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var mu sync.Mutex
	booted := map[types.UID]string{}
	ctx, ns, _ := setup(t, kubevirt.Options{ID: 100, SelfSchedule: true, OnRunning: func(_ context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
		mu.Lock()
		defer mu.Unlock()
		booted[vmi.UID] = vmi.Status.Interfaces[0].IP
		return nil
	}})
	infra := infraNodes(t, 2, nil)
	g.Expect(env.Client.Create(ctx, newVM(ns, "vm-a", selectorOf(infra)))).To(Succeed())

	var vmi *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		vmi = getVMI(ctx, ns, "vm-a")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running), "the VMI runs")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(vmi.Status.NodeName).To(BeElementOf(infra[0].Name, infra[1].Name), "the VMI is on one of the test's nodes")
	g.Expect(vmi.Labels).To(HaveKeyWithValue(kubevirtv1.NodeNameLabel, vmi.Status.NodeName))
	g.Expect(vmi.Labels).To(HaveKeyWithValue("app", "vm-a"), "labels come from the VM template")
	g.Expect(metav1.GetControllerOf(vmi)).NotTo(BeNil())
	g.Expect(metav1.GetControllerOf(vmi).Kind).To(Equal("VirtualMachine"))
	g.Expect(vmi.Finalizers).To(ContainElement(kubevirtv1.VirtualMachineInstanceFinalizer))
	g.Expect(vmi.Status.Interfaces).To(HaveLen(1))
	g.Expect(vmi.Status.Interfaces[0].Name).To(Equal("default"))
	g.Expect(vmi.Status.Interfaces[0].IP).To(MatchRegexp(`^10\.100\.\d+\.\d+$`), "addresses come from the simulator's 10.<ID>/16")
	g.Expect(vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceReady).Status).To(Equal(corev1.ConditionTrue))
	migratable := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable)
	g.Expect(migratable.Status).To(Equal(corev1.ConditionTrue), "a container disk with masquerade migrates: %+v", migratable)
	g.Expect(vmi.Status.GuestOSInfo.ID).To(Equal("ubuntu"))
	g.Eventually(func() map[types.UID]string {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(booted)
	}).WithTimeout(timeout).WithPolling(poll).Should(HaveKeyWithValue(vmi.UID, vmi.Status.Interfaces[0].IP), "OnRunning saw the running VMI")

	pods := launcherPods(ctx, g, ns, vmi)
	g.Expect(pods).To(HaveLen(1))
	pod := pods[0]
	g.Expect(pod.Name).To(MatchRegexp(`^virt-launcher-vm-a-[bcdfghjklmnpqrstvwxz2456789]{5}$`))
	g.Expect(pod.Labels).To(And(
		HaveKeyWithValue("kubevirt.io", "virt-launcher"),
		HaveKeyWithValue("vm.kubevirt.io/name", "vm-a"),
		HaveKeyWithValue("app", "vm-a"),
	))
	g.Expect(pod.Spec.NodeName).To(Equal(vmi.Status.NodeName))
	g.Expect(pod.Spec.NodeSelector).To(HaveKeyWithValue(kubevirt.SchedulableLabel, "true"))
	g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
	g.Expect(pod.Status.PodIP).To(Equal(vmi.Status.Interfaces[0].IP))
	requests := pod.Spec.Containers[0].Resources.Requests
	g.Expect(requests.Cpu().MilliValue()).To(Equal(int64(200)), "2 vCPUs at the default cpuAllocationRatio of 10")
	g.Expect(requests.Memory().Value()).To(BeNumerically(">", int64(4<<30)), "guest memory plus overhead")
	g.Expect(requests).To(HaveKey(kubevirt.KVMDevice))

	g.Eventually(func(g Gomega) {
		vm := getVM(ctx, ns, "vm-a")(g)
		g.Expect(vm.Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusRunning))
		g.Expect(vm.Status.Ready).To(BeTrue())
		g.Expect(vm.Status.Created).To(BeTrue())
		g.Expect(vm.Finalizers).To(ContainElement(kubevirtv1.VirtualMachineControllerFinalizer))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestDataVolumeTemplateImportsWithProgressThenVMRuns(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, ImportDelay: time.Second})
	infra := infraNodes(t, 1, nil)
	vmStates := record(t, ctx, &kubevirtv1.VirtualMachineList{}, ns, func(o client.Object) string {
		return string(o.(*kubevirtv1.VirtualMachine).Status.PrintableStatus)
	})
	dvStates := record(t, ctx, &cdiv1beta1.DataVolumeList{}, ns, func(o client.Object) string {
		dv := o.(*cdiv1beta1.DataVolume)
		return fmt.Sprintf("%s %s", dv.Status.Phase, dv.Status.Progress)
	})
	vm := withDataVolumeRoot(newVM(ns, "vm-dv", selectorOf(infra)), "vm-dv-root")
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())

	var vmi *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		vmi = getVMI(ctx, ns, "vm-dv")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
		g.Expect(getVM(ctx, ns, "vm-dv")(g).Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusRunning))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Eventually(func() []string { return dvStates.values("vm-dv-root") }).WithTimeout(timeout).WithPolling(poll).Should(
		Satisfy(func(seq []string) bool {
			return inOrder(seq, "ImportScheduled N/A", "ImportInProgress 25.00%", "Succeeded 100.0%") ||
				inOrder(seq, "ImportScheduled N/A", "ImportInProgress 50.00%", "Succeeded 100.0%") ||
				inOrder(seq, "ImportScheduled N/A", "ImportInProgress 75.00%", "Succeeded 100.0%")
		}), "the import is scheduled, reports progress and succeeds")
	g.Eventually(func() []string { return vmStates.values("vm-dv") }).WithTimeout(timeout).WithPolling(poll).Should(
		Satisfy(func(seq []string) bool { return inOrder(seq, "Provisioning", "Running") }),
		"the VM provisions while its disk imports, then runs")

	dv := &cdiv1beta1.DataVolume{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vm-dv-root"}, dv)).To(Succeed())
	g.Expect(dv.Status.Phase).To(Equal(cdiv1beta1.Succeeded))
	g.Expect(metav1.GetControllerOf(dv).Name).To(Equal("vm-dv"), "the VM owns its DataVolume")
	g.Expect(dv.Status.Conditions).To(ContainElement(And(HaveField("Type", cdiv1beta1.DataVolumeReady), HaveField("Status", corev1.ConditionTrue))))
	migratable := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable)
	g.Expect(migratable.Status).To(Equal(corev1.ConditionFalse), "a ReadWriteOnce disk does not migrate")
	g.Expect(migratable.Reason).To(Equal(kubevirtv1.VirtualMachineInstanceReasonDisksNotMigratable))
}

// withDataVolumeRoot replaces the root disk with a DataVolume imported over HTTP, ReadWriteOnce.
func withDataVolumeRoot(vm *kubevirtv1.VirtualMachine, dvName string) *kubevirtv1.VirtualMachine {
	vm.Spec.DataVolumeTemplates = []kubevirtv1.DataVolumeTemplateSpec{{
		ObjectMeta: metav1.ObjectMeta{Name: dvName},
		Spec: cdiv1beta1.DataVolumeSpec{
			Source: &cdiv1beta1.DataVolumeSource{HTTP: &cdiv1beta1.DataVolumeSourceHTTP{URL: "http://images.example/ubuntu-24.04.qcow2"}},
			Storage: &cdiv1beta1.StorageSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")}},
			},
		},
	}}
	vm.Spec.Template.Spec.Volumes = []kubevirtv1.Volume{{Name: "root", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: dvName}}}}
	return vm
}

func TestDeletingVMRemovesVMIPodDataVolumeAndOwnedSecret(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	var mu sync.Mutex
	var deleted []string
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true, OnDeleted: func(_ context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
		mu.Lock()
		defer mu.Unlock()
		deleted = append(deleted, vmi.Name)
		return nil
	}})
	infra := infraNodes(t, 1, nil)
	vm := withDataVolumeRoot(newVM(ns, "vm-del", selectorOf(infra)), "vm-del-root")
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	var vmi *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		vmi = getVMI(ctx, ns, "vm-del")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(launcherPods(ctx, g, ns, vmi)).To(HaveLen(1))

	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vm), vm)).To(Succeed())
	owned := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-del-userdata", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachine", Name: vm.Name, UID: vm.UID,
		}}},
		StringData: map[string]string{"userdata": "#cloud-config\n"},
	}
	unrelated := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns}}
	g.Expect(env.Client.Create(ctx, owned)).To(Succeed())
	g.Expect(env.Client.Create(ctx, unrelated)).To(Succeed())

	g.Expect(env.Client.Delete(ctx, vm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, obj := range []client.Object{
			&kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Name: "vm-del"}},
			&kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "vm-del"}},
			&cdiv1beta1.DataVolume{ObjectMeta: metav1.ObjectMeta{Name: "vm-del-root"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vm-del-userdata"}},
		} {
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: obj.GetName()}, obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s is gone, got %v", obj, obj.GetName(), err)
		}
		g.Expect(launcherPods(ctx, g, ns, vmi)).To(BeEmpty(), "the launcher pod is gone")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(unrelated), unrelated)).To(Succeed(), "a Secret nobody owns stays")
	mu.Lock()
	g.Expect(deleted).To(ContainElement("vm-del"), "OnDeleted saw the VMI go")
	mu.Unlock()
}

func TestForegroundDeletionOfVMCompletes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	vm := withDataVolumeRoot(newVM(ns, "vm-fg", selectorOf(infra)), "vm-fg-root")
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getVMI(ctx, ns, "vm-fg")(g).Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	g.Expect(env.Client.Delete(ctx, vm, client.PropagationPolicy(metav1.DeletePropagationForeground))).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(vm), &kubevirtv1.VirtualMachine{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the VM is gone once its dependents are, got %v", err)
		err = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vm-fg-root"}, &cdiv1beta1.DataVolume{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "its DataVolume is gone, got %v", err)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestSecretOwnedByAVMThatNeverExistedIsCollected(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{})
	dangling := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dangling", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: kubevirtv1.GroupVersion.String(), Kind: "VirtualMachine", Name: "ghost", UID: "00000000-0000-0000-0000-000000000001",
	}}}}
	g.Expect(env.Client.Create(ctx, dangling)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(dangling), &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// controlPlaneVM is a control-plane VM of tenant "acme" with the anti-affinity the provider renders.
func controlPlaneVM(ns, name, selector string) *kubevirtv1.VirtualMachine {
	vm := newVM(ns, name, selector)
	tenant := map[string]string{"cluster.x-k8s.io/cluster-name": "acme", "cluster.x-k8s.io/role": "control-plane"}
	for k, v := range tenant {
		vm.Spec.Template.ObjectMeta.Labels[k] = v
	}
	vm.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: tenant},
			TopologyKey:   corev1.LabelHostname,
		}},
	}}
	return vm
}

func TestSelfSchedulingSpreadsControlPlaneVMsAndLeavesTheFourthPendingUntilANodeJoins(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 3, nil)
	sel := selectorOf(infra)
	for i := range 4 {
		g.Expect(env.Client.Create(ctx, controlPlaneVM(ns, fmt.Sprintf("cp-%d", i), sel))).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		vmis := &kubevirtv1.VirtualMachineInstanceList{}
		g.Expect(env.Client.List(ctx, vmis, client.InNamespace(ns))).To(Succeed())
		g.Expect(vmis.Items).To(HaveLen(4))
		running, pending := map[string]string{}, 0
		for _, vmi := range vmis.Items {
			switch vmi.Status.Phase {
			case kubevirtv1.Running:
				running[vmi.Name] = vmi.Status.NodeName
			case kubevirtv1.Scheduling:
				c := vmiCondition(&vmi, "PodScheduled")
				g.Expect(c).NotTo(BeNil(), "a pending VMI says why")
				g.Expect(c.Reason).To(Equal("Unschedulable"))
				// Other tests' nodes count too: they are the same cluster's.
				g.Expect(c.Message).To(MatchRegexp(`^0/\d+ nodes are available: .*3 node\(s\) didn't match pod anti-affinity rules`))
				pending++
			}
		}
		g.Expect(running).To(HaveLen(3))
		g.Expect(pending).To(Equal(1))
		nodesUsed := map[string]bool{}
		for _, n := range running {
			nodesUsed[n] = true
		}
		g.Expect(nodesUsed).To(HaveLen(3), "one control-plane VM per node")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	var pendingVM string
	g.Eventually(func(g Gomega) {
		vms := &kubevirtv1.VirtualMachineList{}
		g.Expect(env.Client.List(ctx, vms, client.InNamespace(ns))).To(Succeed())
		for _, vm := range vms.Items {
			if vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusUnschedulable {
				pendingVM = vm.Name
			}
		}
		g.Expect(pendingVM).NotTo(BeEmpty(), "the fourth VM is ErrorUnschedulable")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	// A fourth node: the pending VM gets it, without anything else poking the simulator.
	extra := extraNode(t, sel)
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, pendingVM)(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
		g.Expect(vmi.Status.NodeName).To(Equal(extra))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestHaltedStopsTheVMAndAlwaysStartsItAgain(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	vm := newVM(ns, "vm-halt", selectorOf(infra))
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	var first types.UID
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-halt")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
		first = vmi.UID
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	setRunStrategy(ctx, g, vm, kubevirtv1.RunStrategyHalted)
	g.Eventually(func(g Gomega) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(vm), &kubevirtv1.VirtualMachineInstance{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the VMI is gone, got %v", err)
		got := getVM(ctx, ns, "vm-halt")(g)
		g.Expect(got.Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusStopped))
		g.Expect(got.Status.Ready).To(BeFalse())
		g.Expect(got.Status.Created).To(BeFalse())
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

	setRunStrategy(ctx, g, vm, kubevirtv1.RunStrategyAlways)
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-halt")(g)
		g.Expect(vmi.UID).NotTo(Equal(first), "a new VMI")
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func setRunStrategy(ctx context.Context, g Gomega, vm *kubevirtv1.VirtualMachine, s kubevirtv1.VirtualMachineRunStrategy) {
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"runStrategy":%q}}`, s)))
	g.Expect(env.Client.Patch(ctx, vm, patch)).To(Succeed())
}

func TestInjectedImagePullFailureShowsUntilTheAnnotationGoes(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	vm := newVM(ns, "vm-pull", selectorOf(infra))
	vm.Annotations = map[string]string{kubevirt.FailAnnotation: kubevirt.FailErrImagePull}
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getVM(ctx, ns, "vm-pull")(g).Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusErrImagePull))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	vmi := getVMI(ctx, ns, "vm-pull")(g)
	g.Expect(vmi.Status.Phase).NotTo(Equal(kubevirtv1.Running))
	pods := launcherPods(ctx, g, ns, vmi)
	g.Expect(pods).To(HaveLen(1))
	g.Expect(pods[0].Status.ContainerStatuses[0].State.Waiting.Reason).To(Equal("ErrImagePull"))

	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, kubevirt.FailAnnotation)))
	g.Expect(env.Client.Patch(ctx, vm, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getVM(ctx, ns, "vm-pull")(g).Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusRunning))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestInjectedDataVolumeErrorKeepsTheVMFromStarting(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	vm := withDataVolumeRoot(newVM(ns, "vm-dverr", selectorOf(infra)), "vm-dverr-root")
	vm.Annotations = map[string]string{kubevirt.FailAnnotation: kubevirt.FailDataVolumeError}
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getVM(ctx, ns, "vm-dverr")(g).Status.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusDataVolumeError))
		dv := &cdiv1beta1.DataVolume{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "vm-dverr-root"}, dv)).To(Succeed())
		g.Expect(dv.Status.Phase).To(Equal(cdiv1beta1.Failed))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	err := env.Client.Get(ctx, client.ObjectKeyFromObject(vm), &kubevirtv1.VirtualMachineInstance{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no VMI without its disk, got %v", err)
}

func TestBootDelayHoldsTheVMIBeforeRunning(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	const delay = 2 * time.Second
	vm := newVM(ns, "vm-slow", selectorOf(infra))
	vm.Annotations = map[string]string{kubevirt.BootDelayAnnotation: delay.String()}
	created := time.Now()
	g.Expect(env.Client.Create(ctx, vm)).To(Succeed())
	sawBound := false
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-slow")(g)
		if vmi.Status.Phase == kubevirtv1.Running && time.Since(created) < delay {
			StopTrying(fmt.Sprintf("the VMI ran %v after its VM was created, before its boot delay", time.Since(created))).Now()
		}
		if pods := launcherPods(ctx, g, ns, vmi); len(pods) == 1 && pods[0].Spec.NodeName != "" && vmi.Status.Phase == kubevirtv1.Scheduling {
			sawBound = true
		}
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(sawBound).To(BeTrue(), "the VMI waited in Scheduling with its launcher pod bound")
}

func TestWithoutSelfScheduleTheVMWaitsForAScheduler(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{})
	infra := infraNodes(t, 1, nil)
	g.Expect(env.Client.Create(ctx, newVM(ns, "vm-ext", selectorOf(infra)))).To(Succeed())
	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-ext")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Scheduling))
		pods := launcherPods(ctx, g, ns, vmi)
		g.Expect(pods).To(HaveLen(1))
		pod = pods[0]
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	g.Expect(pod.Spec.NodeName).To(BeEmpty(), "nobody bound the pod")

	// Play kube-scheduler.
	binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns}, Target: corev1.ObjectReference{Kind: "Node", Name: infra[0].Name}}
	g.Expect(env.Client.SubResource("binding").Create(ctx, &pod, binding)).To(Succeed())
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-ext")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
		g.Expect(vmi.Status.NodeName).To(Equal(infra[0].Name))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

func TestManyVMsRunThroughOneSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("300 VMs")
	}
	const vms, nodeCount = 300, 50
	g := NewWithT(t)
	var booted atomic.Int32
	// The simulator watches every namespace: VMs that other tests (or an earlier run of this one,
	// with -count) left behind must not count.
	var ours atomic.Value
	ours.Store("")
	// Not parallel: its simulator watches every namespace.
	ctx, ns, _ := setupAllNamespaces(t, kubevirt.Options{SelfSchedule: true, Concurrency: 16, OnRunning: func(_ context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
		if vmi.Namespace == ours.Load().(string) {
			booted.Add(1)
		}
		return nil
	}})
	ours.Store(ns)
	infra := infraNodes(t, nodeCount, nil)
	sel := selectorOf(infra)
	cpuBefore := processCPU()
	start := time.Now()
	errs := make(chan error, vms)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < vms; i += 8 {
				if err := env.Client.Create(ctx, newVM(ns, fmt.Sprintf("vm-%03d", i), sel)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	created := time.Since(start)
	// Count boots through the hook, not by listing 300 VMs again and again: the test's own decoding
	// would be counted against the simulator.
	g.Eventually(booted.Load).WithTimeout(2*time.Minute).WithPolling(10*time.Millisecond).Should(BeEquivalentTo(vms), "every VMI runs")
	g.Eventually(func(g Gomega) {
		list := &kubevirtv1.VirtualMachineList{}
		g.Expect(env.Client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		running := 0
		for _, vm := range list.Items {
			if vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusRunning {
				running++
			}
		}
		g.Expect(running).To(Equal(vms), "every VM runs")
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	elapsed := time.Since(start)
	cpu := processCPU() - cpuBefore
	// The API server, not the simulator, sets the pace on a shared machine: the CPU this process (the
	// simulator, plus the test's own client) spent per VM says how many VMs per second one core of
	// simulator could drive.
	t.Logf("%d VMs over %d nodes: created in %v, all Running after %v (%.0f VMs/s end to end); test process CPU %v (%v per VM, about %.0f VMs/s per core)",
		vms, nodeCount, created.Round(time.Millisecond), elapsed.Round(time.Millisecond), float64(vms)/elapsed.Seconds(),
		cpu.Round(time.Millisecond), (cpu / vms).Round(10*time.Microsecond), float64(vms)/cpu.Seconds())

	pods := &corev1.PodList{}
	g.Expect(env.Client.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
	perNode := map[string]int64{}
	for _, p := range pods.Items {
		perNode[p.Spec.NodeName] += p.Spec.Containers[0].Resources.Requests.Memory().Value()
	}
	for node, mem := range perNode {
		g.Expect(mem).To(BeNumerically("<=", int64(128<<30)), "node %s is not overcommitted", node)
	}
	ips := map[string]bool{}
	for _, p := range pods.Items {
		g.Expect(ips).NotTo(HaveKey(p.Status.PodIP), "addresses are unique")
		ips[p.Status.PodIP] = true
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestLosingTheLauncherPodFailsTheVMIAndAlwaysRestartsIt(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ctx, ns, _ := setup(t, kubevirt.Options{SelfSchedule: true})
	infra := infraNodes(t, 1, nil)
	g.Expect(env.Client.Create(ctx, newVM(ns, "vm-evicted", selectorOf(infra)))).To(Succeed())
	var first *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		first = getVMI(ctx, ns, "vm-evicted")(g)
		g.Expect(first.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	pods := launcherPods(ctx, g, ns, first)
	g.Expect(pods).To(HaveLen(1))

	// A drain or an eviction: a graceful delete, which no kubelet finishes here but the simulator.
	g.Expect(env.Client.Delete(ctx, &pods[0])).To(Succeed())
	g.Eventually(func(g Gomega) {
		vmi := getVMI(ctx, ns, "vm-evicted")(g)
		g.Expect(vmi.UID).NotTo(Equal(first.UID), "the failed VMI was replaced")
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
		g.Expect(launcherPods(ctx, g, ns, first)).To(BeEmpty(), "the old launcher pod is gone")
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
}

// TestARestartedSimulatorLeavesRunningVMIsRunning: virt-handler restarting does not boot the guests
// of its node again. A simulator that starts over a VMI already Running (the sandbox restarts its
// Infra clusters' simulators) must not count the boot delay from its own start and put the VMI
// back in Scheduling meanwhile: the provider would see its machine's VM stop running.
func TestARestartedSimulatorLeavesRunningVMIsRunning(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	const delay = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kv-"}}
	g.Expect(env.Client.Create(ctx, ns)).To(Succeed())
	opts := kubevirt.Options{SelfSchedule: true, BootDelay: delay, Namespaces: []string{ns.Name}, ID: uint8(simIDs.Add(1))}
	run := func(ctx context.Context) *kubevirt.Simulator {
		sim, err := kubevirt.Run(ctx, env.Config, opts)
		g.Expect(err).NotTo(HaveOccurred())
		return sim
	}
	firstCtx, stopFirst := context.WithCancel(ctx)
	first := run(firstCtx)
	infra := infraNodes(t, 1, nil)
	g.Expect(env.Client.Create(ctx, newVM(ns.Name, "vm-restart", selectorOf(infra)))).To(Succeed())
	var before *kubevirtv1.VirtualMachineInstance
	g.Eventually(func(g Gomega) {
		before = getVMI(ctx, ns.Name, "vm-restart")(g)
		g.Expect(before.Status.Phase).To(Equal(kubevirtv1.Running))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	stopFirst()
	<-first.Done()
	g.Expect(first.Err()).NotTo(HaveOccurred())

	second := run(ctx)
	g.Consistently(func(g Gomega) {
		vmi := getVMI(ctx, ns.Name, "vm-restart")(g)
		g.Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running), "the restarted simulator took the VMI out of Running")
		g.Expect(vmi.UID).To(Equal(before.UID))
		g.Expect(vmi.Status.NodeName).To(Equal(before.Status.NodeName))
	}).WithTimeout(3 * delay).WithPolling(poll).Should(Succeed())
	cancel()
	<-second.Done()
	g.Expect(second.Err()).NotTo(HaveOccurred())
}
