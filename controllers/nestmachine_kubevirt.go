package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ignition"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// reconcileVM creates the VirtualMachine and its bootstrap Secret, reconciles drift, and reports
// what the VM, its instance and DataVolumes say. Progress arrives as watch events from the Infra
// cluster's cache: nothing here polls.
func (r *NestMachineReconciler) reconcileVM(ctx context.Context, s *machineScope) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	nm := s.nm
	c := s.conn.Client()
	vmName := kubevirt.VMName(nm)
	in := kubevirt.Input{
		NestMachine: nm, Machine: s.machine, ClusterName: s.cluster.Name, NestClusterName: s.nestCluster.Name,
		Namespace: s.namespace, SchedulerName: s.infraObj.Spec.SchedulerName, BootstrapSecretName: kubevirt.BootstrapSecretName(vmName),
		Identity: r.Identity,
	}
	if policy := s.infraObj.Spec.VMPatchPolicy; policy != nil {
		in.PatchPolicy = policy.Allow
	}
	key := client.ObjectKey{Namespace: s.namespace, Name: vmName}

	vm := &kubevirtv1.VirtualMachine{}
	err := c.Get(ctx, key, vm)
	created := false
	switch {
	case apierrors.IsNotFound(err):
		if in.IsControlPlane() {
			if why, err := r.unbalancingControlPlane(ctx, s, in.IsBootstrap()); err != nil || why != "" {
				if err != nil {
					return ctrl.Result{}, err
				}
				ctrl.LoggerFrom(ctx).Info("Waiting: " + why)
				setWaiting(nm, infrav1.VMProvisionedCondition, infrav1.ControlPlaneUnbalancedReason, why)
				return ctrl.Result{RequeueAfter: unbalancedRetry}, nil
			}
		}
		made, res, err := r.createVM(ctx, s, in)
		if err != nil || made == nil {
			return res, err
		}
		vm, created = made, true
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading VirtualMachine %s in Infra cluster %s: %w", key, s.infraName, err)
	default:
		if ok, err := r.claimVM(ctx, s, in, vm); err != nil || !ok {
			return ctrl.Result{}, err
		}
		if err := reconcileVMDrift(ctx, s, in, vm); err != nil {
			return ctrl.Result{}, err
		}
	}
	nm.Status.Remote = &infrav1.RemoteObject{InfraCluster: s.infraName, Kind: "VirtualMachine", Namespace: s.namespace, Name: vmName}

	// createVM made the bootstrap Secret too: the cache cannot have seen it yet, and asking the Infra
	// cluster whether it exists would only cost a request.
	if !created {
		if err := r.ensureBootstrapSecret(ctx, s, in, vm); err != nil {
			return ctrl.Result{}, err
		}
	}

	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := c.Get(ctx, key, vmi); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		vmi = nil
	}
	dvs := &cdiv1beta1.DataVolumeList{}
	if s.conn.Serves(cdiv1beta1.SchemeGroupVersion.Group) {
		if err := c.List(ctx, dvs, client.InNamespace(s.namespace), machineObjects(nm)); err != nil {
			return ctrl.Result{}, err
		}
	}
	st := kubevirt.ReadStatus(vm, vmi, dvs.Items)
	lm := st.LiveMigratable
	lm.Type, lm.ObservedGeneration = infrav1.LiveMigratableCondition, nm.Generation
	conditions.Set(nm, lm)
	if st.Provisioned {
		observeProvisioned(nm, s.infraName, machineKindKubeVirt)
		nm.Status.Initialization.Provisioned = ptr.To(true)
		nm.Status.Addresses = st.Addresses
		conditions.Set(nm, metav1.Condition{Type: infrav1.VMProvisionedCondition, Status: metav1.ConditionTrue, Reason: st.Reason, Message: st.Message})
		r.setTenantNodeProviderID(ctx, s, vmName)
		return ctrl.Result{}, nil
	}
	if len(st.Addresses) > 0 {
		nm.Status.Addresses = st.Addresses
	}
	conditions.Set(nm, metav1.Condition{Type: infrav1.VMProvisionedCondition, Status: metav1.ConditionFalse, Reason: st.Reason, Message: st.Message})
	log.V(4).Info("VM not running yet", "reason", st.Reason, "message", st.Message)
	return ctrl.Result{}, nil
}

