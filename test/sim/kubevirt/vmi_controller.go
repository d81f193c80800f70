package kubevirt

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// stageBound is the clock stage "launcher pod bound to a node", from which BootDelay runs.
const stageBound = "bound"

// setupVMIController wires the part of the simulator that plays virt-controller's VMI controller,
// virt-handler and the kubelet: launcher pod, scheduling (when SelfSchedule), boot, deletion.
func (s *Simulator) setupVMIController(mgr manager.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("kubevirt-vmi").
		For(&kubevirtv1.VirtualMachineInstance{}).
		Owns(&corev1.Pod{}).
		// Fault-injection and delay annotations live on the VM.
		Watches(&kubevirtv1.VirtualMachine{}, handler.EnqueueRequestsFromMapFunc(sameName),
			builder.WithPredicates(predicate.AnnotationChangedPredicate{})).
		WithOptions(simkit.ControllerOptions(s.opts.Concurrency))
	if s.sched != nil {
		b = b.Watches(&corev1.Node{}, s.sched.nodeHandler(waiterVMI)).
			Watches(&corev1.Pod{}, s.sched.podFreedHandler(waiterVMI))
	}
	return b.Complete(reconcile.Func(s.reconcileVMI))
}

func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
}

func (s *Simulator) reconcileVMI(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := s.client.Get(ctx, req.NamespacedName, vmi); err != nil {
		if apierrors.IsNotFound(err) {
			if s.sched != nil {
				s.sched.forget(waiterVMI, req.NamespacedName)
			}
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if vmi.DeletionTimestamp != nil {
		return reconcile.Result{}, s.finalizeVMI(ctx, vmi)
	}
	if !controllerutil.ContainsFinalizer(vmi, kubevirtv1.VirtualMachineInstanceFinalizer) {
		orig := vmi.DeepCopy()
		controllerutil.AddFinalizer(vmi, kubevirtv1.VirtualMachineInstanceFinalizer)
		if err := simkit.Patch(ctx, s.client, orig, vmi, true); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the VMI finalizer: %w", err)
		}
		// The status is written over the resourceVersion read: carry on from the update's event.
		return reconcile.Result{}, nil
	}
	if vmiFinished(vmi) {
		return reconcile.Result{}, nil
	}
	annotated := []client.Object{vmi}
	if vm := s.ownerVM(ctx, vmi); vm != nil {
		annotated = append(annotated, vm)
	}

	pod, err := s.launcherPodOf(ctx, vmi)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := metav1.Now()
	switch {
	case pod == nil && (vmi.Status.Phase == kubevirtv1.Scheduled || vmi.Status.Phase == kubevirtv1.Running):
		// The pod cache can lag behind the VMI cache (a loaded machine, an Infra API server that came
		// back and whose watches reconnect one by one): the pod is gone only when the API server says
		// so. Failing the VMI on the cache's word restarts a running VM.
		if gone, err := s.launcherPodGone(ctx, vmi); err != nil || !gone {
			return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, err
		}
		return reconcile.Result{}, s.failVMI(ctx, vmi, kubevirtv1.PodNotExistsReason, "virt-launcher pod has disappeared")
	case pod == nil:
		// Create the launcher and carry on with it: with SelfSchedule and no delays the VMI runs in
		// this one reconcile.
		if pod, err = s.createLauncherPod(ctx, vmi); err != nil || pod == nil {
			return reconcile.Result{}, err
		}
	case pod.DeletionTimestamp != nil:
		// No kubelet runs the pod: finish its graceful deletion the way the kubelet would once the guest
		// has shut down. The VMI does not survive its pod.
		if err := s.forceDelete(ctx, pod); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, s.failVMI(ctx, vmi, kubevirtv1.PodTerminatingReason, "virt-launcher pod is terminating")
	case pod.Status.Phase == corev1.PodFailed:
		return reconcile.Result{}, s.failVMI(ctx, vmi, "PodFailed", "virt-launcher pod failed")
	case pod.Status.Phase == corev1.PodSucceeded:
		// The simulator ends a launcher only once its VM has migrated away; the VMI in the cache can be
		// older than that move. Starting the pod again would run the VM twice.
		return reconcile.Result{}, nil
	}

	if pod.Spec.NodeName == "" {
		upd := vmi.DeepCopy()
		setVMIPhase(&upd.Status, kubevirtv1.Scheduling, now)
		if s.sched == nil {
			// A real scheduler places the pod; KubeVirt mirrors its PodScheduled=False condition.
			if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse {
				setVMICondition(&upd.Status, kubevirtv1.VirtualMachineInstanceCondition{
					Type: kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), Status: corev1.ConditionFalse, Reason: c.Reason, Message: c.Message,
				}, now)
			}
			return reconcile.Result{}, s.writeVMI(ctx, vmi, upd)
		}
		node, why, err := s.sched.schedule(ctx, pod, waiterVMI, req.NamespacedName)
		if err != nil {
			return reconcile.Result{}, err
		}
		if node == "" {
			if err := s.setPodUnschedulable(ctx, pod, why); err != nil {
				return reconcile.Result{}, err
			}
			setVMICondition(&upd.Status, kubevirtv1.VirtualMachineInstanceCondition{
				Type: kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: why,
			}, now)
			ctrl.LoggerFrom(ctx).V(1).Info("Launcher pod fits on no node", "pod", klog.KObj(pod), "why", why)
			return reconcile.Result{}, s.writeVMI(ctx, vmi, upd)
		}
		pod = pod.DeepCopy()
		pod.Spec.NodeName = node
	}

	// A VMI that runs on its pod's node has booted: a simulator started after that (virt-handler
	// restarted) neither pulls the image again nor counts the boot delay from its own start.
	if booted := vmi.Status.Phase == kubevirtv1.Running && vmi.Status.NodeName == pod.Spec.NodeName; !booted {
		waiting := vmi.DeepCopy()
		setVMIPhase(&waiting.Status, kubevirtv1.Scheduling, now)
		removeVMICondition(&waiting.Status, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled))
		if failure := failureOf(annotated...); failure == FailErrImagePull || failure == FailImagePullBackOff {
			if err := s.setPodWaiting(ctx, pod, failure); err != nil {
				return reconcile.Result{}, err
			}
			return reconcile.Result{}, s.writeVMI(ctx, vmi, waiting)
		}
		delay := delayFrom(BootDelayAnnotation, s.opts.BootDelay, annotated...)
		if left := s.clock.Remaining(vmi.UID, stageBound, delay); left > 0 {
			return reconcile.Result{RequeueAfter: left}, s.writeVMI(ctx, vmi, waiting)
		}
	}

	podIP, err := s.runPod(ctx, pod)
	if err != nil {
		return reconcile.Result{}, err
	}
	upd, err := s.runningStatus(ctx, vmi, pod, podIP, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := s.writeVMI(ctx, vmi, upd); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, s.notifyRunning(ctx, upd)
}

// ownerVM is the VM that controls vmi, from the cache, or nil.
func (s *Simulator) ownerVM(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) *kubevirtv1.VirtualMachine {
	ref := metav1.GetControllerOf(vmi)
	if ref == nil || ref.Kind != kubevirtv1.VirtualMachineGroupVersionKind.Kind {
		return nil
	}
	vm := &kubevirtv1.VirtualMachine{}
	// Read only: its annotations.
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: vmi.Namespace, Name: ref.Name}, vm, client.UnsafeDisableDeepCopy); err != nil || vm.UID != ref.UID {
		return nil
	}
	return vm
}

// launcherPodOf is vmi's current launcher pod (see CurrentLauncherPodName) from the cache, or nil. After
// a migration the VMI has other launcher pods: the source's, finished, and failed migrations' targets.
func (s *Simulator) launcherPodOf(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := s.client.Get(ctx, types.NamespacedName{Namespace: vmi.Namespace, Name: CurrentLauncherPodName(vmi)}, pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting the launcher pod of VMI %s: %w", vmi.Name, err)
	case !isLauncher(pod) || pod.Labels[kubevirtv1.CreatedByLabel] != string(vmi.UID):
		return nil, nil
	}
	return pod, nil
}

// launcherPodGone asks the API server whether vmi's current launcher pod is gone.
func (s *Simulator) launcherPodGone(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (bool, error) {
	pod := &metav1.PartialObjectMetadata{}
	pod.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: vmi.Namespace, Name: CurrentLauncherPodName(vmi)}, pod)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("getting the launcher pod of VMI %s: %w", vmi.Name, err)
	}
	return !isLauncher(pod) || pod.Labels[kubevirtv1.CreatedByLabel] != string(vmi.UID), nil
}

