package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/cluster-api/util/patch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// kubeconfigSecretIndex indexes InfraClusters by the name of their kubeconfig Secret.
const kubeconfigSecretIndex = "spec.kubeconfigSecretRef.name"

// fullProbeEvery is how many probes pass between reads of the version and API groups of a connected
// Infra cluster: readyz alone answers "is it up"; discovery changes rarely.
const fullProbeEvery = 6

// InfraClusterReconciler keeps a connection to every InfraCluster, probes its health and publishes
// what it finds on the InfraCluster's status.
type InfraClusterReconciler struct {
	Client client.Client
	// APIReader reads kubeconfig Secrets, whose data the manager does not cache.
	APIReader client.Reader
	// Cache is the manager's cache, which holds the metadata of Secrets (SetupWithManager watches
	// it): the client reads Secrets from the API server, metadata included.
	Cache client.Reader
	// ManagementConfig reaches the management cluster: the Infra cluster of an InfraCluster without
	// a kubeconfig Secret.
	ManagementConfig *rest.Config
	// ProviderNamespace holds the kubeconfig Secrets.
	ProviderNamespace string
	Registry          *infra.Registry
	Recorder          record.EventRecorder
	// Identity is this management cluster's: the sweeper considers only what carries it.
	Identity ownership.Identity

	probes  probeCounter
	sweeper *sweeper
	// kubeconfigsRead records, per InfraCluster, the version of its kubeconfig Secret that its
	// connection was last checked against, so that a probe reads the Secret again only when the
	// cached metadata says it changed.
	kubeconfigsRead sync.Map // InfraCluster name → kubeconfigRead
}

// kubeconfigRead is the kubeconfig Secret version a connection was checked against.
type kubeconfigRead struct {
	uid             types.UID
	resourceVersion string
	identity        string
}

// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=infraclusters,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=infraclusters/status;infraclusters/finalizers,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;update;patch

// SetupWithManager registers the controller: InfraClusters, and the metadata of Secrets in the
// provider namespace so a rotated kubeconfig is picked up at once.
func (r *InfraClusterReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &infrav1.InfraCluster{}, kubeconfigSecretIndex, func(o client.Object) []string {
		ic := o.(*infrav1.InfraCluster)
		if ic.Spec.KubeconfigSecretRef == nil {
			return nil
		}
		return []string{ic.Spec.KubeconfigSecretRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing InfraClusters by kubeconfig Secret: %w", err)
	}
	r.probes = newProbeCounter()
	r.sweeper = newSweeper(mgr.GetClient(), r.APIReader, r.Identity, r.Recorder)
	return ctrl.NewControllerManagedBy(mgr).
		For(&infrav1.InfraCluster{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToInfraClusters),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == r.ProviderNamespace }))).
		WithOptions(opts).
		Complete(r)
}

func (r *InfraClusterReconciler) secretToInfraClusters(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFor(ctx, r.Client, o, &infrav1.InfraClusterList{}, client.MatchingFields{kubeconfigSecretIndex: o.GetName()})
}