// userPatchError reports whether rendering failed on the NestMachine's VM patches (one does not apply,
// or they add what the Infra cluster's spec.vmPatchPolicy does not allow): the user's to fix; retrying
// would not help.
func userPatchError(err error) bool {
	var pe *kubevirt.PatchError
	var policy *kubevirt.PolicyError
	return errors.As(err, &pe) || errors.As(err, &policy)
}

// machineObjects selects the objects made for a NestMachine by its namespace and name, which a move
// keeps (its UID, in the objects' templates, it does not).
func machineObjects(nm *infrav1.NestMachine) client.MatchingLabels {
	return client.MatchingLabels{infrav1.NestMachineNamespaceLabel: nm.Namespace, infrav1.NestMachineNameLabel: ownership.LabelValue(nm.Name)}
}

// claimVM decides whether the VM found under the machine's VM name is the machine's (ownership.Claim):
// its own, one to adopt (moved here by clusterctl move, or restored: the VM and its bootstrap Secret
// are stamped with this management cluster's identity and the machine's UID, their spec untouched),
// or someone else's, which is never touched: the machine waits and its condition says why.
func (r *NestMachineReconciler) claimVM(ctx context.Context, s *machineScope, in kubevirt.Input, vm *kubevirtv1.VirtualMachine) (bool, error) {
	owner := in.Owner()
	verdict, why := ownership.Claim(r.Identity, owner, ownership.PointsAt(s.nm, s.infraName, vm.Namespace, vm.Name), vm)
	switch verdict {
	case ownership.Ours:
		return true, storeFinalizer(ctx, s)
	case ownership.Adopt:
		if err := storeFinalizer(ctx, s); err != nil {
			return false, err
		}
		c := s.conn.Client()
		secret := &corev1.Secret{}
		err := c.Get(ctx, client.ObjectKey{Namespace: vm.Namespace, Name: in.BootstrapSecretName}, secret)
		switch {
		case err == nil:
			if _, err := patchMetadata(ctx, c, secret, func() bool { return ownership.Stamp(secret, r.Identity, owner) }); err != nil {
				return false, fmt.Errorf("adopting the bootstrap Secret %s in Infra cluster %s: %w", client.ObjectKeyFromObject(secret), s.infraName, err)
			}
		case !apierrors.IsNotFound(err):
			return false, err
		}
		if ownership.Stamp(vm, r.Identity, owner) {
			if err := c.Update(ctx, vm); err != nil {
				return false, fmt.Errorf("adopting VirtualMachine %s in Infra cluster %s: %w", client.ObjectKeyFromObject(vm), s.infraName, err)
			}
		}
		ctrl.LoggerFrom(ctx).Info("Adopted the VirtualMachine", "infraCluster", s.infraName, "vm", client.ObjectKeyFromObject(vm).String(), "why", why)
		return true, nil
	default:
		msg := fmt.Sprintf("VirtualMachine %s/%s in Infra cluster %s is in the way: %s", vm.Namespace, vm.Name, s.infraName, why)
		if verdict == ownership.Earlier {
			msg += "; the sweeper removes it once its grace period has passed"
		}
		ctrl.LoggerFrom(ctx).Info("Waiting: " + msg)
		setWaiting(s.nm, infrav1.VMProvisionedCondition, infrav1.VMNameInUseReason, msg)
		return false, nil
	}
}

// unbalancedRetry is how often a control-plane machine held back by the spread rule looks again.
const unbalancedRetry = 10 * time.Second

