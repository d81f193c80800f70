package kubevirt

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
)

func TestLiveMigratable(t *testing.T) {
	rwx := func(kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool) {
		return []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, true
	}
	rwo := func(kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool) {
		return []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, true
	}
	unknown := func(kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool) { return nil, false }
	containerDisk := kubevirtv1.Volume{Name: "root", VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: "img"}}}
	cloudInit := kubevirtv1.Volume{Name: "ci", VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{}}}
	dataVolume := kubevirtv1.Volume{Name: "root", VolumeSource: kubevirtv1.VolumeSource{DataVolume: &kubevirtv1.DataVolumeSource{Name: "dv"}}}
	masquerade := kubevirtv1.Interface{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}}}
	bridge := kubevirtv1.Interface{Name: "default", InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Bridge: &kubevirtv1.InterfaceBridge{}}}

	cases := []struct {
		name       string
		volumes    []kubevirtv1.Volume
		iface      kubevirtv1.Interface
		modes      AccessModes
		wantStatus corev1.ConditionStatus
		wantReason string
	}{
		{"container disk and cloud-init", []kubevirtv1.Volume{containerDisk, cloudInit}, masquerade, unknown, corev1.ConditionTrue, ""},
		{"ReadWriteMany DataVolume", []kubevirtv1.Volume{dataVolume}, masquerade, rwx, corev1.ConditionTrue, ""},
		{"ReadWriteOnce DataVolume", []kubevirtv1.Volume{dataVolume}, masquerade, rwo, corev1.ConditionFalse, kubevirtv1.VirtualMachineInstanceReasonDisksNotMigratable},
		{"DataVolume of unknown access", []kubevirtv1.Volume{dataVolume}, masquerade, unknown, corev1.ConditionFalse, kubevirtv1.VirtualMachineInstanceReasonDisksNotMigratable},
		{"bridge on the pod network", []kubevirtv1.Volume{containerDisk}, bridge, unknown, corev1.ConditionFalse, kubevirtv1.VirtualMachineInstanceReasonInterfaceNotMigratable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &kubevirtv1.VirtualMachineInstanceSpec{
				Volumes:  tc.volumes,
				Networks: []kubevirtv1.Network{*kubevirtv1.DefaultPodNetwork()},
				Domain:   kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Interfaces: []kubevirtv1.Interface{tc.iface}}},
			}
			c := LiveMigratable(s, tc.modes)
			g := NewWithT(t)
			g.Expect(c.Type).To(Equal(kubevirtv1.VirtualMachineInstanceIsMigratable))
			g.Expect(c.Status).To(Equal(tc.wantStatus))
			g.Expect(c.Reason).To(Equal(tc.wantReason))
		})
	}
}

func TestDataVolumeProgressWalksScheduledInProgressSucceeded(t *testing.T) {
	const delay = 4 * time.Second
	cases := []struct {
		transfer transfer
		elapsed  time.Duration
		phase    cdiv1beta1.DataVolumePhase
		progress cdiv1beta1.DataVolumeProgress
		next     time.Duration
	}{
		{transferImport, 0, cdiv1beta1.ImportScheduled, "N/A", time.Second},
		{transferImport, 1500 * time.Millisecond, cdiv1beta1.ImportInProgress, "25.00%", 500 * time.Millisecond},
		{transferImport, 3 * time.Second, cdiv1beta1.ImportInProgress, "75.00%", time.Second},
		{transferImport, delay, cdiv1beta1.Succeeded, "100.0%", 0},
		{transferClone, 2 * time.Second, cdiv1beta1.CloneInProgress, "50.00%", time.Second},
		{transferBlank, 0, cdiv1beta1.Succeeded, "100.0%", 0},
		{transferUpload, time.Hour, cdiv1beta1.UploadReady, "N/A", 0},
	}
	for _, tc := range cases {
		phase, progress, next := dataVolumeProgress(tc.transfer, tc.elapsed, delay)
		g := NewWithT(t)
		g.Expect(phase).To(Equal(tc.phase), "transfer %d after %v", tc.transfer, tc.elapsed)
		g.Expect(progress).To(Equal(tc.progress))
		g.Expect(next).To(Equal(tc.next))
	}
	phase, _, _ := dataVolumeProgress(transferImport, 0, 0)
	NewWithT(t).Expect(phase).To(Equal(cdiv1beta1.Succeeded), "no delay, no waiting")
}

