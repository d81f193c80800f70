package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// maxOrphans bounds status.orphans (the CRD's maxItems).
const maxOrphans = 1024

var (
	// sweptObjects counts what the sweeper removed (deleted, or for hosts deprovisioned and released).
	sweptObjects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capnest_sweeper_removed_total",
		Help: "Objects the orphan sweeper removed from Infra clusters, by kind.",
	}, []string{"infracluster", "kind"})
	// keptOrphans is how many objects without an owner the last sweep kept (within their grace
	// period, or their Cluster paused): an alert on it staying high finds orphans nobody resolves.
	keptOrphans = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "capnest_sweeper_orphans_kept",
		Help: "Objects without an owner that the last sweep of the Infra cluster kept, with the reason in the log at verbosity 2.",
	}, []string{"infracluster"})
)

func init() {
	metrics.Registry.MustRegister(sweptObjects, keptOrphans)
}

// recordOrphan adds an object to the InfraCluster's status.orphans, under optimistic concurrency so
// two recorders never drop each other's entries.
func recordOrphan(ctx context.Context, c client.Client, ic *infrav1.InfraCluster, o infrav1.OrphanedObject) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		latest := &infrav1.InfraCluster{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(ic), latest); err != nil {
			return err
		}
		if slices.ContainsFunc(latest.Status.Orphans, func(x infrav1.OrphanedObject) bool {
			return x.Kind == o.Kind && x.Namespace == o.Namespace && x.Name == o.Name
		}) || len(latest.Status.Orphans) >= maxOrphans {
			return nil
		}
		before := latest.DeepCopy()
		latest.Status.Orphans = append(latest.Status.Orphans, o)
		return c.Status().Patch(ctx, latest, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}

// sweeper deletes, in connected Infra clusters, what this management cluster made and no owner claims
// any more. It decides with ownership.Decide, from live reads of the management cluster, and never
// looks at objects another management cluster made.
type sweeper struct {
	// cached answers "does the owner exist" first; a "no" is confirmed by live.
	cached, live client.Reader
	id           ownership.Identity
	recorder     record.EventRecorder

	mu sync.Mutex
	// orphanedSince is when this process first saw each object (by UID) without an owner. A restart
	// forgets it, which only delays a deletion.
	orphanedSince map[types.UID]time.Time
}

func newSweeper(cached, live client.Reader, id ownership.Identity, recorder record.EventRecorder) *sweeper {
	return &sweeper{cached: cached, live: live, id: id, recorder: recorder, orphanedSince: map[types.UID]time.Time{}}
}