// unbalancingControlPlane says why creating this control-plane machine's VM now would break the
// spread rule (internal/placement, the one the admission webhook applies), or "". It counts the
// control-plane NestMachines of the cluster that have a VM already: a Machine admitted past the
// webhook (several webhook replicas, the webhook bypassed) waits here, and proceeds once balance
// allows, rather than put a second control-plane VM where another Infra cluster has none. The
// OpenShift installer's bootstrap machine is neither counted nor held (placement.Spread).
func (r *NestMachineReconciler) unbalancingControlPlane(ctx context.Context, s *machineScope, bootstrap bool) (string, error) {
	list := &infrav1.NestMachineList{}
	if err := r.Client.List(ctx, list, client.InNamespace(s.nm.Namespace),
		client.MatchingLabels{clusterv1.ClusterNameLabel: s.cluster.Name}, client.HasLabels{clusterv1.MachineControlPlaneLabel}); err != nil {
		return "", fmt.Errorf("listing the control-plane NestMachines of %s: %w", s.cluster.Name, err)
	}
	in := placement.Input{Requested: s.infraName, Bootstrap: bootstrap}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name != s.nm.Name && other.DeletionTimestamp.IsZero() && other.Status.Remote != nil && placement.Spread(other.Labels) {
			in.Placed = append(in.Placed, other.Status.FailureDomain)
		}
	}
	healthy := map[string]bool{}
	for _, fd := range s.nestCluster.Status.FailureDomains {
		healthy[fd.Name] = ptr.Deref(fd.ControlPlane, false)
	}
	for _, use := range s.nestCluster.Spec.InfraClusters {
		in.Domains = append(in.Domains, placement.Domain{Name: use.Name, ControlPlane: ptr.Deref(use.ControlPlane, true), Healthy: healthy[use.Name]})
	}
	var rejection *placement.Rejection
	if err := placement.Check(in); errors.As(err, &rejection) && rejection.Reason == placement.ReasonUnbalanced {
		return "not creating the control-plane VM yet: " + rejection.Error(), nil
	}
	return "", nil
}

// invalidBootstrapDataRetry is how often a machine whose bootstrap data is invalid looks again.
const invalidBootstrapDataRetry = time.Minute

// prepareBootstrapData validates bootstrap data of format "ignition" with the Ignition libraries
// before any VM or host is made from it and, given a hostname, merges a file that sets it (as
// Ignition, in the config's own spec version), so that the guest's Node is named as the provider
// expects whatever its DHCP says. A config that already writes /etc/hostname, or replaces itself with
// a remote one, keeps its own. Other formats pass unchanged. The error never quotes the data.
func prepareBootstrapData(data []byte, format, hostname string) ([]byte, error) {
	if format != kubevirt.FormatIgnition {
		return data, nil
	}
	if _, err := ignition.Validate(data); err != nil {
		return nil, fmt.Errorf("the bootstrap data (format ignition) is not a valid Ignition config: %w", err)
	}
	if hostname == "" {
		return data, nil
	}
	out, _, err := ignition.SetHostname(data, hostname)
	switch {
	case errors.Is(err, ignition.ErrReplaced):
		return data, nil
	case err != nil:
		return nil, fmt.Errorf("setting the hostname %s in the Ignition config: %w", hostname, err)
	}
	return out, nil
}

// vmHostname is the hostname a VM's guest gets: the one KubeVirt also writes into its config drive's
// metadata (local_hostname), and the Node name setTenantNodeProviderID looks for.
func vmHostname(vmName string) string { return ignition.ConfigDriveHostname(vmName, "") }

// createVM renders and creates the VM and its bootstrap Secret. It returns nil (and no error) when
// it has to wait: the condition says for what.
func (r *NestMachineReconciler) createVM(ctx context.Context, s *machineScope, in kubevirt.Input) (*kubevirtv1.VirtualMachine, ctrl.Result, error) {
	nm := s.nm
	data, format, err := r.bootstrapData(ctx, s)
	if err != nil {
		var w *waitError
		if errors.As(err, &w) {
			ctrl.LoggerFrom(ctx).Info("Waiting: " + w.message)
			setWaiting(nm, infrav1.BootstrapReadyCondition, w.reason, w.message)
			setWaiting(nm, infrav1.VMProvisionedCondition, w.reason, w.message)
			return nil, ctrl.Result{}, nil
		}
		return nil, ctrl.Result{}, err
	}
	data, err = prepareBootstrapData(data, format, vmHostname(kubevirt.VMName(nm)))
	if err != nil {
		// Invalid data would make a VM that never joins: nothing is created until the bootstrap
		// provider (or whoever wrote the Secret) fixes it; the Secret's update does not wake this
		// machine, the Machine's or a resync does.
		setWaiting(nm, infrav1.BootstrapReadyCondition, infrav1.InvalidBootstrapDataReason, err.Error())
		setWaiting(nm, infrav1.VMProvisionedCondition, infrav1.InvalidBootstrapDataReason, err.Error())
		return nil, ctrl.Result{RequeueAfter: invalidBootstrapDataRetry}, nil
	}
	in.BootstrapFormat = format
	desired, err := kubevirt.RenderVM(in)
	if err != nil {
		if userPatchError(err) {
			// A bad patch is the user's to fix; retrying would not help.
			setWaiting(nm, infrav1.VMProvisionedCondition, infrav1.VMPatchFailedReason, err.Error())
			return nil, ctrl.Result{}, nil
		}
		return nil, ctrl.Result{}, fmt.Errorf("rendering the VirtualMachine: %w", err)
	}
	if err := storeFinalizer(ctx, s); err != nil {
		return nil, ctrl.Result{}, err
	}
	c := s.conn.Client()
	if err := c.Create(ctx, desired); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, ctrl.Result{}, fmt.Errorf("creating VirtualMachine %s/%s in Infra cluster %s: %w", desired.Namespace, desired.Name, s.infraName, err)
		}
		// Our cache had not seen it yet (for example after a restart): use the real one.
		if err := s.conn.Uncached.Get(ctx, client.ObjectKeyFromObject(desired), desired); err != nil {
			return nil, ctrl.Result{}, err
		}
	} else {
		ctrl.LoggerFrom(ctx).Info("Created the VirtualMachine", "infraCluster", s.infraName, "vm", client.ObjectKeyFromObject(desired).String())
	}
	nm.Status.Remote = &infrav1.RemoteObject{InfraCluster: s.infraName, Kind: "VirtualMachine", Namespace: desired.Namespace, Name: desired.Name}
	if err := r.createBootstrapSecretWithData(ctx, s, in, desired, data); err != nil {
		return nil, ctrl.Result{}, err
	}
	return desired, ctrl.Result{}, nil
}

// storeFinalizer stores the NestMachine's finalizer, so that a delete always comes through this
// controller, before anything of the machine is made or changed in the Infra cluster; with it, in the
// same write, the providerID, which names the VM (deterministic) and not what became of it.
func storeFinalizer(ctx context.Context, s *machineScope) error {
	providerID := infrav1.ProviderID(s.infraName, s.namespace, kubevirt.VMName(s.nm))
	return s.patcher.AddFinalizer(ctx, s.nm, infrav1.NestMachineFinalizer, func(nm *infrav1.NestMachine) {
		if nm.Spec.ProviderID == "" {
			nm.Spec.ProviderID = providerID
		}
	})
}

