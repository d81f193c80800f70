package kubevirt

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// indexVolumes indexes VMs by the DataVolumes ("dv/<name>") and claims ("pvc/<name>") their template
// mounts, so a DataVolume or claim event finds the VMs waiting for it.
const indexVolumes = "sim.volumes"

// setupVMController wires the part of the simulator that plays virt-controller's VM controller.
func (s *Simulator) setupVMController(mgr manager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kubevirtv1.VirtualMachine{}, indexVolumes, func(o client.Object) []string {
		vm := o.(*kubevirtv1.VirtualMachine)
		if vm.Spec.Template == nil {
			return nil
		}
		var keys []string
		for _, v := range vm.Spec.Template.Spec.Volumes {
			switch {
			case v.DataVolume != nil:
				keys = append(keys, "dv/"+v.DataVolume.Name)
			case v.PersistentVolumeClaim != nil:
				keys = append(keys, "pvc/"+v.PersistentVolumeClaim.ClaimName)
			}
		}
		return keys
	}); err != nil {
		return fmt.Errorf("indexing VMs by volume: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).Named("kubevirt-vm").
		For(&kubevirtv1.VirtualMachine{}).
		Owns(&kubevirtv1.VirtualMachineInstance{}).
		Watches(&cdiv1beta1.DataVolume{}, handler.EnqueueRequestsFromMapFunc(s.vmsUsing("dv/"))).
		WatchesMetadata(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(s.vmsUsing("pvc/"))).
		// The VM's printable status follows the launcher's image pulls.
		Watches(&corev1.Pod{}, handler.Funcs{UpdateFunc: func(_ context.Context, e event.UpdateEvent, q simkit.Queue) {
			if isLauncher(e.ObjectNew) && waitingReason(e.ObjectOld.(*corev1.Pod)) != waitingReason(e.ObjectNew.(*corev1.Pod)) {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{
					Namespace: e.ObjectNew.GetNamespace(), Name: e.ObjectNew.GetLabels()[kubevirtv1.DeprecatedVirtualMachineNameLabel],
				}})
			}
		}}).
		WithOptions(simkit.ControllerOptions(s.opts.Concurrency)).
		Complete(reconcile.Func(s.reconcileVM))
}

func (s *Simulator) vmsUsing(prefix string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		vms := &kubevirtv1.VirtualMachineList{}
		if err := s.client.List(ctx, vms, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexVolumes: prefix + o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(vms.Items))
		for i := range vms.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&vms.Items[i])})
		}
		return reqs
	}
}

func (s *Simulator) reconcileVM(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	vm := &kubevirtv1.VirtualMachine{}
	if err := s.client.Get(ctx, req.NamespacedName, vm); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if vm.DeletionTimestamp != nil {
		return reconcile.Result{}, s.finalizeVM(ctx, vm)
	}
	if !controllerutil.ContainsFinalizer(vm, kubevirtv1.VirtualMachineControllerFinalizer) {
		orig := vm.DeepCopy()
		controllerutil.AddFinalizer(vm, kubevirtv1.VirtualMachineControllerFinalizer)
		if err := simkit.Patch(ctx, s.client, orig, vm, true); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the VM finalizer: %w", err)
		}
	}

	obs := vmObservation{vm: vm, dataVolumesReady: true}
	vmi, foreign, err := s.vmiOf(ctx, vm)
	if err != nil {
		return reconcile.Result{}, err
	}
	if vmi != nil {
		obs.vmi = vmi
		if obs.pod, err = s.launcherPodOf(ctx, vmi); err != nil {
			return reconcile.Result{}, err
		}
	}
	strategy := RunStrategy(vm)
	switch {
	case wantsVMI(strategy):
		if err := s.observeVolumes(ctx, vm, &obs); err != nil {
			return reconcile.Result{}, err
		}
		switch {
		case foreign:
			// A VMI of the same name that this VM does not own (one of a deleted VM, on its way out).
			ctrl.LoggerFrom(ctx).V(1).Info("Waiting for a VMI of another owner to go", "vmi", req.Name)
		case vmi != nil && vmi.DeletionTimestamp == nil && vmiFinished(vmi) && restartsAfter(strategy, vmi.Status.Phase):
			if err := s.deleteVMI(ctx, vmi); err != nil {
				return reconcile.Result{}, err
			}
			obs.vmi.DeletionTimestamp = ptrNow()
		case vmi == nil && obs.dataVolumesReady && obs.dataVolumeError == "" && obs.missingPVC == "" && vm.Spec.Template != nil:
			if obs.vmi, err = s.createVMI(ctx, vm); err != nil {
				return reconcile.Result{}, err
			}
		}
	case strategy == kubevirtv1.RunStrategyHalted && vmi != nil && vmi.DeletionTimestamp == nil:
		if err := s.deleteVMI(ctx, vmi); err != nil {
			return reconcile.Result{}, err
		}
		obs.vmi.DeletionTimestamp = ptrNow()
	}
	return reconcile.Result{}, s.writeVMStatus(ctx, vm, vmStatus(obs, s.desiredGeneration(vm), metav1.Now()))
}

func ptrNow() *metav1.Time {
	now := metav1.Now()
	return &now
}

// vmiOf is the VMI named like vm from the cache: nil when there is none, foreign when vm does not own it.
func (s *Simulator) vmiOf(ctx context.Context, vm *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachineInstance, bool, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := s.client.Get(ctx, client.ObjectKeyFromObject(vm), vmi); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if !metav1.IsControlledBy(vmi, vm) {
		return nil, true, nil
	}
	return vmi, false, nil
}