// sweep deletes, in the connected Infra cluster of ic, every object this management cluster made whose
// owner is gone, as ownership.Decide rules: VMs (their DataVolumes, instances and bootstrap Secrets go
// with them), stray Secrets, control-plane Services and, once empty, tenant namespaces; and it
// deprovisions and releases BareMetalHosts claimed by a NestMachine that is gone. It returns how
// many objects it deleted or released.
func (sw *sweeper) sweep(ctx context.Context, conn *infra.Connection, ic *infrav1.InfraCluster) (int, error) {
	objs, err := sw.mine(ctx, conn)
	errs := []error{err}
	log := ctrl.LoggerFrom(ctx).WithValues("infraCluster", conn.Name)
	orphaned := sets.New[types.UID]()
	deleted, kept := 0, 0
	for _, o := range objs {
		if !o.GetDeletionTimestamp().IsZero() {
			continue
		}
		d, err := sw.decide(ctx, conn.Name, ic, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		what := fmt.Sprintf("%s %s", kindOf(o), client.ObjectKeyFromObject(o))
		if d.Orphaned {
			orphaned.Insert(o.GetUID())
		}
		if !d.Delete {
			if d.Orphaned {
				kept++
				log.V(2).Info("Keeping an orphan", "object", what, "reason", d.Reason)
			}
			continue
		}
		done, err := sw.remove(ctx, conn, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeping %s: %w", what, err))
			continue
		}
		if done {
			deleted++
			sweptObjects.WithLabelValues(conn.Name, kindOf(o)).Inc()
			log.Info("Swept an orphan", "object", what, "reason", d.Reason)
			sw.recorder.Eventf(ic, corev1.EventTypeNormal, infrav1.SweptReason, "Swept %s: %s", what, d.Reason)
		}
	}
	sw.forgetAllBut(orphaned, objs)
	keptOrphans.WithLabelValues(conn.Name).Set(float64(kept))
	return deleted, errors.Join(errs...)
}

// mine lists, from the Infra cluster's cache, what this management cluster made there: VMs, hosts,
// Secrets, Services and tenant namespaces.
func (sw *sweeper) mine(ctx context.Context, conn *infra.Connection) ([]client.Object, error) {
	c := conn.Client()
	selector := client.MatchingLabels{infrav1.ManagedByLabel: infrav1.ManagedByValue, infrav1.ManagementClusterLabel: string(sw.id)}
	lists := []client.ObjectList{&corev1.SecretList{}, &corev1.ServiceList{}, &corev1.NamespaceList{}}
	if conn.Serves(kubevirtv1.GroupVersion.Group) {
		lists = append(lists, &kubevirtv1.VirtualMachineList{})
	}
	if conn.Serves(bmov1alpha1.GroupVersion.Group) {
		lists = append(lists, &bmov1alpha1.BareMetalHostList{})
	}
	var objs []client.Object
	var errs []error
	for _, l := range lists {
		if err := c.List(ctx, l, selector); err != nil {
			errs = append(errs, fmt.Errorf("listing %T in Infra cluster %s: %w", l, conn.Name, err))
			continue
		}
		items, err := objectsOf(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, items...)
	}
	// Namespaces last: a namespace goes only once what is in it has.
	slices.SortStableFunc(objs, func(a, b client.Object) int {
		_, nsA := a.(*corev1.Namespace)
		_, nsB := b.(*corev1.Namespace)
		switch {
		case nsA == nsB:
			return 0
		case nsA:
			return 1
		default:
			return -1
		}
	})
	return objs, errors.Join(errs...)
}

// decide gathers the evidence about one object and applies the rule.
func (sw *sweeper) decide(ctx context.Context, infraName string, ic *infrav1.InfraCluster, o client.Object) (ownership.Decision, error) {
	owner, ok := ownership.OwnerOf(o)
	if !ok {
		return ownership.Decision{Reason: "it names no owner"}, nil
	}
	e := ownership.Evidence{Owner: owner, Grace: orphanGrace(ic)}
	var err error
	if owner.Kind == ownership.KindNestMachine {
		nm := &infrav1.NestMachine{}
		if e.OwnerExists, err = sw.exists(ctx, owner.Key(), nm, owner.UID); err != nil {
			return ownership.Decision{}, err
		}
		if e.OwnerExists {
			e.OwnerUID = string(nm.UID)
			e.OwnerRecordsIt = ownership.RecordsIn(nm, infraName, o.GetNamespace())
		}
	} else if e.OwnerExists, err = sw.exists(ctx, owner.Key(), &infrav1.NestCluster{}, ""); err != nil {
		return ownership.Decision{}, err
	}
	if d := ownership.Decide(e); !d.Orphaned {
		sw.forget(o.GetUID())
		return d, nil
	}
	if e.ClusterPaused, err = sw.clusterPaused(ctx, owner, o); err != nil {
		return ownership.Decision{}, err
	}
	e.Recorded = slices.ContainsFunc(ic.Status.Orphans, func(r infrav1.OrphanedObject) bool {
		return r.Kind == kindOf(o) && r.Namespace == o.GetNamespace() && r.Name == o.GetName()
	})
	e.OrphanedFor = sw.orphanedFor(o.GetUID())
	return ownership.Decide(e), nil
}

// exists reads an owner: from the cache when it is there with the expected UID, else live from the
// API server, so that an absence is never concluded from a cache that has not caught up.
func (sw *sweeper) exists(ctx context.Context, key client.ObjectKey, obj client.Object, uid types.UID) (bool, error) {
	if err := sw.cached.Get(ctx, key, obj); err == nil && (uid == "" || obj.GetUID() == uid) {
		return true, nil
	}
	err := sw.live.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %T %s: %w", obj, key, err)
	}
	return true, nil
}