// Reconcile probes one Infra cluster and records the result, or releases it once nothing uses it.
func (r *InfraClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	ic := &infrav1.InfraCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, ic); err != nil {
		if apierrors.IsNotFound(err) {
			r.Registry.Remove(req.Name)
			r.kubeconfigsRead.Delete(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	helper, err := patch.NewHelper(ic, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer func() {
		if err := helper.Patch(ctx, ic, patch.WithOwnedConditions{Conditions: []string{
			infrav1.ReachableCondition, infrav1.KubeVirtAvailableCondition, infrav1.Metal3AvailableCondition, infrav1.ReadyCondition,
		}}); err != nil && !apierrors.IsNotFound(err) {
			reterr = errors.Join(reterr, fmt.Errorf("patching InfraCluster %s: %w", ic.Name, err))
		}
	}()

	if !ic.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, ic)
	}
	return r.reconcileNormal(ctx, ic)
}

// reconcileNormal probes the Infra cluster, (re)connects its cache, sweeps what no owner claims and
// records availability, API groups and capacity. A probe failure below the failure threshold keeps
// the connection (hysteresis); past it, the Infra cluster is disconnected and leaves the failure
// domains.
func (r *InfraClusterReconciler) reconcileNormal(ctx context.Context, ic *infrav1.InfraCluster) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	controllerutil.AddFinalizer(ic, infrav1.InfraClusterFinalizer)

	interval, timeout := probeTiming(ic)
	conn, err := r.connection(ctx, ic)
	if err != nil {
		// A missing or bad kubeconfig is for a person to fix; the Secret watch brings us back.
		markUnreachable(ic, err)
		r.Registry.Disconnect(ic.Name)
		return ctrl.Result{RequeueAfter: interval}, nil
	}

	full := !conn.Connected() || r.probes.next(ic.Name)%fullProbeEvery == 0
	res := conn.Probe(ctx, timeout, full)
	now := metav1.Now()
	if res.Err != nil {
		failures := r.probes.fail(ic.Name)
		if threshold := failureThreshold(ic); conn.Connected() && failures < threshold {
			// A blip: the cache keeps serving what it last saw and the failure domain stays.
			msg := fmt.Sprintf("%d of %d probes in a row failed before the Infra cluster is taken as unavailable: %v", failures, threshold, res.Err)
			log.Info("Infra cluster probe failed", "failures", failures, "threshold", threshold, "reason", res.Err.Error())
			if failures == 1 {
				r.Recorder.Event(ic, corev1.EventTypeWarning, infrav1.ProbeFailingReason, msg)
			}
			conditions.Set(ic, metav1.Condition{Type: infrav1.ReachableCondition, Status: metav1.ConditionTrue, Reason: infrav1.ProbeFailingReason, Message: msg})
			setReady(ic)
			setProbeTime(ic, now)
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		if conn.Connected() {
			log.Info("Infra cluster unreachable: disconnecting", "failures", failures, "reason", res.Err.Error())
			r.Recorder.Eventf(ic, corev1.EventTypeWarning, infrav1.BecameUnavailableReason,
				"%d probes in a row failed: the Infra cluster is unavailable and leaves its tenants' failure domains: %v", failures, res.Err)
		}
		r.Registry.Disconnect(ic.Name)
		markUnreachable(ic, &reasonError{reason: infrav1.ProbeFailedReason, err: res.Err})
		setProbeTime(ic, now)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	if r.probes.succeed(ic.Name) > 0 && conn.Connected() {
		r.Recorder.Event(ic, corev1.EventTypeNormal, infrav1.ProbeSucceededReason, "probes succeed again: the blip is over")
	}
	groups := res.Groups
	if !res.Full {
		groups = servedGroups(conn)
	}
	if err := conn.Forbidden(); err != nil {
		// A watch the Infra cluster refuses leaves its kind stale: reconnect once it is granted.
		r.Registry.Disconnect(ic.Name)
		markUnreachable(ic, connectFailure(err))
		setProbeTime(ic, now)
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	justConnected := false
	if !conn.Connected() {
		if err := r.Registry.Connect(ctx, conn, groups); err != nil {
			markUnreachable(ic, connectFailure(err))
			setProbeTime(ic, now)
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		log.Info("Infra cluster connected", "version", res.Version)
		r.Recorder.Eventf(ic, corev1.EventTypeNormal, infrav1.BecameAvailableReason, "connected to the Infra cluster (Kubernetes %s): it is available", res.Version)
		justConnected = true
	}
	// Whatever was orphaned while the Infra cluster was away (or while the manager was down) is
	// swept when it comes back; and at every full probe, so that an object whose NestMachine went
	// away without recording it (a crash between creating it and writing status) does not outlive
	// it by more than a minute. A sweep reads only from the caches.
	if justConnected || len(ic.Status.Orphans) > 0 || res.Full {
		swept, err := r.sweeper.sweep(ctx, conn, ic)
		if err != nil {
			log.Error(err, "Sweeping orphans")
			r.reportForbiddenSweep(ic, err)
		} else {
			if swept > 0 {
				log.Info("Swept orphans", "count", swept)
			}
			ic.Status.Orphans = remainingOrphans(ctx, conn, ic.Status.Orphans)
		}
	}
	if res.Full {
		ic.Status.KubernetesVersion = res.Version
	}
	// No latency in the message: it would change the status at every probe. It is a metric instead.
	conditions.Set(ic, metav1.Condition{Type: infrav1.ReachableCondition, Status: metav1.ConditionTrue, Reason: infrav1.ProbeSucceededReason})
	setAPICondition(ic, infrav1.KubeVirtAvailableCondition, groups.Has(kubevirtv1.GroupVersion.Group), "kubevirt.io (KubeVirt / OpenShift Virtualization)")
	setAPICondition(ic, infrav1.Metal3AvailableCondition, groups.Has(bmov1alpha1.GroupVersion.Group), "metal3.io (Metal3 BareMetalHost)")
	if capacity, err := infra.Capacity(ctx, conn.Client()); err == nil {
		ic.Status.Capacity = capacity
	} else {
		log.Error(err, "Reading the capacity of the Infra cluster")
	}
	setReady(ic)
	setProbeTime(ic, now)
	return ctrl.Result{RequeueAfter: interval}, r.ownKubeconfigSecret(ctx, ic)
}

// connection returns the registry's connection for the InfraCluster, (re)built from its kubeconfig.
func (r *InfraClusterReconciler) connection(ctx context.Context, ic *infrav1.InfraCluster) (*infra.Connection, error) {
	if ic.Spec.KubeconfigSecretRef == nil {
		return r.Registry.Ensure(ic.Name, r.ManagementConfig, "management")
	}
	ref := ic.Spec.KubeconfigSecretRef
	key := client.ObjectKey{Namespace: r.ProviderNamespace, Name: ref.Name}
	if c := r.connectionOfCachedSecret(ctx, ic.Name, key); c != nil {
		return c, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &reasonError{reason: infrav1.KubeconfigSecretNotFoundReason,
				err: fmt.Errorf("Secret %s not found: create it with a kubeconfig for the Infra cluster under key %q", key, ref.Key)}
		}
		return nil, &reasonError{reason: infrav1.KubeconfigSecretNotFoundReason, err: fmt.Errorf("reading Secret %s: %w", key, err)}
	}
	data, ok := secret.Data[ref.Key]
	if !ok {
		return nil, &reasonError{reason: infrav1.KubeconfigInvalidReason, err: fmt.Errorf("Secret %s has no key %q", key, ref.Key)}
	}
	// The kubeconfig's content, not the Secret's resourceVersion: a change of the Secret's metadata
	// (its owner reference, a label) is no reason to reconnect.
	sum := sha256.Sum256(data)
	identity := string(secret.UID) + "/" + hex.EncodeToString(sum[:8])
	r.kubeconfigsRead.Store(ic.Name, kubeconfigRead{uid: secret.UID, resourceVersion: secret.ResourceVersion, identity: identity})
	if c, ok := r.Registry.Lookup(ic.Name); ok && sameIdentity(c, identity) {
		return c, nil
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, &reasonError{reason: infrav1.KubeconfigInvalidReason, err: fmt.Errorf("key %q of Secret %s is not a usable kubeconfig: %w", ref.Key, key, err)}
	}
	conn, err := r.Registry.Ensure(ic.Name, cfg, identity)
	if err != nil {
		return nil, &reasonError{reason: infrav1.KubeconfigInvalidReason, err: err}
	}
	return conn, nil
}

// connectionOfCachedSecret is the Infra cluster's connection when it was built from the version of
// the kubeconfig Secret the manager's cache holds now, or nil. Probes come every few seconds and the
// Secret rarely changes: the metadata the manager caches (the controller watches it) tells whether
// the Secret must be read again, without a request.
func (r *InfraClusterReconciler) connectionOfCachedSecret(ctx context.Context, name string, key client.ObjectKey) *infra.Connection {
	c, ok := r.Registry.Lookup(name)
	if !ok {
		return nil
	}
	v, ok := r.kubeconfigsRead.Load(name)
	if !ok {
		return nil
	}
	m, err := r.secretMetadata(ctx, key)
	if err != nil {
		return nil
	}
	if read := v.(kubeconfigRead); read.uid != m.UID || read.resourceVersion != m.ResourceVersion || !sameIdentity(c, read.identity) {
		return nil
	}
	return c
}

func sameIdentity(c *infra.Connection, identity string) bool { return c.Identity() == identity }

// secretMetadata reads a Secret's metadata from the manager's cache (SetupWithManager watches the
// metadata of Secrets): no request, and none of the Secret's data.
func (r *InfraClusterReconciler) secretMetadata(ctx context.Context, key client.ObjectKey) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Cache.Get(ctx, key, m); err != nil {
		return nil, err
	}
	return m, nil
}

// probeCounter numbers the probes of each Infra cluster, to make every fullProbeEvery-th one full, and
// counts the probes that failed in a row.
type probeCounter struct {
	mu       sync.Mutex
	counts   map[string]int
	failures map[string]int
}

func newProbeCounter() probeCounter {
	return probeCounter{counts: map[string]int{}, failures: map[string]int{}}
}

func (p *probeCounter) next(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[name]++
	return p.counts[name]
}

// fail records a failed probe and returns how many failed in a row.
func (p *probeCounter) fail(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures[name]++
	return p.failures[name]
}

// succeed records a successful probe and returns how many had failed in a row before it.
func (p *probeCounter) succeed(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.failures[name]
	delete(p.failures, name)
	return n
}

func (p *probeCounter) forget(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.counts, name)
	delete(p.failures, name)
}

// failureThreshold is spec.probe.failureThreshold, 3 when unset.
func failureThreshold(ic *infrav1.InfraCluster) int {
	if p := ic.Spec.Probe; p != nil && p.FailureThreshold > 0 {
		return int(p.FailureThreshold)
	}
	return 3
}

func servedGroups(c *infra.Connection) sets.Set[string] {
	groups := sets.New[string]()
	for _, g := range []string{kubevirtv1.GroupVersion.Group, "cdi.kubevirt.io", bmov1alpha1.GroupVersion.Group} {
		if c.Serves(g) {
			groups.Insert(g)
		}
	}
	return groups
}

func probeTiming(ic *infrav1.InfraCluster) (interval, timeout time.Duration) {
	interval, timeout = 10*time.Second, 5*time.Second
	if p := ic.Spec.Probe; p != nil {
		if p.IntervalSeconds > 0 {
			interval = time.Duration(p.IntervalSeconds) * time.Second
		}
		if p.TimeoutSeconds > 0 {
			timeout = time.Duration(p.TimeoutSeconds) * time.Second
		}
	}
	return interval, timeout
}

// setProbeTime records the probe time, but only when something else changed or a minute passed:
// a status write every probe would wake every watcher of InfraClusters for nothing.
func setProbeTime(ic *infrav1.InfraCluster, now metav1.Time) {
	if last := ic.Status.LastProbeTime; last == nil || now.Sub(last.Time) >= time.Minute {
		ic.Status.LastProbeTime = &now
	}
}

func markUnreachable(ic *infrav1.InfraCluster, err error) {
	reason := infrav1.ProbeFailedReason
	if re, ok := err.(*reasonError); ok {
		reason = re.reason
	}
	conditions.Set(ic, metav1.Condition{Type: infrav1.ReachableCondition, Status: metav1.ConditionFalse, Reason: reason, Message: err.Error()})
	for _, t := range []string{infrav1.KubeVirtAvailableCondition, infrav1.Metal3AvailableCondition} {
		if !conditions.Has(ic, t) {
			conditions.Set(ic, metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: reason, Message: "the Infra cluster has not been reached yet"})
		}
	}
	setReady(ic)
}

