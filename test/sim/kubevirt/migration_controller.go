package kubevirt

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// Clock stages of a migration: its target pod found unschedulable (from which
// Options.MigrationPendingTimeout runs) and the migration running (from which Options.MigrationDelay
// runs).
const (
	stageTargetUnschedulable = "migration-target-unschedulable"
	stageMigrating           = "migration-running"
)

// indexMigrationVMI indexes migrations by spec.vmiName.
const indexMigrationVMI = "sim.vmiName"

// setupMigrationController wires the part of the simulator that plays virt-controller's migration
// controller, the source and target virt-handlers and the kubelet of the target pod.
func (s *Simulator) setupMigrationController(mgr manager.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("kubevirt-migration").
		For(&kubevirtv1.VirtualMachineInstanceMigration{}).
		// A migration waits for its VMI's writes, for the end of the migration of the same VMI that
		// goes first, and for its target pod.
		Watches(&kubevirtv1.VirtualMachineInstance{}, handler.EnqueueRequestsFromMapFunc(s.migrationsOfVMI)).
		Watches(&kubevirtv1.VirtualMachineInstanceMigration{}, handler.EnqueueRequestsFromMapFunc(s.siblingMigrations)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(migrationOfTargetPod)).
		WithOptions(simkit.ControllerOptions(s.opts.Concurrency))
	if s.sched != nil {
		b = b.Watches(&corev1.Node{}, s.sched.nodeHandler(waiterMigration)).
			Watches(&corev1.Pod{}, s.sched.podFreedHandler(waiterMigration))
	}
	return b.Complete(reconcile.Func(s.reconcileMigration))
}

func (s *Simulator) migrationsOfVMI(ctx context.Context, o client.Object) []reconcile.Request {
	return s.migrationRequests(ctx, o.GetNamespace(), o.GetName())
}

func (s *Simulator) siblingMigrations(ctx context.Context, o client.Object) []reconcile.Request {
	m, ok := o.(*kubevirtv1.VirtualMachineInstanceMigration)
	if !ok {
		return nil
	}
	return slices.DeleteFunc(s.migrationRequests(ctx, m.Namespace, m.Spec.VMIName), func(r reconcile.Request) bool {
		return r.Name == m.Name
	})
}

func (s *Simulator) migrationRequests(ctx context.Context, namespace, vmi string) []reconcile.Request {
	list := &kubevirtv1.VirtualMachineInstanceMigrationList{}
	if err := s.client.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{indexMigrationVMI: vmi}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the migrations of a VMI", "vmi", klog.KRef(namespace, vmi))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

func migrationOfTargetPod(_ context.Context, o client.Object) []reconcile.Request {
	name, ok := o.GetAnnotations()[kubevirtv1.MigrationJobNameAnnotation]
	if !ok || !isMigrationTarget(o) {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

func (s *Simulator) reconcileMigration(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	m := &kubevirtv1.VirtualMachineInstanceMigration{}
	if err := s.client.Get(ctx, req.NamespacedName, m); err != nil {
		if apierrors.IsNotFound(err) {
			s.forgetMigration(req.NamespacedName, "")
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.VMIName}, vmi); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		vmi = nil
	}
	if m.DeletionTimestamp != nil {
		return reconcile.Result{}, s.finalizeMigration(ctx, m, vmi)
	}
	if m.IsFinal() {
		// Nothing is left to clean up when a finished migration is deleted.
		return reconcile.Result{}, s.removeMigrationFinalizer(ctx, m)
	}
	if !controllerutil.ContainsFinalizer(m, kubevirtv1.VirtualMachineInstanceMigrationFinalizer) {
		orig := m.DeepCopy()
		controllerutil.AddFinalizer(m, kubevirtv1.VirtualMachineInstanceMigrationFinalizer)
		if err := simkit.Patch(ctx, s.client, orig, m, true); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the finalizer of migration %s: %w", m.Name, err)
		}
		// The status is written over the resourceVersion read: carry on from the update's event.
		return reconcile.Result{}, nil
	}

	var st *kubevirtv1.VirtualMachineInstanceMigrationState
	if vmi != nil && vmi.Status.MigrationState != nil && vmi.Status.MigrationState.MigrationUID == m.UID {
		st = vmi.Status.MigrationState
	}
	switch {
	case st != nil && st.Completed && !st.Failed:
		return reconcile.Result{}, s.finishMigration(ctx, m, st)
	case st != nil && st.Failed:
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, st.FailureReason)
	case vmi == nil:
		// The VMI cache can lag behind the API server: the VMI is missing only when the API server says so.
		live := &metav1.PartialObjectMetadata{}
		live.SetGroupVersionKind(kubevirtv1.VirtualMachineInstanceGroupVersionKind)
		if err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: m.Spec.VMIName}, live); !apierrors.IsNotFound(err) {
			return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, err
		}
		return reconcile.Result{}, s.failMigration(ctx, m, nil, fmt.Sprintf("VMI %s does not exist", m.Spec.VMIName))
	case vmi.DeletionTimestamp != nil:
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, fmt.Sprintf("VMI %s is shutting down", vmi.Name))
	case !vmi.IsRunning():
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, fmt.Sprintf("VMI %s is not running (phase %q)", vmi.Name, vmi.Status.Phase))
	case st == nil && m.Status.Phase != kubevirtv1.MigrationPhaseUnset && m.Status.Phase != kubevirtv1.MigrationPending:
		return s.migrationUnknownToVMI(ctx, m, vmi)
	case st == nil:
		return s.startMigration(ctx, m, vmi)
	}
	return s.progressMigration(ctx, m, vmi, st)
}