func TestTransferOfDataVolumeSources(t *testing.T) {
	g := NewWithT(t)
	g.Expect(transferOf(&cdiv1beta1.DataVolumeSpec{Source: &cdiv1beta1.DataVolumeSource{HTTP: &cdiv1beta1.DataVolumeSourceHTTP{}}})).To(Equal(transferImport))
	g.Expect(transferOf(&cdiv1beta1.DataVolumeSpec{Source: &cdiv1beta1.DataVolumeSource{Registry: &cdiv1beta1.DataVolumeSourceRegistry{}}})).To(Equal(transferImport))
	g.Expect(transferOf(&cdiv1beta1.DataVolumeSpec{Source: &cdiv1beta1.DataVolumeSource{PVC: &cdiv1beta1.DataVolumeSourcePVC{}}})).To(Equal(transferClone))
	g.Expect(transferOf(&cdiv1beta1.DataVolumeSpec{SourceRef: &cdiv1beta1.DataVolumeSourceRef{Kind: "DataSource"}})).To(Equal(transferClone))
	g.Expect(transferOf(&cdiv1beta1.DataVolumeSpec{Source: &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}}})).To(Equal(transferBlank))
}

func TestPrintableStatus(t *testing.T) {
	now := metav1.Now()
	vm := func(s kubevirtv1.VirtualMachineRunStrategy) *kubevirtv1.VirtualMachine {
		return &kubevirtv1.VirtualMachine{Spec: kubevirtv1.VirtualMachineSpec{RunStrategy: ptr.To(s)}}
	}
	vmi := func(phase kubevirtv1.VirtualMachineInstancePhase) *kubevirtv1.VirtualMachineInstance {
		return &kubevirtv1.VirtualMachineInstance{Status: kubevirtv1.VirtualMachineInstanceStatus{Phase: phase}}
	}
	deleting := vm(kubevirtv1.RunStrategyAlways)
	deleting.DeletionTimestamp = &now
	stopping := vmi(kubevirtv1.Running)
	stopping.DeletionTimestamp = &now
	unschedulable := vmi(kubevirtv1.Scheduling)
	unschedulable.Status.Conditions = []kubevirtv1.VirtualMachineInstanceCondition{{Type: "PodScheduled", Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
	moving := vmi(kubevirtv1.Running)
	moving.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{StartTimestamp: &now}
	moved := vmi(kubevirtv1.Running)
	moved.Status.MigrationState = &kubevirtv1.VirtualMachineInstanceMigrationState{StartTimestamp: &now, EndTimestamp: &now, Completed: true}
	pulling := &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: ComputeContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}},
	}}}}

	cases := []struct {
		name string
		obs  vmObservation
		want kubevirtv1.VirtualMachinePrintableStatus
	}{
		{"halted without VMI", vmObservation{vm: vm(kubevirtv1.RunStrategyHalted), dataVolumesReady: true}, kubevirtv1.VirtualMachineStatusStopped},
		{"disks importing", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways)}, kubevirtv1.VirtualMachineStatusProvisioning},
		{"disk failed", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), dataVolumeError: "dv"}, kubevirtv1.VirtualMachineStatusDataVolumeError},
		{"claim missing", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), dataVolumesReady: true, missingPVC: "pvc"}, kubevirtv1.VirtualMachineStatusPvcNotFound},
		{"about to start", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), dataVolumesReady: true}, kubevirtv1.VirtualMachineStatusStarting},
		{"scheduling", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: vmi(kubevirtv1.Scheduling)}, kubevirtv1.VirtualMachineStatusStarting},
		{"unschedulable", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: unschedulable}, kubevirtv1.VirtualMachineStatusUnschedulable},
		{"image pull", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: vmi(kubevirtv1.Scheduling), pod: pulling}, kubevirtv1.VirtualMachineStatusImagePullBackOff},
		{"running", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: vmi(kubevirtv1.Running)}, kubevirtv1.VirtualMachineStatusRunning},
		{"migrating", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: moving}, kubevirtv1.VirtualMachineStatusMigrating},
		{"migrated", vmObservation{vm: vm(kubevirtv1.RunStrategyAlways), vmi: moved}, kubevirtv1.VirtualMachineStatusRunning},
		{"VMI going", vmObservation{vm: vm(kubevirtv1.RunStrategyHalted), vmi: stopping}, kubevirtv1.VirtualMachineStatusStopping},
		{"VM going", vmObservation{vm: deleting, vmi: vmi(kubevirtv1.Running)}, kubevirtv1.VirtualMachineStatusTerminating},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(printableStatus(tc.obs)).To(Equal(tc.want))
		})
	}
}