func setAPICondition(ic *infrav1.InfraCluster, condType string, served bool, what string) {
	if served {
		conditions.Set(ic, metav1.Condition{Type: condType, Status: metav1.ConditionTrue, Reason: infrav1.APIServedReason, Message: what + " is served"})
		return
	}
	conditions.Set(ic, metav1.Condition{Type: condType, Status: metav1.ConditionFalse, Reason: infrav1.APINotServedReason, Message: what + " is not served"})
}

// setReady: an Infra cluster is Ready when it is reachable and serves KubeVirt or Metal3.
func setReady(ic *infrav1.InfraCluster) {
	reach := conditions.Get(ic, infrav1.ReachableCondition)
	switch {
	case reach == nil || reach.Status != metav1.ConditionTrue:
		msg := "not reachable"
		reason := infrav1.ProbeFailedReason
		if reach != nil {
			msg, reason = reach.Message, reach.Reason
		}
		conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: reason, Message: msg})
	case !conditions.IsTrue(ic, infrav1.KubeVirtAvailableCondition) && !conditions.IsTrue(ic, infrav1.Metal3AvailableCondition):
		conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.APINotServedReason,
			Message: "the Infra cluster serves neither KubeVirt (kubevirt.io) nor Metal3 (metal3.io): install OpenShift Virtualization or the baremetal-operator"})
	default:
		conditions.Set(ic, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.ProbeSucceededReason})
	}
}

// reasonError carries a condition reason with an error.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }
