package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/cluster-api/util/predicates"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// infraClustersIndex indexes NestClusters by the InfraClusters they list.
const infraClustersIndex = "spec.infraClusters.name"

// NestClusterReconciler makes each listed Infra cluster ready for a tenant (its namespace there),
// publishes the healthy ones as failure domains, provides the control-plane endpoint, and restores a
// control plane to one machine per Infra cluster after an Infra cluster returns.
type NestClusterReconciler struct {
	Client   client.Client
	Registry *infra.Registry
	Recorder record.EventRecorder
	// WatchFilter reconciles only objects with this cluster.x-k8s.io/watch-filter label value.
	WatchFilter string
	// Identity is this management cluster's, put on everything made in Infra clusters.
	Identity ownership.Identity

	moved handOvers[*infrav1.NestCluster]
}

// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestclusters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestclusters/status;nestclusters/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups=cluster.x-k8s.io,resources=clusters;clusters/status;machines,verbs=get;list;watch
// +kubebuilder:rbac:groups=controlplane.cluster.x-k8s.io,resources=kubeadmcontrolplanes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// SetupWithManager registers the controller and its watches: Clusters, InfraClusters whose health
// changes, control-plane Machines, and the tenant's namespaces and Services in the Infra clusters.
func (r *NestClusterReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &infrav1.NestCluster{}, infraClustersIndex, func(o client.Object) []string {
		nc := o.(*infrav1.NestCluster)
		names := make([]string, 0, len(nc.Spec.InfraClusters))
		for _, u := range nc.Spec.InfraClusters {
			names = append(names, u.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing NestClusters by InfraCluster: %w", err)
	}
	log := ctrl.LoggerFrom(ctx)
	remote := r.Registry.Source(
		infra.Watch{Object: &corev1.Namespace{}, Map: nestClusterOfRemote},
		infra.Watch{Object: &corev1.Service{}, Map: nestClusterOfRemote},
	)
	return ctrl.NewControllerManagedBy(mgr).
		For(&infrav1.NestCluster{}, builder.WithPredicates(r.moved.capture())).
		WithEventFilter(predicates.ResourceHasFilterLabel(mgr.GetScheme(), log, r.WatchFilter)).
		Watches(&clusterv1.Cluster{},
			handler.EnqueueRequestsFromMapFunc(util.ClusterToInfrastructureMapFunc(ctx, infrav1.GroupVersion.WithKind("NestCluster"), mgr.GetClient(), &infrav1.NestCluster{})),
			builder.WithPredicates(predicates.ClusterPausedTransitions(mgr.GetScheme(), log))).
		Watches(&infrav1.InfraCluster{}, handler.EnqueueRequestsFromMapFunc(r.infraClusterToNestClusters),
			builder.WithPredicates(infraClusterHealthChanged())).
		Watches(&clusterv1.Machine{}, handler.EnqueueRequestsFromMapFunc(r.clusterObjectToNestCluster),
			builder.WithPredicates(isControlPlaneMachine())).
		Watches(&clusterv1.Machine{}, handler.EnqueueRequestsFromMapFunc(r.workerMachineToOpenShiftCluster),
			builder.WithPredicates(workerMachineCreatedOrDeleted())).
		Watches(&controlplanev1.KubeadmControlPlane{}, handler.EnqueueRequestsFromMapFunc(r.clusterObjectToNestCluster)).
		WatchesRawSource(remote).
		WithOptions(opts).
		Complete(r)
}

// nestClusterOfRemote maps a tenant namespace or Service in an Infra cluster to its NestCluster.
var nestClusterOfRemote = ownerOfKind(ownership.KindNestCluster)

func (r *NestClusterReconciler) infraClusterToNestClusters(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFor(ctx, r.Client, o, &infrav1.NestClusterList{}, client.MatchingFields{infraClustersIndex: o.GetName()})
}

// clusterObjectToNestCluster maps a Machine or KubeadmControlPlane, by its cluster-name label, to the
// NestCluster of its Cluster: a control plane finishing a rollout may now need (or no longer need) a
// restore.
func (r *NestClusterReconciler) clusterObjectToNestCluster(ctx context.Context, o client.Object) []reconcile.Request {
	cluster, err := util.GetClusterByName(ctx, r.Client, o.GetNamespace(), o.GetLabels()[clusterv1.ClusterNameLabel])
	if err != nil || !cluster.Spec.InfrastructureRef.IsDefined() || cluster.Spec.InfrastructureRef.Kind != "NestCluster" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: cluster.Namespace, Name: cluster.Spec.InfrastructureRef.Name}}}
}