// startMigration plays virt-controller accepting a migration: the VMI must be live-migratable and have no
// other migration going (an older one goes first; this one stays Pending), then the VMI's migration state
// names source and target and the target pod is created.
func (s *Simulator) startMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) (reconcile.Result, error) {
	if !vmi.IsMigratable() {
		msg := fmt.Sprintf("VMI %s is not live migratable", vmi.Name)
		if c := vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceIsMigratable); c != nil && c.Message != "" {
			msg += ": " + c.Message
		}
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, msg)
	}
	now := metav1.Now()
	upd := m.DeepCopy()
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationPending, now)
	first, err := s.goesFirst(ctx, m, vmi)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !first {
		ctrl.LoggerFrom(ctx).V(1).Info("Waiting for another migration of the VMI", "vmi", klog.KObj(vmi))
		return reconcile.Result{}, s.writeMigration(ctx, m, upd)
	}

	state := &kubevirtv1.VirtualMachineInstanceMigrationState{
		MigrationUID: m.UID,
		SourceNode:   vmi.Status.NodeName,
		SourcePod:    CurrentLauncherPodName(vmi),
		TargetPod:    MigrationTargetPodName(vmi, m.UID),
		Mode:         kubevirtv1.MigrationPreCopy,
	}
	vmiUpd := vmi.DeepCopy()
	vmiUpd.Status.MigrationState = state
	if err := s.writeVMI(ctx, vmi, vmiUpd); err != nil {
		return reconcile.Result{}, err
	}
	pod := MigrationTargetPod(vmiUpd, m, s.opts.LauncherImage)
	if err := s.client.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return reconcile.Result{}, fmt.Errorf("creating target pod %s of migration %s: %w", pod.Name, m.Name, err)
	}
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationScheduling, now)
	upd.Status.MigrationState = state.DeepCopy()
	return reconcile.Result{}, s.writeMigration(ctx, m, upd)
}

// migrationUnknownToVMI handles a started migration whose VMI, in the cache, does not name it: the cache
// lags behind the write that started it, or the VMI is another one of the same name (its VM restarted
// it), which the migration cannot move.
func (s *Simulator) migrationUnknownToVMI(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) (reconcile.Result, error) {
	live := &kubevirtv1.VirtualMachineInstance{}
	err := s.apiReader.Get(ctx, client.ObjectKeyFromObject(vmi), live)
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, s.failMigration(ctx, m, nil, fmt.Sprintf("VMI %s does not exist", vmi.Name))
	case err != nil:
		return reconcile.Result{}, err
	case live.Status.MigrationState == nil || live.Status.MigrationState.MigrationUID != m.UID:
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, fmt.Sprintf("VMI %s does not know the migration: it was restarted", vmi.Name))
	}
	return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, nil
}