// observeVolumes creates the VM's DataVolumes from its templates (owned by the VM, as KubeVirt does) and
// records whether they, the other DataVolumes and the claims the VM mounts are ready.
func (s *Simulator) observeVolumes(ctx context.Context, vm *kubevirtv1.VirtualMachine, obs *vmObservation) error {
	templates := map[string]bool{}
	for i := range vm.Spec.DataVolumeTemplates {
		t := &vm.Spec.DataVolumeTemplates[i]
		templates[t.Name] = true
		dv := &cdiv1beta1.DataVolume{}
		err := s.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: t.Name}, dv)
		if apierrors.IsNotFound(err) {
			obs.dataVolumesReady = false
			if err := s.createDataVolume(ctx, vm, t); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		observeDataVolume(dv, obs)
	}
	if vm.Spec.Template == nil {
		return nil
	}
	for _, v := range vm.Spec.Template.Spec.Volumes {
		switch {
		case v.DataVolume != nil && !templates[v.DataVolume.Name]:
			dv := &cdiv1beta1.DataVolume{}
			if err := s.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: v.DataVolume.Name}, dv); err != nil {
				if !apierrors.IsNotFound(err) {
					return err
				}
				obs.dataVolumesReady = false
				continue
			}
			observeDataVolume(dv, obs)
		case v.PersistentVolumeClaim != nil:
			pvc := &metav1.PartialObjectMetadata{}
			pvc.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"))
			if err := s.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: v.PersistentVolumeClaim.ClaimName}, pvc); err != nil {
				if !apierrors.IsNotFound(err) {
					return err
				}
				obs.missingPVC = v.PersistentVolumeClaim.ClaimName
			}
		}
	}
	return nil
}

func observeDataVolume(dv *cdiv1beta1.DataVolume, obs *vmObservation) {
	switch dv.Status.Phase {
	case cdiv1beta1.Succeeded, cdiv1beta1.WaitForFirstConsumer:
	case cdiv1beta1.Failed:
		obs.dataVolumeError = dv.Name
	default:
		obs.dataVolumesReady = false
	}
}

func (s *Simulator) createDataVolume(ctx context.Context, vm *kubevirtv1.VirtualMachine, t *kubevirtv1.DataVolumeTemplateSpec) error {
	dv := &cdiv1beta1.DataVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name: t.Name, Namespace: vm.Namespace, Labels: t.Labels, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, kubevirtv1.VirtualMachineGroupVersionKind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	if err := s.client.Create(ctx, dv); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating DataVolume %s of VM %s: %w", t.Name, vm.Name, err)
	}
	return nil
}

// createVMI creates vm's VMI: same name, labels and annotations of the template, the template's spec,
// owned by the VM, with KubeVirt's finalizer and the VM generation it was made from.
func (s *Simulator) createVMI(ctx context.Context, vm *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachineInstance, error) {
	tmpl := vm.Spec.Template
	annotations := map[string]string{}
	for k, v := range tmpl.ObjectMeta.Annotations {
		annotations[k] = v
	}
	annotations[kubevirtv1.VirtualMachineGenerationAnnotation] = strconv.FormatInt(vm.Generation, 10)
	labels := map[string]string{}
	for k, v := range tmpl.ObjectMeta.Labels {
		labels[k] = v
	}
	now := metav1.Now()
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name: vm.Name, Namespace: vm.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(vm, kubevirtv1.VirtualMachineGroupVersionKind)},
			Finalizers:      []string{kubevirtv1.VirtualMachineInstanceFinalizer},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	setVMIPhase(&vmi.Status, kubevirtv1.Pending, now)
	if err := s.client.Create(ctx, vmi); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("creating the VMI of VM %s: %w", vm.Name, err)
	}
	return vmi, nil
}

func (s *Simulator) deleteVMI(ctx context.Context, vmi *kubevirtv1.VirtualMachineInstance) error {
	if err := s.client.Delete(ctx, vmi, client.Preconditions{UID: &vmi.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting VMI %s: %w", vmi.Name, err)
	}
	return nil
}

// finalizeVM plays the deletion of a VM: its VMI is deleted, and once it is gone the finalizer is
// removed. DataVolumes and other owned objects go afterwards, with the garbage collector.
func (s *Simulator) finalizeVM(ctx context.Context, vm *kubevirtv1.VirtualMachine) error {
	if !controllerutil.ContainsFinalizer(vm, kubevirtv1.VirtualMachineControllerFinalizer) {
		return nil
	}
	vmi, _, err := s.vmiOf(ctx, vm)
	if err != nil {
		return err
	}
	if vmi != nil {
		if vmi.DeletionTimestamp == nil {
			if err := s.deleteVMI(ctx, vmi); err != nil {
				return err
			}
			vmi.DeletionTimestamp = ptrNow()
		}
		return s.writeVMStatus(ctx, vm, vmStatus(vmObservation{vm: vm, vmi: vmi, dataVolumesReady: true}, s.desiredGeneration(vm), metav1.Now()))
	}
	orig := vm.DeepCopy()
	controllerutil.RemoveFinalizer(vm, kubevirtv1.VirtualMachineControllerFinalizer)
	if err := simkit.Patch(ctx, s.client, orig, vm, true); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of VM %s: %w", vm.Name, err)
	}
	return nil
}

// desiredGeneration is vm's generation when status writes do not change it (status subresource), else 0.
func (s *Simulator) desiredGeneration(vm *kubevirtv1.VirtualMachine) int64 {
	if s.vmStatus {
		return vm.Generation
	}
	return 0
}

func (s *Simulator) writeVMStatus(ctx context.Context, vm *kubevirtv1.VirtualMachine, st kubevirtv1.VirtualMachineStatus) error {
	if equality.Semantic.DeepEqual(vm.Status, st) {
		return nil
	}
	if err := simkit.WriteStatus(ctx, s.client, vm, st, s.vmStatus); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating the status of VM %s: %w", vm.Name, err)
	}
	return nil
}
