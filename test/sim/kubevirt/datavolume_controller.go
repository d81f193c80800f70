package kubevirt

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// stageTransfer is the clock stage "DataVolume transfer started", from which ImportDelay runs.
const stageTransfer = "transfer"

// transfer is what CDI does to fill a DataVolume.
type transfer int

const (
	transferImport transfer = iota
	transferClone
	transferBlank
	transferUpload
)

func transferOf(spec *cdiv1beta1.DataVolumeSpec) transfer {
	switch {
	case spec.SourceRef != nil:
		return transferClone
	case spec.Source == nil:
		return transferBlank
	case spec.Source.PVC != nil || spec.Source.Snapshot != nil:
		return transferClone
	case spec.Source.Blank != nil:
		return transferBlank
	case spec.Source.Upload != nil:
		return transferUpload
	}
	return transferImport
}

// dataVolumeProgress is where a transfer stands after elapsed of delay: scheduled for the first quarter,
// in progress with its percentage in quarters after that, succeeded once delay has passed. Blank
// DataVolumes are done at once; uploads wait for an upload that never comes. next is when the phase or
// progress changes next (0: never).
func dataVolumeProgress(t transfer, elapsed, delay time.Duration) (cdiv1beta1.DataVolumePhase, cdiv1beta1.DataVolumeProgress, time.Duration) {
	switch {
	case t == transferUpload:
		return cdiv1beta1.UploadReady, "N/A", 0
	case t == transferBlank || elapsed >= delay:
		return cdiv1beta1.Succeeded, "100.0%", 0
	}
	quarter := int(4 * elapsed / delay)
	next := time.Duration(quarter+1)*delay/4 - elapsed
	scheduled, running := cdiv1beta1.ImportScheduled, cdiv1beta1.ImportInProgress
	if t == transferClone {
		scheduled, running = cdiv1beta1.CloneScheduled, cdiv1beta1.CloneInProgress
	}
	if quarter == 0 {
		return scheduled, "N/A", next
	}
	return running, cdiv1beta1.DataVolumeProgress(fmt.Sprintf("%.2f%%", float64(25*quarter))), next
}

// setupDataVolumeController wires the part of the simulator that plays CDI.
func (s *Simulator) setupDataVolumeController(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("cdi-datavolume").
		For(&cdiv1beta1.DataVolume{}).
		// Fault-injection and delay annotations may live on the VM.
		Watches(&kubevirtv1.VirtualMachine{}, handler.EnqueueRequestsFromMapFunc(templateDataVolumes),
			builder.WithPredicates(predicate.AnnotationChangedPredicate{})).
		Watches(&cdiv1beta1.DataVolume{}, handler.Funcs{DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ simkit.Queue) {
			s.clock.Forget(e.Object.GetUID())
		}}).
		WithOptions(simkit.ControllerOptions(s.opts.Concurrency)).
		Complete(reconcile.Func(s.reconcileDataVolume))
}

func templateDataVolumes(_ context.Context, o client.Object) []reconcile.Request {
	vm := o.(*kubevirtv1.VirtualMachine)
	reqs := make([]reconcile.Request, 0, len(vm.Spec.DataVolumeTemplates))
	for _, t := range vm.Spec.DataVolumeTemplates {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: vm.Namespace, Name: t.Name}})
	}
	return reqs
}

func (s *Simulator) reconcileDataVolume(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	dv := &cdiv1beta1.DataVolume{}
	if err := s.client.Get(ctx, req.NamespacedName, dv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if dv.DeletionTimestamp != nil || dv.Status.Phase == cdiv1beta1.Succeeded {
		return reconcile.Result{}, nil
	}
	annotated := []client.Object{dv}
	if vm := s.ownerVMOfDataVolume(ctx, dv); vm != nil {
		annotated = append(annotated, vm)
	}
	now := metav1.Now()
	upd := dv.DeepCopy()
	st := &upd.Status
	st.ClaimName = dv.Name
	setDataVolumeCondition(st, cdiv1beta1.DataVolumeBound, corev1.ConditionTrue, "Bound", fmt.Sprintf("PVC %s Bound", dv.Name), now)

	if failureOf(annotated...) == FailDataVolumeError {
		st.Phase = cdiv1beta1.Failed
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeRunning, corev1.ConditionFalse, "Error", "Unable to process data: simulated import failure", now)
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeReady, corev1.ConditionFalse, "Error", "", now)
		return reconcile.Result{}, s.writeDataVolume(ctx, dv, upd)
	}
	if dv.Status.Phase == cdiv1beta1.Failed {
		// The failure was cleared: CDI retries the transfer from the start.
		s.clock.Forget(dv.UID)
	}
	delay := delayFrom(ImportDelayAnnotation, s.opts.ImportDelay, annotated...)
	phase, progress, next := dataVolumeProgress(transferOf(&dv.Spec), s.clock.Since(dv.UID, stageTransfer), delay)
	st.Phase, st.Progress = phase, progress
	switch phase {
	case cdiv1beta1.Succeeded:
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeRunning, corev1.ConditionFalse, "Completed", "", now)
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeReady, corev1.ConditionTrue, "", "", now)
	case cdiv1beta1.ImportInProgress, cdiv1beta1.CloneInProgress:
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeRunning, corev1.ConditionTrue, "Pod is running", "", now)
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeReady, corev1.ConditionFalse, "TransferRunning", "", now)
	default:
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeRunning, corev1.ConditionFalse, "", "", now)
		setDataVolumeCondition(st, cdiv1beta1.DataVolumeReady, corev1.ConditionFalse, "", "", now)
	}
	return reconcile.Result{RequeueAfter: next}, s.writeDataVolume(ctx, dv, upd)
}

func (s *Simulator) ownerVMOfDataVolume(ctx context.Context, dv *cdiv1beta1.DataVolume) *kubevirtv1.VirtualMachine {
	ref := metav1.GetControllerOf(dv)
	if ref == nil || ref.Kind != kubevirtv1.VirtualMachineGroupVersionKind.Kind {
		return nil
	}
	vm := &kubevirtv1.VirtualMachine{}
	// Read only: its annotations.
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: dv.Namespace, Name: ref.Name}, vm, client.UnsafeDisableDeepCopy); err != nil || vm.UID != ref.UID {
		return nil
	}
	return vm
}

func setDataVolumeCondition(st *cdiv1beta1.DataVolumeStatus, t cdiv1beta1.DataVolumeConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	c := cdiv1beta1.DataVolumeCondition{Type: t, Status: status, Reason: reason, Message: msg, LastTransitionTime: now, LastHeartbeatTime: now}
	for i := range st.Conditions {
		if st.Conditions[i].Type != t {
			continue
		}
		if st.Conditions[i].Status == status && st.Conditions[i].Reason == reason && st.Conditions[i].Message == msg {
			return
		}
		if st.Conditions[i].Status == status {
			c.LastTransitionTime = st.Conditions[i].LastTransitionTime
		}
		st.Conditions[i] = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

func (s *Simulator) writeDataVolume(ctx context.Context, orig, upd *cdiv1beta1.DataVolume) error {
	if equality.Semantic.DeepEqual(orig.Status, upd.Status) {
		return nil
	}
	if err := simkit.WriteStatus(ctx, s.client, orig, upd.Status, s.dvStatus); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating the status of DataVolume %s: %w", orig.Name, err)
	}
	return nil
}
