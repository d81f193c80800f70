package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/controllers/clustercache"
	"sigs.k8s.io/cluster-api/util"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/cluster-api/util/predicates"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

const (
	// nestMachineInfraIndex indexes NestMachines by the Infra cluster they run on (status.failureDomain).
	nestMachineInfraIndex = "status.failureDomain"
	// nestMachineRemoteNameIndex indexes NestMachines by the name of their VM, which is their tenant
	// Node's name.
	nestMachineRemoteNameIndex = "status.remote.name"
)

// NestMachineReconciler turns NestMachines into VirtualMachines (or bare-metal hosts) in the Infra
// cluster named by their Machine's failure domain and reports what they become.
type NestMachineReconciler struct {
	// Client reads from the manager's cache, waiting until it has seen this controller's own writes
	// (read-your-writes): a reconcile never works from the copy before the previous one's write.
	Client client.Client
	// APIReader reads bootstrap Secrets, which the manager does not cache.
	APIReader client.Reader
	Registry  *infra.Registry
	// ClusterCache reaches the tenant clusters, to set a Node's providerID when nothing else does.
	// Nil skips that.
	ClusterCache clustercache.ClusterCache
	Recorder     record.EventRecorder
	WatchFilter  string
	// Identity is this management cluster's, put on everything made in Infra clusters.
	Identity ownership.Identity

	controller controller.Controller
	moved      handOvers[*infrav1.NestMachine]
}

// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestmachines,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestmachines/status;nestmachines/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups=cluster.x-k8s.io,resources=machines;machines/status,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// SetupWithManager registers the controller: NestMachines, their Machines and Clusters, the health of
// Infra clusters, and the VMs, instances, DataVolumes and Secrets of the machines in every Infra
// cluster (from the Infra clusters' caches).
func (r *NestMachineReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &infrav1.NestMachine{}, nestMachineInfraIndex, func(o client.Object) []string {
		if fd := o.(*infrav1.NestMachine).Status.FailureDomain; fd != "" {
			return []string{fd}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing NestMachines by Infra cluster: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &infrav1.NestMachine{}, nestMachineRemoteNameIndex, func(o client.Object) []string {
		if remote := o.(*infrav1.NestMachine).Status.Remote; remote != nil {
			return []string{remote.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing NestMachines by VM name: %w", err)
	}
	log := ctrl.LoggerFrom(ctx)
	remote := r.Registry.Source(
		infra.Watch{Object: &kubevirtv1.VirtualMachine{}, Map: nestMachineOfRemote},
		infra.Watch{Object: &kubevirtv1.VirtualMachineInstance{}, Map: nestMachineOfRemote},
		infra.Watch{Object: &cdiv1beta1.DataVolume{}, Map: nestMachineOfRemote},
		infra.Watch{Object: &corev1.Secret{}, Map: nestMachineOfRemote},
		infra.Watch{Object: &bmov1alpha1.BareMetalHost{}, Map: r.hostToNestMachines},
	)
	clusterToMachines, err := util.ClusterToTypedObjectsMapper(mgr.GetClient(), &infrav1.NestMachineList{}, mgr.GetScheme())
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&infrav1.NestMachine{}, builder.WithPredicates(r.moved.capture(), notOwnWrite(func(nm *infrav1.NestMachine) { nm.Spec.ProviderID = "" }))).
		WithEventFilter(predicates.ResourceHasFilterLabel(mgr.GetScheme(), log, r.WatchFilter)).
		Watches(&clusterv1.Machine{}, handler.EnqueueRequestsFromMapFunc(util.MachineToInfrastructureMapFunc(infrav1.GroupVersion.WithKind("NestMachine")))).
		Watches(&clusterv1.Cluster{}, handler.EnqueueRequestsFromMapFunc(clusterToMachines),
			builder.WithPredicates(predicates.ClusterPausedTransitionsOrInfrastructureProvisioned(mgr.GetScheme(), log))).
		Watches(&infrav1.InfraCluster{}, handler.EnqueueRequestsFromMapFunc(r.infraClusterToNestMachines), builder.WithPredicates(infraClusterHealthChanged())).
		WatchesRawSource(remote).
		WithOptions(opts)
	if r.ClusterCache != nil {
		b = b.WatchesRawSource(r.ClusterCache.GetClusterSource("nestmachine", clusterToMachines))
	}
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	r.controller = c
	return nil
}

// nestMachineOfRemote maps a VM, VMI, DataVolume, Secret or host in an Infra cluster to its
// NestMachine.
var nestMachineOfRemote = ownerOfKind(ownership.KindNestMachine)

func (r *NestMachineReconciler) infraClusterToNestMachines(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFor(ctx, r.Client, o, &infrav1.NestMachineList{}, client.MatchingFields{nestMachineInfraIndex: o.GetName()})
}

// machineScope is what one reconcile of a NestMachine works with.
type machineScope struct {
	nm          *infrav1.NestMachine
	machine     *clusterv1.Machine
	cluster     *clusterv1.Cluster
	infraName   string
	infraObj    *infrav1.InfraCluster
	conn        *infra.Connection
	namespace   string
	nestCluster *infrav1.NestCluster
	// unreachable, when set, is why the provisioned machine's Infra cluster cannot be reached now.
	unreachable string
	// patcher writes the NestMachine: once at the end of the reconcile, and at once where something
	// must be stored before the reconcile goes on (the finalizer).
	patcher *patcher[*infrav1.NestMachine]
}

// Reconcile brings one NestMachine to its desired state.
func (r *NestMachineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	log := ctrl.LoggerFrom(ctx)
	nm := &infrav1.NestMachine{}
	if err := r.Client.Get(ctx, req.NamespacedName, nm); err != nil {
		if apierrors.IsNotFound(err) {
			if moved, ok := r.moved.take(req.NamespacedName); ok {
				return r.moved.finish(ctx, moved, r.handOverMachine)
			}
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if movedAway(nm) {
		// Before the pause check: clusterctl move pauses the Cluster first.
		res, err := r.moved.finish(ctx, nm, r.handOverMachine)
		if err != nil || res.RequeueAfter > 0 {
			return res, err
		}
		return ctrl.Result{}, r.removeFinalizer(ctx, nm)
	}
	machine, err := util.GetOwnerMachine(ctx, r.Client, nm.ObjectMeta)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("getting the owner Machine of NestMachine %s: %w", klog.KObj(nm), err)
	}
	if machine == nil {
		if !nm.DeletionTimestamp.IsZero() && nm.Status.Remote == nil {
			// Never got a Machine and never made anything: nothing to clean up.
			return ctrl.Result{}, r.removeFinalizer(ctx, nm)
		}
		log.Info("Waiting for the Machine controller to set the owner reference on the NestMachine")
		return ctrl.Result{}, nil
	}
	log = log.WithValues("Machine", klog.KObj(machine))
	cluster, err := util.GetClusterFromMetadata(ctx, r.Client, machine.ObjectMeta)
	if err != nil {
		log.Info("Waiting for the Machine's Cluster", "reason", err.Error())
		return ctrl.Result{}, nil
	}
	log = log.WithValues("Cluster", klog.KObj(cluster))
	ctx = ctrl.LoggerInto(ctx, log)

	p := newPatcher(r.Client, nm)
	s := &machineScope{nm: nm, machine: machine, cluster: cluster, patcher: p}
	defer func() {
		summarizeMachine(nm)
		if s.unreachable != "" {
			conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.InfraClusterUnavailableReason, Message: s.unreachable})
		}
		markForbidden(nm, reterr)
		if err := p.Patch(ctx, nm); err != nil && !apierrors.IsNotFound(err) {
			reterr = errors.Join(reterr, err)
		}
	}()
	if setPaused(r.Client.Scheme(), cluster, nm) {
		return ctrl.Result{}, nil
	}

	if !nm.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	// The finalizer is stored before anything is created in an Infra cluster, so that a delete
	// always comes through this controller. A VM machine stores it right before its VM is made
	// (reconcileVM), in one write with its providerID.
	if nm.Spec.KubeVirt == nil {
		if err := p.AddFinalizer(ctx, nm, infrav1.NestMachineFinalizer); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.reconcileNormal(ctx, s)
}

func (r *NestMachineReconciler) reconcileNormal(ctx context.Context, s *machineScope) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	nm := s.nm
	provisionedCondition := infrav1.VMProvisionedCondition
	if nm.Spec.BareMetal != nil {
		provisionedCondition = infrav1.HostProvisionedCondition
	}
	if !ptr.Deref(s.cluster.Status.Initialization.InfrastructureProvisioned, false) {
		log.Info("Waiting for the Cluster's infrastructure (NestCluster) to be provisioned")
		setWaiting(nm, provisionedCondition, infrav1.WaitingForClusterInfrastructureReason, "waiting for the Cluster's NestCluster to be provisioned")
		return ctrl.Result{}, nil
	}
	if err := r.resolveInfra(ctx, s); err != nil {
		var w *waitError
		if errors.As(err, &w) {
			log.Info("Waiting: "+w.message, "reason", w.reason)
			if w.reason == infrav1.InfraClusterUnavailableReason && ptr.Deref(nm.Status.Initialization.Provisioned, false) {
				// Provisioned is what was last seen: not reaching the Infra cluster now does not
				// unprovision the machine. Ready says what is wrong.
				s.unreachable = w.message
				return ctrl.Result{RequeueAfter: w.retry}, nil
			}
			setWaiting(nm, provisionedCondition, w.reason, w.message)
			return ctrl.Result{RequeueAfter: w.retry}, nil
		}
		return ctrl.Result{}, err
	}
	if nm.Spec.KubeVirt != nil {
		return r.reconcileVM(ctx, s)
	}
	return r.reconcileHost(ctx, s)
}

// waitError is a reason to wait that is reported, not retried with backoff: an event brings the
// NestMachine back.
type waitError struct {
	reason, message string
	// retry, when set, is how soon to look again: nothing else would bring the machine back.
	retry time.Duration
}

func (e *waitError) Error() string { return e.message }

// resolveInfra finds the Infra cluster the machine goes to and its connection.
func (r *NestMachineReconciler) resolveInfra(ctx context.Context, s *machineScope) error {
	nc := &infrav1.NestCluster{}
	ref := s.cluster.Spec.InfrastructureRef
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.cluster.Namespace, Name: ref.Name}, nc); err != nil {
		if apierrors.IsNotFound(err) {
			return &waitError{reason: infrav1.WaitingForClusterInfrastructureReason, message: fmt.Sprintf("NestCluster %s not found", ref.Name)}
		}
		return err
	}
	s.nestCluster = nc
	switch {
	case s.nm.Status.FailureDomain != "":
		// Once placed, a machine stays where it landed.
		s.infraName = s.nm.Status.FailureDomain
	case s.machine.Spec.FailureDomain != "":
		s.infraName = s.machine.Spec.FailureDomain
	case len(nc.Spec.InfraClusters) == 1:
		s.infraName = nc.Spec.InfraClusters[0].Name
	default:
		return &waitError{reason: infrav1.WaitingForFailureDomainReason,
			message: fmt.Sprintf("the Machine has no spec.failureDomain and NestCluster %s lists %d Infra clusters: set the failure domain (KubeadmControlPlane and MachineDeployment do)", nc.Name, len(nc.Spec.InfraClusters))}
	}
	if !listsInfra(nc, s.infraName) {
		return &waitError{reason: infrav1.WaitingForFailureDomainReason, message: fmt.Sprintf("failure domain %q is not one of NestCluster %s's Infra clusters", s.infraName, nc.Name)}
	}
	s.nm.Status.FailureDomain = s.infraName
	ic := &infrav1.InfraCluster{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: s.infraName}, ic); err != nil {
		if apierrors.IsNotFound(err) {
			return &waitError{reason: infrav1.InfraClusterUnavailableReason, message: fmt.Sprintf("InfraCluster %s does not exist", s.infraName)}
		}
		return err
	}
	s.infraObj = ic
	if s.nm.Status.Remote == nil && s.nm.Spec.ProviderID == "" {
		// Nothing made yet: the Infra cluster's access rules as they are now decide, so that narrowing
		// them stops new machines there (machines already there stay).
		if why, err := r.refusedAccess(ctx, s, nc, ic); err != nil || why != "" {
			if err != nil {
				return err
			}
			return &waitError{reason: infrav1.NamespaceNotAllowedReason, message: why}
		}
	}
	s.namespace = ownership.TenantNamespace(ic.Spec.TenantNamespacePrefix, s.cluster.Namespace, s.cluster.Name)
	conn, err := r.Registry.Get(s.infraName)
	if err != nil {
		w := &waitError{reason: infrav1.InfraClusterUnavailableReason, message: fmt.Sprintf("Infra cluster %s is not reachable: %s", s.infraName, conditions.GetMessage(ic, infrav1.ReadyCondition))}
		if conditions.IsTrue(ic, infrav1.ReadyCondition) {
			// Ready but (re)connecting: no InfraCluster event follows the connection coming up.
			w.retry = connectingRetry
		}
		return w
	}
	s.conn = conn
	return ensureTenantNamespace(ctx, conn, r.Identity, s.namespace, s.cluster, nc)
}