// createLauncherPod creates vmi's launcher pod and returns it, or nil when it exists already (the cache
// has not caught up; its event will come).
func (s *Simulator) createLauncherPod(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) (*corev1.Pod, error) {
	pod := LauncherPod(vmi, s.opts.LauncherImage)
	if err := s.client.Create(ctx, pod); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("creating launcher pod %s: %w", pod.Name, err)
	}
	return pod, nil
}

func (s *Simulator) forceDelete(ctx context.Context, pod *corev1.Pod) error {
	err := s.client.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &pod.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting launcher pod %s: %w", pod.Name, err)
	}
	return nil
}

func (s *Simulator) failVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, reason, msg string) error {
	upd := vmi.DeepCopy()
	now := metav1.Now()
	setVMIPhase(&upd.Status, kubevirtv1.Failed, now)
	setVMICondition(&upd.Status, kubevirtv1.VirtualMachineInstanceCondition{
		Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionFalse, Reason: reason, Message: msg,
	}, now)
	return s.writeVMI(ctx, vmi, upd)
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// setPodUnschedulable records kube-scheduler's verdict on the pod.
func (s *Simulator) setPodUnschedulable(ctx context.Context, pod *corev1.Pod, why string) error {
	if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse && c.Message == why {
		return nil
	}
	upd := pod.DeepCopy()
	setPodCondition(upd, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: why})
	if err := simkit.WriteStatus(ctx, s.client, pod, upd.Status, true); err != nil {
		return fmt.Errorf("marking pod %s unschedulable: %w", pod.Name, err)
	}
	return nil
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	now := metav1.Now()
	c.LastTransitionTime = now
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			if pod.Status.Conditions[i].Status == c.Status {
				c.LastTransitionTime = pod.Status.Conditions[i].LastTransitionTime
			}
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// setPodWaiting plays a kubelet that cannot pull the launcher image.
func (s *Simulator) setPodWaiting(ctx context.Context, pod *corev1.Pod, reason string) error {
	if waitingReason(pod) == reason {
		return nil
	}
	upd := pod.DeepCopy()
	msg := fmt.Sprintf("Back-off pulling image %q", s.opts.LauncherImage)
	if reason == FailErrImagePull {
		msg = fmt.Sprintf("failed to pull image %q: simulated registry failure", s.opts.LauncherImage)
	}
	upd.Status.Phase = corev1.PodPending
	setPodCondition(upd, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	upd.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: ComputeContainer, Image: s.opts.LauncherImage,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
	}}
	if err := simkit.WriteStatus(ctx, s.client, pod, upd.Status, true); err != nil {
		return fmt.Errorf("marking pod %s %s: %w", pod.Name, reason, err)
	}
	return nil
}

// runPod plays the kubelet starting the launcher: phase Running, an address, ready conditions. It returns
// the pod's address, which an earlier run may already have set.
func (s *Simulator) runPod(ctx context.Context, pod *corev1.Pod) (string, error) {
	if pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" {
		return pod.Status.PodIP, nil
	}
	ip, err := s.podIPs.Allocate(ctx)
	if err != nil {
		return "", err
	}
	upd := pod.DeepCopy()
	now := metav1.Now()
	st := &upd.Status
	st.Phase = corev1.PodRunning
	st.PodIP = ip
	st.PodIPs = []corev1.PodIP{{IP: ip}}
	if hostIP := s.nodeAddress(ctx, pod.Spec.NodeName); hostIP != "" {
		st.HostIP = hostIP
		st.HostIPs = []corev1.HostIP{{IP: hostIP}}
	}
	st.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodScheduled, corev1.ContainersReady, corev1.PodReady} {
		setPodCondition(upd, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue})
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(pod.UID))
	st.ContainerStatuses = []corev1.ContainerStatus{{
		Name: ComputeContainer, Ready: true, Started: ptr.To(true),
		Image: s.opts.LauncherImage, ImageID: s.opts.LauncherImage,
		ContainerID: fmt.Sprintf("cri-o://%016x", h.Sum64()),
		State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
	}}
	if err := simkit.WriteStatus(ctx, s.client, pod, upd.Status, true); err != nil {
		return "", fmt.Errorf("starting launcher pod %s: %w", pod.Name, err)
	}
	return ip, nil
}