// goesFirst reports whether m may start: no other migration of its VMI is under way or was created
// before it.
func (s *Simulator) goesFirst(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) (bool, error) {
	if st := vmi.Status.MigrationState; st != nil && st.MigrationUID != m.UID && !st.Completed && !st.Failed {
		return false, nil
	}
	list := &kubevirtv1.VirtualMachineInstanceMigrationList{}
	if err := s.client.List(ctx, list, client.InNamespace(m.Namespace), client.MatchingFields{indexMigrationVMI: m.Spec.VMIName}); err != nil {
		return false, fmt.Errorf("listing the migrations of VMI %s: %w", m.Spec.VMIName, err)
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == m.UID || o.IsFinal() || o.DeletionTimestamp != nil {
			continue
		}
		if o.Status.Phase != kubevirtv1.MigrationPhaseUnset && o.Status.Phase != kubevirtv1.MigrationPending {
			return false, nil
		}
		if o.CreationTimestamp.Before(&m.CreationTimestamp) || (o.CreationTimestamp.Equal(&m.CreationTimestamp) && o.Name < m.Name) {
			return false, nil
		}
	}
	return true, nil
}

// progressMigration walks a started migration through Scheduling (the target pod waits for a node; it
// fails after the pending timeout when it fits nowhere), Scheduled, PreparingTarget and TargetReady (the
// kubelet starts the target pod) and Running (Options.MigrationDelay), then moves the VMI to the target.
// Each step that writes the VMI returns: the VMI's event brings the next one.
func (s *Simulator) progressMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, st *kubevirtv1.VirtualMachineInstanceMigrationState) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: st.TargetPod}, pod); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		live := &metav1.PartialObjectMetadata{}
		live.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
		if err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: st.TargetPod}, live); !apierrors.IsNotFound(err) {
			// The pod cache lags behind.
			return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, client.IgnoreNotFound(err)
		}
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, fmt.Sprintf("target pod %s disappeared", st.TargetPod))
	}
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, fmt.Sprintf("target pod %s ended", pod.Name))
	}
	now := metav1.Now()
	upd := m.DeepCopy()
	upd.Status.MigrationState = st.DeepCopy()

	if pod.Spec.NodeName == "" {
		setMigrationPhase(&upd.Status, kubevirtv1.MigrationScheduling, now)
		var why string
		if s.sched != nil {
			node, msg, err := s.sched.schedule(ctx, pod, waiterMigration, client.ObjectKeyFromObject(m))
			if err != nil {
				return reconcile.Result{}, err
			}
			if node == "" {
				if err := s.setPodUnschedulable(ctx, pod, msg); err != nil {
					return reconcile.Result{}, err
				}
				why = msg
			} else {
				pod = pod.DeepCopy()
				pod.Spec.NodeName = node
			}
		} else if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			why = c.Message
		}
		if pod.Spec.NodeName == "" {
			if why == "" {
				// Waiting for the scheduler's verdict: the pod's event comes.
				return reconcile.Result{}, s.writeMigration(ctx, m, upd)
			}
			if left := s.clock.Remaining(m.UID, stageTargetUnschedulable, s.pendingTimeout(m)); left > 0 {
				ctrl.LoggerFrom(ctx).V(1).Info("Target pod fits on no node", "pod", klog.KObj(pod), "why", why, "timeout", left)
				return reconcile.Result{RequeueAfter: left}, s.writeMigration(ctx, m, upd)
			}
			return reconcile.Result{}, s.failMigration(ctx, m, vmi,
				fmt.Sprintf("target pod %s stayed unschedulable for %s: %s", pod.Name, s.pendingTimeout(m), why))
		}
	}

	node := pod.Spec.NodeName
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationScheduled, now)
	if st.TargetNode != node {
		vmiUpd := vmi.DeepCopy()
		vmiUpd.Status.MigrationState.TargetNode = node
		if vmiUpd.Labels == nil {
			vmiUpd.Labels = map[string]string{}
		}
		vmiUpd.Labels[kubevirtv1.MigrationTargetNodeNameLabel] = node
		if err := s.writeVMI(ctx, vmi, vmiUpd); err != nil {
			return reconcile.Result{}, err
		}
		upd.Status.MigrationState = vmiUpd.Status.MigrationState.DeepCopy()
		return reconcile.Result{}, s.writeMigration(ctx, m, upd)
	}

	// The kubelet starts the target virt-launcher; the target virt-handler prepares the domain.
	podIP, err := s.runPod(ctx, pod)
	if err != nil {
		return reconcile.Result{}, err
	}
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationPreparingTarget, now)
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationTargetReady, now)
	if !st.TargetNodeDomainDetected {
		vmiUpd := vmi.DeepCopy()
		ms := vmiUpd.Status.MigrationState
		ms.TargetNodeAddress = s.nodeAddress(ctx, node)
		ms.TargetNodeDomainDetected = true
		ms.TargetNodeDomainReadyTimestamp = &now
		ms.StartTimestamp = &now
		if err := s.writeVMI(ctx, vmi, vmiUpd); err != nil {
			return reconcile.Result{}, err
		}
		setMigrationPhase(&upd.Status, kubevirtv1.MigrationRunning, now)
		upd.Status.MigrationState = ms.DeepCopy()
		return reconcile.Result{}, s.writeMigration(ctx, m, upd)
	}

	setMigrationPhase(&upd.Status, kubevirtv1.MigrationRunning, now)
	annotated := []client.Object{m, vmi}
	if vm := s.ownerVM(ctx, vmi); vm != nil {
		annotated = append(annotated, vm)
	}
	// A failure strikes a migration that has been seen Running.
	if failureOf(annotated...) == FailMigration && m.Status.Phase == kubevirtv1.MigrationRunning {
		return reconcile.Result{}, s.failMigration(ctx, m, vmi, "live migration failed (injected by "+FailAnnotation+")")
	}
	if left := s.clock.Remaining(m.UID, stageMigrating, s.opts.MigrationDelay); left > 0 {
		return reconcile.Result{RequeueAfter: left}, s.writeMigration(ctx, m, upd)
	}

	// The guest runs on the target now: the VMI follows it.
	vmiUpd := vmi.DeepCopy()
	vst := &vmiUpd.Status
	vst.NodeName = node
	if vmiUpd.Labels == nil {
		vmiUpd.Labels = map[string]string{}
	}
	vmiUpd.Labels[kubevirtv1.NodeNameLabel] = node
	delete(vmiUpd.Labels, kubevirtv1.MigrationTargetNodeNameLabel)
	vst.ActivePods = map[types.UID]string{pod.UID: node}
	movePodNetworkAddress(&vmi.Spec, vst.Interfaces, podIP)
	vst.MigrationState.Completed = true
	vst.MigrationState.EndTimestamp = &now
	if err := s.writeVMI(ctx, vmi, vmiUpd); err != nil {
		return reconcile.Result{}, err
	}
	upd.Status.MigrationState = vst.MigrationState.DeepCopy()
	return reconcile.Result{}, s.writeMigration(ctx, m, upd)
}