// refusedAccess says why the InfraCluster does not take a new machine of this tenant now, or "": its
// allowedNamespaces no longer admits the namespace, or the NestCluster's use of it is not for control
// planes and the machine is one.
func (r *NestMachineReconciler) refusedAccess(ctx context.Context, s *machineScope, nc *infrav1.NestCluster, ic *infrav1.InfraCluster) (string, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: s.nm.Namespace}, ns); err != nil {
		return "", fmt.Errorf("reading namespace %s: %w", s.nm.Namespace, err)
	}
	ok, why, err := infra.Allows(ic, ns)
	if err != nil || !ok {
		return why, err
	}
	if _, controlPlane := s.machine.Labels[clusterv1.MachineControlPlaneLabel]; controlPlane {
		for _, use := range nc.Spec.InfraClusters {
			if use.Name == ic.Name && !ptr.Deref(use.ControlPlane, true) {
				return fmt.Sprintf("NestCluster %s uses Infra cluster %s for workers only (controlPlane: false): a control-plane machine is not created there", nc.Name, ic.Name), nil
			}
		}
	}
	return "", nil
}

func listsInfra(nc *infrav1.NestCluster, name string) bool {
	for _, u := range nc.Spec.InfraClusters {
		if u.Name == name {
			return true
		}
	}
	return false
}