// nodeAddress is the InternalIP of a node, or "".
func (s *Simulator) nodeAddress(ctx context.Context, name string) string {
	node := &corev1.Node{}
	if err := s.client.Get(ctx, types.NamespacedName{Name: name}, node); err != nil {
		return ""
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// runningStatus is vmi once virt-handler has started the domain and the guest agent reports.
func (s *Simulator) runningStatus(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance, pod *corev1.Pod, podIP string, now metav1.Time) (*kubevirtv1.VirtualMachineInstance, error) {
	upd := vmi.DeepCopy()
	st := &upd.Status
	node := pod.Spec.NodeName
	if st.Phase != kubevirtv1.Running {
		setVMIPhase(st, kubevirtv1.Scheduling, now)
		setVMIPhase(st, kubevirtv1.Scheduled, now)
		setVMIPhase(st, kubevirtv1.Running, now)
	}
	st.NodeName = node
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	upd.Labels[kubevirtv1.NodeNameLabel] = node
	removeVMICondition(st, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled))
	setVMICondition(st, kubevirtv1.VirtualMachineInstanceCondition{Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue}, now)
	setVMICondition(st, LiveMigratable(&vmi.Spec, func(v kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool) {
		return s.volumeAccessModes(ctx, vmi.Namespace, v)
	}), now)
	setVMICondition(st, kubevirtv1.VirtualMachineInstanceCondition{Type: kubevirtv1.VirtualMachineInstanceAgentConnected, Status: corev1.ConditionTrue}, now)
	for _, v := range vmi.Spec.Volumes {
		if v.DataVolume != nil {
			setVMICondition(st, kubevirtv1.VirtualMachineInstanceCondition{
				Type: kubevirtv1.VirtualMachineInstanceDataVolumesReady, Status: corev1.ConditionTrue, Reason: kubevirtv1.VirtualMachineInstanceReasonAllDVsReady,
			}, now)
			break
		}
	}
	if len(st.Interfaces) == 0 || st.Interfaces[0].IP == "" {
		ifaces, err := vmiInterfaces(&vmi.Spec, podIP, func() (string, error) { return s.secondaryIPs.Allocate(ctx) })
		if err != nil {
			return nil, err
		}
		st.Interfaces = ifaces
	}
	st.GuestOSInfo = *s.opts.GuestOS
	st.ActivePods = map[types.UID]string{pod.UID: node}
	if pod.Status.QOSClass != "" {
		st.QOSClass = ptr.To(pod.Status.QOSClass)
	}
	st.LauncherContainerImageVersion = s.opts.LauncherImage
	topo := &kubevirtv1.CPUTopology{Sockets: 1, Cores: uint32(VCPUs(&vmi.Spec)), Threads: 1}
	if cpu := vmi.Spec.Domain.CPU; cpu != nil {
		topo = &kubevirtv1.CPUTopology{Sockets: max(cpu.Sockets, 1), Cores: max(cpu.Cores, 1), Threads: max(cpu.Threads, 1)}
	}
	st.CurrentCPUTopology = topo
	guest := GuestMemory(&vmi.Spec)
	st.Memory = &kubevirtv1.MemoryStatus{GuestAtBoot: ptr.To(guest), GuestCurrent: ptr.To(guest), GuestRequested: ptr.To(guest)}
	return upd, nil
}

// volumeAccessModes are the access modes of the claim behind a DataVolume or PVC volume.
func (s *Simulator) volumeAccessModes(ctx context.Context, namespace string, v kubevirtv1.Volume) ([]corev1.PersistentVolumeAccessMode, bool) {
	switch {
	case v.DataVolume != nil:
		dv := &cdiv1beta1.DataVolume{}
		if err := s.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: v.DataVolume.Name}, dv); err != nil {
			return nil, false
		}
		return dataVolumeAccessModes(dv)
	case v.PersistentVolumeClaim != nil:
		pvc := &corev1.PersistentVolumeClaim{}
		if err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: v.PersistentVolumeClaim.ClaimName}, pvc); err != nil {
			return nil, false
		}
		return pvc.Spec.AccessModes, true
	}
	return nil, false
}