// clusterPaused reports whether the owner's Cluster exists and is paused, read live. The Cluster is
// named by the object's cluster-name label or, for objects without it (hosts), by the NestCluster's.
func (sw *sweeper) clusterPaused(ctx context.Context, owner ownership.Owner, o client.Object) (bool, error) {
	name := o.GetLabels()[clusterv1.ClusterNameLabel]
	if name == "" {
		nc := &infrav1.NestCluster{}
		if err := sw.live.Get(ctx, client.ObjectKey{Namespace: owner.Namespace, Name: owner.NestCluster}, nc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		name = clusterNameOf(nc)
	}
	cluster := &clusterv1.Cluster{}
	if err := sw.live.Get(ctx, client.ObjectKey{Namespace: owner.Namespace, Name: name}, cluster); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return annotations.IsPaused(cluster, cluster), nil
}

// remove deletes an orphan; a host is deprovisioned and released instead, in one write: with no
// machine left to wait for it, nothing would come back to finish a second step, and a host that is
// deprovisioning is not available, so no claimer takes it early. A namespace goes only once nothing
// of any management cluster is left in it. It reports whether it removed the object.
func (sw *sweeper) remove(ctx context.Context, conn *infra.Connection, o client.Object) (bool, error) {
	c := conn.Client()
	switch o := o.(type) {
	case *bmov1alpha1.BareMetalHost:
		out, _ := metal3.RenderDeprovision(o)
		out, _ = metal3.RenderRelease(out)
		if err := c.Update(ctx, out); err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		return true, nil
	case *corev1.Namespace:
		if empty, err := tenantNamespaceEmpty(ctx, conn, o.Name); err != nil || !empty {
			return false, err
		}
	}
	if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	return true, nil
}

func (sw *sweeper) orphanedFor(uid types.UID) time.Duration {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	since, ok := sw.orphanedSince[uid]
	if !ok {
		since = time.Now()
		sw.orphanedSince[uid] = since
	}
	return time.Since(since)
}

func (sw *sweeper) forget(uid types.UID) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	delete(sw.orphanedSince, uid)
}

// forgetAllBut drops the first sightings of objects of this sweep that are no longer orphans.
func (sw *sweeper) forgetAllBut(orphaned sets.Set[types.UID], objs []client.Object) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for _, o := range objs {
		if !orphaned.Has(o.GetUID()) {
			delete(sw.orphanedSince, o.GetUID())
		}
	}
}

// orphanGrace is the InfraCluster's spec.orphanGracePeriodSeconds.
func orphanGrace(ic *infrav1.InfraCluster) time.Duration {
	return time.Duration(ptr.Deref(ic.Spec.OrphanGracePeriodSeconds, defaultOrphanGracePeriodSeconds)) * time.Second
}

// defaultOrphanGracePeriodSeconds is the CRD's default of spec.orphanGracePeriodSeconds, for objects
// read before defaulting (tests that build them in memory).
const defaultOrphanGracePeriodSeconds = 300

// kindOf names the kind of a remote object as status.orphans records it: its Go type's name, which
// is its Kubernetes kind (VirtualMachine, BareMetalHost, Namespace, Secret, Service).
func kindOf(o client.Object) string {
	return reflect.Indirect(reflect.ValueOf(o)).Type().Name()
}

// remainingOrphans keeps the recorded orphans that still exist in the Infra cluster (their owner may
// not be released yet); the next probe sweeps again while any remain.
func remainingOrphans(ctx context.Context, conn *infra.Connection, orphans []infrav1.OrphanedObject) []infrav1.OrphanedObject {
	var left []infrav1.OrphanedObject
	for _, o := range orphans {
		var obj client.Object
		switch o.Kind {
		case hostKind:
			// A host is never deleted: it is an orphan until it is released.
			if hostStillHeld(ctx, conn, o.Namespace, o.Name) {
				left = append(left, o)
			}
			continue
		case "VirtualMachine":
			obj = &kubevirtv1.VirtualMachine{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Secret":
			obj = &corev1.Secret{}
		case "Service":
			obj = &corev1.Service{}
		default:
			left = append(left, o)
			continue
		}
		key := client.ObjectKey{Namespace: o.Namespace, Name: o.Name}
		if o.Kind == "Namespace" {
			key.Namespace = ""
		}
		if err := conn.Client().Get(ctx, key, obj); err == nil && obj.GetDeletionTimestamp().IsZero() {
			left = append(left, o)
		}
	}
	return left
}