// infraClusterHealthChanged passes InfraCluster events that can change a tenant's failure domains:
// creation, deletion, a spec change (allowedNamespaces), a Ready transition.
func infraClusterHealthChanged() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldIC, okOld := e.ObjectOld.(*infrav1.InfraCluster)
			newIC, okNew := e.ObjectNew.(*infrav1.InfraCluster)
			if !okOld || !okNew {
				return false
			}
			return oldIC.Generation != newIC.Generation ||
				conditions.IsTrue(oldIC, infrav1.ReadyCondition) != conditions.IsTrue(newIC, infrav1.ReadyCondition) ||
				!newIC.DeletionTimestamp.IsZero()
		},
	}
}

func isControlPlaneMachine() predicate.Funcs {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, ok := o.GetLabels()[clusterv1.MachineControlPlaneLabel]
		return ok
	})
}

// workerMachineCreatedOrDeleted passes the creation and deletion of worker Machines: the first worker
// moves an OpenShift tenant's ingress from its control plane to its workers, the last moves it back.
func workerMachineCreatedOrDeleted() predicate.Funcs {
	worker := func(o client.Object) bool {
		_, cp := o.GetLabels()[clusterv1.MachineControlPlaneLabel]
		return !cp
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return worker(e.Object) },
		DeleteFunc: func(e event.DeleteEvent) bool { return worker(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return worker(e.ObjectNew) && e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// workerMachineToOpenShiftCluster maps a worker Machine to its NestCluster when that publishes
// OpenShift endpoints (the others do not care about workers).
func (r *NestClusterReconciler) workerMachineToOpenShiftCluster(ctx context.Context, o client.Object) []reconcile.Request {
	reqs := r.clusterObjectToNestCluster(ctx, o)
	nc := &infrav1.NestCluster{}
	if len(reqs) == 0 || r.Client.Get(ctx, reqs[0].NamespacedName, nc) != nil || nc.Spec.OpenShiftEndpoints == nil {
		return nil
	}
	return reqs
}

// Reconcile brings one NestCluster to its desired state.
func (r *NestClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	log := ctrl.LoggerFrom(ctx)
	nc := &infrav1.NestCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, nc); err != nil {
		if moved, ok := r.moved.take(req.NamespacedName); ok && apierrors.IsNotFound(err) {
			return r.moved.finish(ctx, moved, r.handOverCluster)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if movedAway(nc) {
		// Before the pause check: clusterctl move pauses the Cluster first.
		res, err := r.moved.finish(ctx, nc, r.handOverCluster)
		if err != nil || res.RequeueAfter > 0 || !controllerutil.ContainsFinalizer(nc, infrav1.NestClusterFinalizer) {
			return res, err
		}
		before := nc.DeepCopy()
		controllerutil.RemoveFinalizer(nc, infrav1.NestClusterFinalizer)
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, nc, client.MergeFrom(before)))
	}
	cluster, err := util.GetOwnerCluster(ctx, r.Client, nc.ObjectMeta)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("getting the owner Cluster of NestCluster %s: %w", klog.KObj(nc), err)
	}
	if cluster == nil {
		log.Info("Waiting for the Cluster controller to set the owner reference on the NestCluster")
		return ctrl.Result{}, nil
	}
	log = log.WithValues("Cluster", klog.KObj(cluster))
	ctx = ctrl.LoggerInto(ctx, log)

	p := newPatcher(r.Client, nc)
	defer func() {
		if err := p.Patch(ctx, nc); err != nil && !apierrors.IsNotFound(err) {
			reterr = errors.Join(reterr, err)
		}
	}()
	if setPaused(r.Client.Scheme(), cluster, nc) {
		return ctrl.Result{}, nil
	}

	if !nc.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, cluster, nc)
	}
	// Stored before anything is created in an Infra cluster, so that a delete comes through here.
	if err := p.AddFinalizer(ctx, nc, infrav1.NestClusterFinalizer); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileNormal(ctx, cluster, nc)
}

// connectingRetry is how soon a NestCluster looks again at a Ready Infra cluster whose connection is
// being (re)built.
const connectingRetry = 2 * time.Second

// infraUse is what the controller found for one listed Infra cluster.
type infraUse struct {
	use       infrav1.InfraClusterUse
	ic        *infrav1.InfraCluster
	conn      *infra.Connection
	namespace string
	usable    bool
	reason    string
	// connecting: the InfraCluster is Ready but its connection is not up yet.
	connecting bool
}