// writeVMI writes what changed from orig to upd: the status (through the status subresource when there
// is one) and the node and migration target labels. The status is written only over orig's
// resourceVersion: the VMI and migration controllers both write it whole, and one of them working from
// an older VMI would undo the other's write (a migration state lost, a VMI moved back).
func (s *Simulator) writeVMI(ctx context.Context, orig, upd *kubevirtv1.VirtualMachineInstance) error {
	ops := labelOps(orig, upd, kubevirtv1.NodeNameLabel, kubevirtv1.MigrationTargetNodeNameLabel)
	if equality.Semantic.DeepEqual(orig.Status, upd.Status) && len(ops) == 0 {
		return nil
	}
	if err := simkit.WriteStatusLocked(ctx, s.client, orig, upd.Status, s.vmiStatus, ops...); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating VMI %s: %w", orig.Name, err)
	}
	return nil
}

func (s *Simulator) notifyRunning(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	if s.opts.OnRunning == nil {
		return nil
	}
	if _, done := s.hooked.Load(vmi.UID); done {
		return nil
	}
	if err := s.opts.OnRunning(ctx, vmi); err != nil {
		return fmt.Errorf("OnRunning hook for VMI %s: %w", vmi.Name, err)
	}
	s.hooked.Store(vmi.UID, struct{}{})
	return nil
}

// finalizeVMI plays the deletion of a VMI: the launcher pod goes (at once: there is no guest to shut
// down), OnDeleted runs, then the finalizer is removed.
func (s *Simulator) finalizeVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	if !controllerutil.ContainsFinalizer(vmi, kubevirtv1.VirtualMachineInstanceFinalizer) &&
		!controllerutil.ContainsFinalizer(vmi, kubevirtv1.DeprecatedVirtualMachineInstanceFinalizer) {
		return nil
	}
	pods := &corev1.PodList{}
	if err := s.client.List(ctx, pods, client.InNamespace(vmi.Namespace), client.MatchingFields{indexOwnerUID: string(vmi.UID)}); err != nil {
		return fmt.Errorf("listing the pods of VMI %s: %w", vmi.Name, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if err := s.forceDelete(ctx, pod); err != nil {
			return err
		}
		if len(pod.Finalizers) > 0 {
			ctrl.LoggerFrom(ctx).Info("Waiting for the finalizers of the launcher pod", "pod", klog.KObj(pod), "finalizers", pod.Finalizers)
			return nil
		}
	}
	if s.opts.OnDeleted != nil {
		if err := s.opts.OnDeleted(ctx, vmi); err != nil {
			return fmt.Errorf("OnDeleted hook for VMI %s: %w", vmi.Name, err)
		}
	}
	orig := vmi.DeepCopy()
	controllerutil.RemoveFinalizer(vmi, kubevirtv1.VirtualMachineInstanceFinalizer)
	controllerutil.RemoveFinalizer(vmi, kubevirtv1.DeprecatedVirtualMachineInstanceFinalizer)
	if err := simkit.Patch(ctx, s.client, orig, vmi, true); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of VMI %s: %w", vmi.Name, err)
	}
	s.clock.Forget(vmi.UID)
	s.hooked.Delete(vmi.UID)
	if s.sched != nil {
		s.sched.forget(waiterVMI, client.ObjectKeyFromObject(vmi))
	}
	return nil
}