func setWaiting(nm *infrav1.NestMachine, condType, reason, message string) {
	conditions.Set(nm, metav1.Condition{Type: condType, Status: metav1.ConditionFalse, Reason: reason, Message: message})
}

// bootstrapData reads the Machine's bootstrap Secret: its data and format.
func (r *NestMachineReconciler) bootstrapData(ctx context.Context, s *machineScope) ([]byte, string, error) {
	name := ptr.Deref(s.machine.Spec.Bootstrap.DataSecretName, "")
	if name == "" {
		return nil, "", &waitError{reason: infrav1.WaitingForBootstrapDataReason, message: "waiting for the bootstrap provider to write the Machine's bootstrap data secret"}
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.machine.Namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", &waitError{reason: infrav1.WaitingForBootstrapDataReason, message: fmt.Sprintf("bootstrap data secret %s not found", name)}
		}
		return nil, "", fmt.Errorf("reading bootstrap data secret %s: %w", name, err)
	}
	data, ok := secret.Data["value"]
	if !ok {
		return nil, "", &waitError{reason: infrav1.WaitingForBootstrapDataReason, message: fmt.Sprintf("bootstrap data secret %s has no key \"value\"", name)}
	}
	format := string(secret.Data["format"])
	if format == "" {
		format = "cloud-config"
	}
	return data, format, nil
}

func (r *NestMachineReconciler) removeFinalizer(ctx context.Context, nm *infrav1.NestMachine) error {
	before := nm.DeepCopy()
	if !controllerutil.RemoveFinalizer(nm, infrav1.NestMachineFinalizer) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Patch(ctx, nm, client.MergeFrom(before)))
}

// releaseOrWait decides what a delete does while the machine's Infra cluster is unreachable: wait
// up to the InfraCluster's grace period, then record the remote object as an orphan (the sweeper
// deletes it when the Infra cluster returns) and release the NestMachine.
func (r *NestMachineReconciler) releaseOrWait(ctx context.Context, s *machineScope, orphan infrav1.OrphanedObject) (ctrl.Result, bool, error) {
	ic := &infrav1.InfraCluster{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: s.infraName}, ic); err != nil {
		if apierrors.IsNotFound(err) {
			// The Infra cluster was unregistered: nothing can reach its objects any more.
			return ctrl.Result{}, true, nil
		}
		return ctrl.Result{}, false, err
	}
	grace := orphanGrace(ic)
	left := grace - time.Since(s.nm.DeletionTimestamp.Time)
	if left > 0 {
		msg := fmt.Sprintf("Infra cluster %s is unreachable: waiting up to %s for it before releasing the machine", s.infraName, left.Round(time.Second))
		ctrl.LoggerFrom(ctx).Info(msg)
		conditions.Set(s.nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.InfraClusterUnavailableReason, Message: msg})
		return ctrl.Result{RequeueAfter: left}, false, nil
	}
	orphan.NestMachine = s.nm.Namespace + "/" + s.nm.Name
	orphan.Since = metav1.Now()
	if err := recordOrphan(ctx, r.Client, ic, orphan); err != nil {
		return ctrl.Result{}, false, fmt.Errorf("recording orphan %s %s/%s on InfraCluster %s: %w", orphan.Kind, orphan.Namespace, orphan.Name, ic.Name, err)
	}
	r.Recorder.Eventf(s.nm, corev1.EventTypeWarning, infrav1.OrphanedReason,
		"Infra cluster %s unreachable for %s: released; %s %s/%s will be swept when it returns", s.infraName, grace, orphan.Kind, orphan.Namespace, orphan.Name)
	return ctrl.Result{}, true, nil
}