// pendingTimeout is how long m's target pod may stay unschedulable: KubeVirt's per-migration annotation,
// else Options.MigrationPendingTimeout.
func (s *Simulator) pendingTimeout(m *kubevirtv1.VirtualMachineInstanceMigration) time.Duration {
	if v, ok := m.Annotations[kubevirtv1.MigrationUnschedulablePodTimeoutSecondsAnnotation]; ok {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
	}
	return s.opts.MigrationPendingTimeout
}

// movePodNetworkAddress gives the interfaces on the pod network the target pod's address (a masqueraded
// guest is reached through its pod); secondary networks keep theirs, and every interface its MAC.
func movePodNetworkAddress(spec *kubevirtv1.VirtualMachineInstanceSpec, ifaces []kubevirtv1.VirtualMachineInstanceNetworkInterface, podIP string) {
	onPod := map[string]bool{}
	for _, n := range spec.Networks {
		if n.Pod != nil {
			onPod[n.Name] = true
		}
	}
	if len(spec.Networks) == 0 && usesPodNetwork(spec) {
		onPod[kubevirtv1.DefaultPodNetwork().Name] = true
	}
	for i := range ifaces {
		if onPod[ifaces[i].Name] {
			ifaces[i].IP = podIP
			ifaces[i].IPs = []string{podIP}
		}
	}
}