func TestVMStatusSettlesAndFlagsATemplateChange(t *testing.T) {
	g := NewWithT(t)
	now := metav1.NewTime(time.Unix(1000, 0))
	vm := &kubevirtv1.VirtualMachine{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(kubevirtv1.RunStrategyAlways),
			Template:    &kubevirtv1.VirtualMachineInstanceTemplateSpec{Spec: kubevirtv1.VirtualMachineInstanceSpec{Hostname: "a"}},
		},
	}
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{kubevirtv1.VirtualMachineGenerationAnnotation: "3"}},
		Spec:       kubevirtv1.VirtualMachineInstanceSpec{Hostname: "a"},
		Status: kubevirtv1.VirtualMachineInstanceStatus{Phase: kubevirtv1.Running, Conditions: []kubevirtv1.VirtualMachineInstanceCondition{{
			Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue,
		}}},
	}
	st := vmStatus(vmObservation{vm: vm, vmi: vmi, dataVolumesReady: true}, 3, now)
	g.Expect(st.Ready).To(BeTrue())
	g.Expect(st.Created).To(BeTrue())
	g.Expect(st.PrintableStatus).To(Equal(kubevirtv1.VirtualMachineStatusRunning))
	g.Expect(st.ObservedGeneration).To(Equal(int64(3)))
	g.Expect(st.DesiredGeneration).To(Equal(int64(3)))

	vm.Status = st
	later := metav1.NewTime(now.Add(time.Minute))
	g.Expect(vmStatus(vmObservation{vm: vm, vmi: vmi, dataVolumesReady: true}, 3, later)).To(Equal(st), "nothing changed: same status, same transition times")
	g.Expect(vmStatus(vmObservation{vm: vm, vmi: vmi, dataVolumesReady: true}, 0, later).DesiredGeneration).To(Equal(int64(3)), "0 keeps the recorded generation")

	vm.Spec.Template.Spec.Hostname = "b"
	st = vmStatus(vmObservation{vm: vm, vmi: vmi, dataVolumesReady: true}, 4, later)
	g.Expect(st.Conditions).To(ContainElement(HaveField("Type", kubevirtv1.VirtualMachineRestartRequired)), "the running VMI has the old template")
}

func TestVMIInterfacesGiveThePodNetworkThePodAddress(t *testing.T) {
	g := NewWithT(t)
	s := &kubevirtv1.VirtualMachineInstanceSpec{
		Networks: []kubevirtv1.Network{
			*kubevirtv1.DefaultPodNetwork(),
			{Name: "storage", NetworkSource: kubevirtv1.NetworkSource{Multus: &kubevirtv1.MultusNetwork{NetworkName: "storage"}}},
		},
		Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{Interfaces: []kubevirtv1.Interface{{Name: "storage", MacAddress: "02:aa:bb:cc:dd:ee"}}}},
	}
	ifaces, err := vmiInterfaces(s, "10.1.0.5", func() (string, error) { return "10.129.0.1", nil })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ifaces).To(HaveLen(2))
	g.Expect(ifaces[0].Name).To(Equal("default"))
	g.Expect(ifaces[0].IP).To(Equal("10.1.0.5"))
	g.Expect(ifaces[0].MAC).To(Equal("02:00:0a:01:00:05"))
	g.Expect(ifaces[1].IP).To(Equal("10.129.0.1"))
	g.Expect(ifaces[1].MAC).To(Equal("02:aa:bb:cc:dd:ee"), "a MAC from the spec is kept")

	ifaces, err = vmiInterfaces(&kubevirtv1.VirtualMachineInstanceSpec{}, "10.1.0.6", nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ifaces).To(HaveLen(1), "no networks listed: KubeVirt attaches the pod network")
	g.Expect(ifaces[0].IP).To(Equal("10.1.0.6"))
}