func (r *NestMachineReconciler) reconcileDelete(ctx context.Context, s *machineScope) (ctrl.Result, error) {
	nm := s.nm
	nm.Status.Phase = infrav1.NestMachinePhaseDeleting
	conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason})
	if nm.Status.Remote == nil {
		// The cached copy may predate the write that recorded the remote object: ask the API server
		// before concluding there is nothing to delete.
		live := &infrav1.NestMachine{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(nm), live); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		nm.Status.Remote = live.Status.Remote
		if nm.Status.Remote == nil {
			nm.Status.Remote = remoteFromProviderID(nm)
		}
		if nm.Status.Remote == nil {
			controllerutil.RemoveFinalizer(nm, infrav1.NestMachineFinalizer)
			return ctrl.Result{}, nil
		}
	}
	s.infraName = nm.Status.Remote.InfraCluster
	s.namespace = nm.Status.Remote.Namespace
	conn, err := r.Registry.Get(s.infraName)
	if err != nil {
		res, release, err := r.releaseOrWait(ctx, s, infrav1.OrphanedObject{Kind: nm.Status.Remote.Kind, Namespace: nm.Status.Remote.Namespace, Name: nm.Status.Remote.Name})
		if release {
			controllerutil.RemoveFinalizer(nm, infrav1.NestMachineFinalizer)
		}
		return res, err
	}
	s.conn = conn
	var done bool
	if nm.Status.Remote.Kind == "VirtualMachine" {
		done, err = deleteVM(ctx, s)
	} else {
		done, err = r.deleteHost(ctx, s)
	}
	if err != nil || !done {
		return ctrl.Result{}, err
	}
	ctrl.LoggerFrom(ctx).Info("Remote objects gone: releasing the NestMachine")
	controllerutil.RemoveFinalizer(nm, infrav1.NestMachineFinalizer)
	return ctrl.Result{}, nil
}

// remoteFromProviderID is what spec.providerID names, for a machine whose status does not record its
// remote object: clusterctl move carries spec, not status.
func remoteFromProviderID(nm *infrav1.NestMachine) *infrav1.RemoteObject {
	infraName, ns, name, err := infrav1.ParseProviderID(nm.Spec.ProviderID)
	if err != nil {
		return nil
	}
	kind := "VirtualMachine"
	if nm.Spec.BareMetal != nil {
		kind = hostKind
	}
	return &infrav1.RemoteObject{InfraCluster: infraName, Kind: kind, Namespace: ns, Name: name}
}

// summarizeMachine sets phase and Ready from the other conditions.
func summarizeMachine(nm *infrav1.NestMachine) {
	if !nm.DeletionTimestamp.IsZero() {
		return
	}
	provisioned := infrav1.VMProvisionedCondition
	if nm.Spec.BareMetal != nil {
		provisioned = infrav1.HostProvisionedCondition
	}
	c := conditions.Get(nm, provisioned)
	switch {
	case c != nil && c.Status == metav1.ConditionTrue:
		nm.Status.Phase = infrav1.NestMachinePhaseRunning
		conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionTrue, Reason: c.Reason})
	case c == nil:
		nm.Status.Phase = infrav1.NestMachinePhasePending
		conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.PendingReason})
	default:
		nm.Status.Phase = infrav1.NestMachinePhasePending
		if nm.Status.Remote != nil {
			nm.Status.Phase = infrav1.NestMachinePhaseProvisioning
		}
		if c.Reason == infrav1.HostErrorReason || c.Reason == infrav1.VMPatchFailedReason {
			nm.Status.Phase = infrav1.NestMachinePhaseFailed
		}
		conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: c.Reason, Message: c.Message})
	}
}