// ensureBootstrapSecret makes sure the VM's bootstrap Secret exists until the machine is provisioned
// (after that the guest has read it; a Secret deleted then is not put back).
func (r *NestMachineReconciler) ensureBootstrapSecret(ctx context.Context, s *machineScope, in kubevirt.Input, vm *kubevirtv1.VirtualMachine) error {
	key := client.ObjectKey{Namespace: s.namespace, Name: in.BootstrapSecretName}
	err := s.conn.Client().Get(ctx, key, &corev1.Secret{})
	if apierrors.IsNotFound(err) && !ptr.Deref(s.nm.Status.Initialization.Provisioned, false) {
		// The cache has not seen it: usually because it was created a moment ago, right after the VM
		// whose event brought this reconcile. Ask the Infra cluster before making it again, which
		// would mean reading the bootstrap data once more.
		err = s.conn.Uncached.Get(ctx, key, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			// Created the VM but not its Secret (a restart in between): make it now.
			data, format, err := r.bootstrapData(ctx, s)
			if err != nil {
				return err
			}
			if data, err = prepareBootstrapData(data, format, vmHostname(vm.Name)); err != nil {
				return &waitError{reason: infrav1.InvalidBootstrapDataReason, message: err.Error()}
			}
			return r.createBootstrapSecretWithData(ctx, s, in, vm, data)
		}
	}
	switch {
	case err == nil:
		conditions.Set(s.nm, metav1.Condition{Type: infrav1.BootstrapReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.SecretCreatedReason})
		return nil
	case apierrors.IsNotFound(err):
		return nil
	default:
		return fmt.Errorf("reading the bootstrap Secret %s in Infra cluster %s: %w", key, s.infraName, err)
	}
}

// createBootstrapSecretWithData puts the bootstrap data next to the VM, owned by it so it goes with it.
func (r *NestMachineReconciler) createBootstrapSecretWithData(ctx context.Context, s *machineScope, in kubevirt.Input, vm *kubevirtv1.VirtualMachine, data []byte) error {
	secret := kubevirt.RenderBootstrapSecret(in, data, nil)
	if err := kubevirt.SetOwner(secret, vm); err != nil {
		return err
	}
	if err := s.conn.Client().Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the bootstrap Secret %s/%s in Infra cluster %s: %w", secret.Namespace, secret.Name, s.infraName, err)
	}
	conditions.Set(s.nm, metav1.Condition{Type: infrav1.BootstrapReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.SecretCreatedReason})
	return nil
}

// reconcileVMDrift brings the fields that may change on an existing VM back to what is rendered.
func reconcileVMDrift(ctx context.Context, s *machineScope, in kubevirt.Input, vm *kubevirtv1.VirtualMachine) error {
	if !vm.DeletionTimestamp.IsZero() {
		return nil
	}
	desired, err := kubevirt.RenderVM(in)
	if err != nil {
		if userPatchError(err) {
			setWaiting(s.nm, infrav1.VMProvisionedCondition, infrav1.VMPatchFailedReason, err.Error())
			return nil
		}
		return fmt.Errorf("rendering the VirtualMachine: %w", err)
	}
	updated, changed := kubevirt.MutableDrift(desired, vm)
	if !changed {
		return nil
	}
	if err := s.conn.Client().Update(ctx, updated); err != nil {
		return fmt.Errorf("correcting drift of VirtualMachine %s/%s in Infra cluster %s: %w", vm.Namespace, vm.Name, s.infraName, err)
	}
	ctrl.LoggerFrom(ctx).Info("Corrected drift of the VirtualMachine", "vm", client.ObjectKeyFromObject(vm).String())
	*vm = *updated
	return nil
}