func (r *NestClusterReconciler) reconcileNormal(ctx context.Context, cluster *clusterv1.Cluster, nc *infrav1.NestCluster) (ctrl.Result, error) {
	uses, err := r.resolveInfraClusters(ctx, nc)
	if err != nil {
		return ctrl.Result{}, err
	}
	var errs []error
	for _, u := range uses {
		if !u.usable {
			continue
		}
		if err := ensureTenantNamespace(ctx, u.conn, r.Identity, u.namespace, cluster, nc); err != nil {
			u.usable, u.reason = false, infrav1.TenantNamespaceNotUsableReason+": "+err.Error()
			errs = append(errs, err)
		}
	}
	publishInfraStatus(nc, uses)

	endpointErr := r.reconcileEndpoint(ctx, cluster, nc, uses)
	if endpointErr != nil {
		errs = append(errs, endpointErr)
	}
	if len(nc.Status.FailureDomains) > 0 && endpointReady(cluster, nc) {
		nc.Status.Initialization.Provisioned = ptr.To(true)
	}
	if err := r.reconcileRestore(ctx, cluster, nc, uses); err != nil {
		errs = append(errs, err)
	}
	setNestClusterReady(nc)
	var res ctrl.Result
	if slices.ContainsFunc(uses, func(u *infraUse) bool { return u.connecting }) {
		res.RequeueAfter = connectingRetry
	}
	return res, errors.Join(errs...)
}

// resolveInfraClusters checks, for each listed Infra cluster, that it exists, admits this namespace,
// is Ready and connected.
func (r *NestClusterReconciler) resolveInfraClusters(ctx context.Context, nc *infrav1.NestCluster) ([]*infraUse, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: nc.Namespace}, ns); err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", nc.Namespace, err)
	}
	clusterName := clusterNameOf(nc)
	uses := make([]*infraUse, 0, len(nc.Spec.InfraClusters))
	for _, use := range nc.Spec.InfraClusters {
		u := &infraUse{use: use}
		uses = append(uses, u)
		ic := &infrav1.InfraCluster{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: use.Name}, ic); err != nil {
			if apierrors.IsNotFound(err) {
				u.reason = fmt.Sprintf("%s: InfraCluster %s does not exist", infrav1.InfraClusterNotFoundReason, use.Name)
				continue
			}
			return nil, fmt.Errorf("reading InfraCluster %s: %w", use.Name, err)
		}
		u.ic = ic
		u.namespace = ownership.TenantNamespace(ic.Spec.TenantNamespacePrefix, nc.Namespace, clusterName)
		ok, why, err := infra.Allows(ic, ns)
		if err != nil || !ok {
			if err != nil {
				why = err.Error()
			}
			u.reason = infrav1.NamespaceNotAllowedReason + ": " + why
			continue
		}
		if !conditions.IsTrue(ic, infrav1.ReadyCondition) {
			u.reason = fmt.Sprintf("%s: InfraCluster %s is not Ready: %s", infrav1.InfraClusterNotReadyReason, ic.Name, conditions.GetMessage(ic, infrav1.ReadyCondition))
			continue
		}
		conn, err := r.Registry.Get(ic.Name)
		if err != nil {
			// Ready but (re)connecting, e.g. after a kubeconfig rotation: no InfraCluster event
			// follows the connection coming up, so look again shortly.
			u.reason, u.connecting = fmt.Sprintf("%s: %v", infrav1.InfraClusterNotReadyReason, err), true
			continue
		}
		u.conn, u.usable = conn, true
	}
	return uses, nil
}

// publishInfraStatus writes status.infraClusters, status.failureDomains and InfraClustersReady.
func publishInfraStatus(nc *infrav1.NestCluster, uses []*infraUse) {
	statuses := make([]infrav1.InfraClusterUseStatus, 0, len(uses))
	domains := make([]clusterv1.FailureDomain, 0, len(uses))
	var problems []string
	for _, u := range uses {
		statuses = append(statuses, infrav1.InfraClusterUseStatus{Name: u.use.Name, Namespace: u.namespace, Usable: u.usable, Reason: truncate(u.reason, 1024)})
		if !u.usable {
			problems = append(problems, u.reason)
			continue
		}
		domains = append(domains, clusterv1.FailureDomain{Name: u.use.Name, ControlPlane: ptr.To(ptr.Deref(u.use.ControlPlane, true))})
	}
	nc.Status.InfraClusters = statuses
	nc.Status.FailureDomains = domains
	setLossTolerated(nc)
	if len(problems) == 0 {
		conditions.Set(nc, metav1.Condition{Type: infrav1.InfraClustersReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.AllUsableReason})
		return
	}
	reason := strings.SplitN(problems[0], ":", 2)[0]
	conditions.Set(nc, metav1.Condition{Type: infrav1.InfraClustersReadyCondition, Status: metav1.ConditionFalse, Reason: reason,
		Message: truncate(strings.Join(problems, "; "), 10240)})
}