// finishMigration plays what follows a completed migration: the source virt-launcher exits (its pod
// Succeeded, which frees its node for the scheduler) and the migration Succeeded.
func (s *Simulator) finishMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, st *kubevirtv1.VirtualMachineInstanceMigrationState) error {
	if err := s.endSourcePod(ctx, m.Namespace, st.SourcePod); err != nil {
		return err
	}
	upd := m.DeepCopy()
	now := metav1.Now()
	for _, p := range []kubevirtv1.VirtualMachineInstanceMigrationPhase{
		kubevirtv1.MigrationScheduled, kubevirtv1.MigrationPreparingTarget, kubevirtv1.MigrationTargetReady,
		kubevirtv1.MigrationRunning, kubevirtv1.MigrationSucceeded,
	} {
		setMigrationPhase(&upd.Status, p, now)
	}
	upd.Status.MigrationState = st.DeepCopy()
	if err := s.writeMigration(ctx, m, upd); err != nil {
		return err
	}
	s.forgetMigration(client.ObjectKeyFromObject(m), m.UID)
	return nil
}

// endSourcePod plays the kubelet once the source virt-launcher has exited after handing the guest over.
func (s *Simulator) endSourcePod(ctx context.Context, namespace, name string) error {
	pod := &corev1.Pod{}
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, pod); err != nil {
		return client.IgnoreNotFound(err)
	}
	if podTerminal(pod) || pod.DeletionTimestamp != nil {
		return nil
	}
	upd := pod.DeepCopy()
	now := metav1.Now()
	upd.Status.Phase = corev1.PodSucceeded
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		setPodCondition(upd, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: "PodCompleted"})
	}
	for i := range upd.Status.ContainerStatuses {
		cs := &upd.Status.ContainerStatuses[i]
		started := now
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.Ready, cs.Started = false, ptr.To(false)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: now, ContainerID: cs.ContainerID,
		}}
	}
	if err := simkit.WriteStatus(ctx, s.client, pod, upd.Status, true); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("ending source pod %s: %w", pod.Name, err)
	}
	return nil
}

// failMigration plays a migration that fails with reason: the target pod goes, the VMI stays on its
// source and reports the failure, and the migration is Failed.
func (s *Simulator) failMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, reason string) error {
	ctrl.LoggerFrom(ctx).V(1).Info("Migration failed", "vmi", klog.KRef(m.Namespace, m.Spec.VMIName), "reason", reason)
	if err := s.deleteTargetPods(ctx, m); err != nil {
		return err
	}
	now := metav1.Now()
	state, err := s.endVMIMigrationState(ctx, m, vmi, reason, false, now)
	if err != nil {
		return err
	}
	upd := m.DeepCopy()
	setMigrationPhase(&upd.Status, kubevirtv1.MigrationFailed, now)
	upd.Status.MigrationState = state
	if err := s.writeMigration(ctx, m, upd); err != nil {
		return err
	}
	s.forgetMigration(client.ObjectKeyFromObject(m), m.UID)
	return nil
}

// endVMIMigrationState marks m failed (or aborted) in its VMI's migration state, if the VMI has it and it
// has not ended, and returns the migration state m ends with.
func (s *Simulator) endVMIMigrationState(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance, reason string, aborted bool, now metav1.Time) (*kubevirtv1.VirtualMachineInstanceMigrationState, error) {
	end := func(st *kubevirtv1.VirtualMachineInstanceMigrationState) {
		if st.Completed || st.Failed {
			return
		}
		if st.StartTimestamp == nil {
			st.StartTimestamp = &now
		}
		st.EndTimestamp = &now
		st.Completed, st.Failed = true, true
		st.FailureReason = reason
		if aborted {
			st.AbortRequested = true
			st.AbortStatus = kubevirtv1.MigrationAbortSucceeded
		}
	}
	if vmi == nil || vmi.Status.MigrationState == nil || vmi.Status.MigrationState.MigrationUID != m.UID {
		st := m.Status.MigrationState.DeepCopy()
		if st == nil {
			st = &kubevirtv1.VirtualMachineInstanceMigrationState{MigrationUID: m.UID}
		}
		end(st)
		return st, nil
	}
	upd := vmi.DeepCopy()
	end(upd.Status.MigrationState)
	delete(upd.Labels, kubevirtv1.MigrationTargetNodeNameLabel)
	if err := s.writeVMI(ctx, vmi, upd); err != nil {
		return nil, err
	}
	return upd.Status.MigrationState.DeepCopy(), nil
}