// deleteVM deletes the VM (its instance and DataVolumes go with it) and the bootstrap Secret, and
// reports whether all of them are gone.
func deleteVM(ctx context.Context, s *machineScope) (bool, error) {
	c := s.conn.Client()
	remote := s.nm.Status.Remote
	key := client.ObjectKey{Namespace: remote.Namespace, Name: remote.Name}
	vm := &kubevirtv1.VirtualMachine{}
	err := c.Get(ctx, key, vm)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	vmGone := apierrors.IsNotFound(err)
	if !vmGone {
		owner := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: s.nm.Namespace, Name: s.nm.Name, UID: s.nm.UID}
		if have, ok := ownership.OwnerOf(vm); !ok || !have.Same(owner) || (have.UID != s.nm.UID && !ownership.PointsAt(s.nm, s.infraName, vm.Namespace, vm.Name)) {
			// Not this machine's (an earlier one's of the same name, or someone else's): not ours to delete.
			ctrl.LoggerFrom(ctx).Info("The VM under this machine's name is not its own: leaving it", "vm", key.String())
			return true, nil
		}
	}
	deletingVM := !vmGone && vm.DeletionTimestamp.IsZero()
	if deletingVM {
		if err := c.Delete(ctx, vm); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("deleting VirtualMachine %s in Infra cluster %s: %w", key, s.infraName, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted the VirtualMachine", "vm", key.String())
	}
	// The bootstrap Secret goes with the VM, and later while the cache still shows it: not again on
	// every reconcile of the deletion, each of which would be a request answered "not found".
	secretKey := client.ObjectKey{Namespace: remote.Namespace, Name: kubevirt.BootstrapSecretName(remote.Name)}
	secret := &corev1.Secret{}
	err = c.Get(ctx, secretKey, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	if deletingVM || (err == nil && secret.DeletionTimestamp.IsZero()) {
		secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretKey.Namespace, Name: secretKey.Name}}
		if err := c.Delete(ctx, secret); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("deleting the bootstrap Secret %s in Infra cluster %s: %w", secretKey, s.infraName, err)
		}
	}
	if !vmGone {
		return false, nil
	}
	if err := c.Get(ctx, key, &kubevirtv1.VirtualMachineInstance{}); !apierrors.IsNotFound(err) {
		return false, client.IgnoreNotFound(err)
	}
	if s.conn.Serves(cdiv1beta1.SchemeGroupVersion.Group) {
		dvs := &cdiv1beta1.DataVolumeList{}
		if err := c.List(ctx, dvs, client.InNamespace(remote.Namespace), machineObjects(s.nm)); err != nil {
			return false, err
		}
		if len(dvs.Items) > 0 {
			return false, nil
		}
	}
	return true, nil
}

// setTenantNodeProviderID sets the providerID of the tenant Node of the machine when no cloud provider
// did, through CAPI's ClusterCache. A tenant cluster that is not reachable yet is not an error: the
// ClusterCache's connect event and the Node watch bring the machine back.
func (r *NestMachineReconciler) setTenantNodeProviderID(ctx context.Context, s *machineScope, nodeName string) {
	if r.ClusterCache == nil {
		return
	}
	clusterKey := client.ObjectKeyFromObject(s.cluster)
	if err := r.ClusterCache.Watch(ctx, clusterKey, clustercache.NewWatcher(clustercache.WatcherOptions{
		Name:         "nestmachine-nodes",
		Watcher:      r.controller,
		Kind:         &corev1.Node{},
		EventHandler: handler.EnqueueRequestsFromMapFunc(r.nodeToNestMachine(s.cluster.Namespace)),
	})); err != nil {
		ctrl.LoggerFrom(ctx).V(4).Info("Tenant cluster not reachable yet: the Node's providerID will be set later", "reason", err.Error())
		return
	}
	tenant, err := r.ClusterCache.GetClient(ctx, clusterKey)
	if err != nil {
		return
	}
	node := &corev1.Node{}
	if err := tenant.Get(ctx, client.ObjectKey{Name: nodeName}, node); err != nil || node.Spec.ProviderID != "" {
		return
	}
	before := node.DeepCopy()
	node.Spec.ProviderID = s.nm.Spec.ProviderID
	if err := tenant.Patch(ctx, node, client.MergeFrom(before)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Setting the tenant Node's providerID", "node", nodeName)
		return
	}
	ctrl.LoggerFrom(ctx).Info("Set the tenant Node's providerID", "node", nodeName, "providerID", s.nm.Spec.ProviderID)
}

// nodeToNestMachine maps a tenant Node to the NestMachine whose VM it is (the VM name is the guest's
// hostname, so the Node's name).
func (r *NestMachineReconciler) nodeToNestMachine(namespace string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return requestsFor(ctx, r.Client, o, &infrav1.NestMachineList{}, client.InNamespace(namespace), client.MatchingFields{nestMachineRemoteNameIndex: o.GetName()})
	}
}