// setLossTolerated says whether the control plane can survive losing a whole Infra cluster: that takes
// three Infra clusters for control planes (two cannot hold an odd control plane without one holding a
// majority).
func setLossTolerated(nc *infrav1.NestCluster) {
	controlPlanes := 0
	for _, use := range nc.Spec.InfraClusters {
		if ptr.Deref(use.ControlPlane, true) {
			controlPlanes++
		}
	}
	c := metav1.Condition{Type: infrav1.InfraClusterLossToleratedCondition, Status: metav1.ConditionTrue, Reason: infrav1.ThreeOrMoreInfraClustersReason}
	switch {
	case controlPlanes == 2:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, infrav1.TwoInfraClustersReason, infrav1.TwoInfraClustersMessage
	case controlPlanes < 2:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, infrav1.OneInfraClusterReason, "one Infra cluster takes control-plane machines: losing it stops the control plane (the single-Infra designs)"
	}
	conditions.Set(nc, c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// setNestClusterReady sets Ready. It is not CAPI's conditions.SetSummaryCondition over the other
// conditions, on purpose: a NestCluster stays Ready while its endpoint is known and at least one of
// its Infra clusters is usable. Losing one of three Infra clusters is what the HA design survives: it
// shows as InfraClustersReady False (and the lost failure domain), not as a tenant whose
// infrastructure is down; a summary, which any False condition turns False, would say the latter.
func setNestClusterReady(nc *infrav1.NestCluster) {
	switch {
	case !ptr.Deref(nc.Status.Initialization.Provisioned, false):
		msg := "waiting for a usable Infra cluster and the control-plane endpoint"
		if c := conditions.Get(nc, infrav1.ControlPlaneEndpointReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
			msg = c.Message
		}
		if c := conditions.Get(nc, infrav1.InfraClustersReadyCondition); c != nil && c.Status != metav1.ConditionTrue && len(nc.Status.FailureDomains) == 0 {
			msg = c.Message
		}
		conditions.Set(nc, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.NotProvisionedReason, Message: msg})
	case len(nc.Status.FailureDomains) == 0:
		conditions.Set(nc, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.InfraClusterNotReadyReason,
			Message: conditions.GetMessage(nc, infrav1.InfraClustersReadyCondition)})
	default:
		conditions.Set(nc, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.ProvisionedReason})
	}
}

// reconcileDelete removes the Service and, once empty, the tenant namespaces it created in every
// Infra cluster, then releases the NestCluster. An Infra cluster that stays unreachable past its grace
// period is recorded as holding an orphan, which the sweeper removes when it returns.
func (r *NestClusterReconciler) reconcileDelete(ctx context.Context, cluster *clusterv1.Cluster, nc *infrav1.NestCluster) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	conditions.Set(nc, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason})
	clusterName := clusterNameOf(nc)
	var waiting []string
	var requeue time.Duration
	for _, use := range nc.Spec.InfraClusters {
		ic := &infrav1.InfraCluster{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: use.Name}, ic); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return ctrl.Result{}, err
		}
		namespace := ownership.TenantNamespace(ic.Spec.TenantNamespacePrefix, nc.Namespace, clusterName)
		conn, err := r.Registry.Get(ic.Name)
		if err != nil {
			grace := orphanGrace(ic)
			left := grace - time.Since(nc.DeletionTimestamp.Time)
			if left > 0 {
				waiting = append(waiting, fmt.Sprintf("Infra cluster %s is unreachable (giving up in %s)", ic.Name, left.Round(time.Second)))
				requeue = minPositive(requeue, left)
				continue
			}
			if err := recordOrphan(ctx, r.Client, ic, infrav1.OrphanedObject{Kind: "Namespace", Namespace: namespace, Name: namespace,
				NestMachine: "", Since: metav1.Now()}); err != nil {
				return ctrl.Result{}, err
			}
			r.Recorder.Eventf(nc, corev1.EventTypeWarning, infrav1.OrphanedReason,
				"Infra cluster %s unreachable for %s: namespace %s left behind, to be swept when it returns", ic.Name, grace, namespace)
			continue
		}
		done, err := deleteTenantObjects(ctx, conn, r.Identity, namespace, cluster, nc)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !done {
			waiting = append(waiting, fmt.Sprintf("namespace %s in Infra cluster %s still holds machines", namespace, ic.Name))
		}
	}
	if len(waiting) > 0 {
		log.Info("Waiting before releasing the NestCluster", "waitingFor", strings.Join(waiting, "; "))
		conditions.Set(nc, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason, Message: strings.Join(waiting, "; ")})
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	controllerutil.RemoveFinalizer(nc, infrav1.NestClusterFinalizer)
	return ctrl.Result{}, nil
}

func minPositive(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}