// deleteTargetPods deletes m's target pods, at once: no guest has moved into them.
func (s *Simulator) deleteTargetPods(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) error {
	pods := &corev1.PodList{}
	if err := s.client.List(ctx, pods, client.InNamespace(m.Namespace), client.MatchingLabels{kubevirtv1.MigrationJobLabel: string(m.UID)}); err != nil {
		return fmt.Errorf("listing the target pods of migration %s: %w", m.Name, err)
	}
	for i := range pods.Items {
		if err := s.forceDelete(ctx, &pods.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

// finalizeMigration plays the deletion of a migration: one that has not finished is aborted (its target
// pod goes, the VMI stays on its source), one whose VMI already moved is finished; then the finalizer
// goes.
func (s *Simulator) finalizeMigration(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration, vmi *kubevirtv1.VirtualMachineInstance) error {
	if !controllerutil.ContainsFinalizer(m, kubevirtv1.VirtualMachineInstanceMigrationFinalizer) {
		return nil
	}
	if !m.IsFinal() {
		var st *kubevirtv1.VirtualMachineInstanceMigrationState
		if vmi != nil {
			st = vmi.Status.MigrationState
		}
		if st != nil && st.MigrationUID == m.UID && st.Completed && !st.Failed {
			if err := s.endSourcePod(ctx, m.Namespace, st.SourcePod); err != nil {
				return err
			}
		} else {
			if err := s.deleteTargetPods(ctx, m); err != nil {
				return err
			}
			if _, err := s.endVMIMigrationState(ctx, m, vmi, "migration aborted: the VirtualMachineInstanceMigration was deleted", true, metav1.Now()); err != nil {
				return err
			}
		}
	}
	if err := s.removeMigrationFinalizer(ctx, m); err != nil {
		return err
	}
	s.forgetMigration(client.ObjectKeyFromObject(m), m.UID)
	return nil
}

func (s *Simulator) removeMigrationFinalizer(ctx context.Context, m *kubevirtv1.VirtualMachineInstanceMigration) error {
	if !controllerutil.ContainsFinalizer(m, kubevirtv1.VirtualMachineInstanceMigrationFinalizer) {
		return nil
	}
	orig := m.DeepCopy()
	controllerutil.RemoveFinalizer(m, kubevirtv1.VirtualMachineInstanceMigrationFinalizer)
	if err := simkit.Patch(ctx, s.client, orig, m, true); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of migration %s: %w", m.Name, err)
	}
	return nil
}

func (s *Simulator) forgetMigration(key types.NamespacedName, uid types.UID) {
	if uid != "" {
		s.clock.Forget(uid)
	}
	if s.sched != nil {
		s.sched.forget(waiterMigration, key)
	}
}

// writeMigration writes upd's status over orig's, if it changed.
func (s *Simulator) writeMigration(ctx context.Context, orig, upd *kubevirtv1.VirtualMachineInstanceMigration) error {
	if equality.Semantic.DeepEqual(orig.Status, upd.Status) {
		return nil
	}
	if err := simkit.WriteStatusLocked(ctx, s.client, orig, upd.Status, s.migrationStatus); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating migration %s: %w", orig.Name, err)
	}
	return nil
}

// migrationPhaseOrder orders the phases a migration goes through.
var migrationPhaseOrder = map[kubevirtv1.VirtualMachineInstanceMigrationPhase]int{
	kubevirtv1.MigrationPhaseUnset: 0, kubevirtv1.MigrationPending: 1, kubevirtv1.MigrationScheduling: 2,
	kubevirtv1.MigrationScheduled: 3, kubevirtv1.MigrationPreparingTarget: 4, kubevirtv1.MigrationTargetReady: 5,
	kubevirtv1.MigrationRunning: 6, kubevirtv1.MigrationSucceeded: 7, kubevirtv1.MigrationFailed: 7,
}

// setMigrationPhase moves the phase forward and records its transition; a phase the migration has
// passed already is ignored, so that each reconcile can walk the phases from the start.
func setMigrationPhase(st *kubevirtv1.VirtualMachineInstanceMigrationStatus, phase kubevirtv1.VirtualMachineInstanceMigrationPhase, now metav1.Time) {
	if st.Phase == phase || (migrationPhaseOrder[phase] <= migrationPhaseOrder[st.Phase] && phase != kubevirtv1.MigrationFailed) {
		return
	}
	st.Phase = phase
	st.PhaseTransitionTimestamps = append(st.PhaseTransitionTimestamps, kubevirtv1.VirtualMachineInstanceMigrationPhaseTransitionTimestamp{
		Phase: phase, PhaseTransitionTimestamp: now,
	})
}
