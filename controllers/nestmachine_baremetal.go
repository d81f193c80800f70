package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

// errStop ends a reconcile that has set conditions saying what it waits for.
var errStop = errors.New("waiting; the conditions say why")

// hostKind is the kind status.remote records for a bare-metal machine.
const hostKind = "BareMetalHost"

// reconcileHost provisions a bare-metal machine on a Metal3 BareMetalHost of the machine's Infra
// cluster: it finds the host the machine already holds or claims one, then provisions it and reports
// its progress. Host events from the Infra cluster's cache bring the machine back; nothing polls.
func (r *NestMachineReconciler) reconcileHost(ctx context.Context, s *machineScope) (ctrl.Result, error) {
	nm := s.nm
	if !s.conn.Serves(bmov1alpha1.GroupVersion.Group) {
		msg := fmt.Sprintf("Infra cluster %s does not serve metal3.io BareMetalHosts: install the baremetal-operator there or choose another failure domain", s.infraName)
		setWaiting(nm, infrav1.HostClaimedCondition, infrav1.NoHostAvailableReason, msg)
		setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.NoHostAvailableReason, msg)
		return ctrl.Result{}, nil
	}
	host, err := r.heldHost(ctx, s)
	if errors.Is(err, errStop) {
		return ctrl.Result{}, nil
	}
	if err != nil || (host == nil && nm.Status.Remote != nil) {
		return ctrl.Result{}, err
	}
	if host == nil {
		if ptr.Deref(s.machine.Spec.Bootstrap.DataSecretName, "") == "" {
			// As every CAPI provider: no infrastructure before there is something to boot with.
			msg := "waiting for the bootstrap provider to write the Machine's bootstrap data secret"
			setWaiting(nm, infrav1.HostClaimedCondition, infrav1.WaitingForBootstrapDataReason, msg)
			setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.WaitingForBootstrapDataReason, msg)
			return ctrl.Result{}, nil
		}
		if host, err = r.claimHost(ctx, s); err != nil || host == nil {
			return ctrl.Result{}, err
		}
	}
	return r.provisionHost(ctx, s, host)
}

// heldHost returns the host the machine holds: the one status.remote records or, when none is
// recorded, one whose consumerRef names the machine (claimed just before a restart). It returns nil
// with status.remote set when the recorded host is gone; the conditions say so.
func (r *NestMachineReconciler) heldHost(ctx context.Context, s *machineScope) (*bmov1alpha1.BareMetalHost, error) {
	nm := s.nm
	c := s.conn.Client()
	if nm.Status.Remote == nil {
		hosts := &bmov1alpha1.BareMetalHostList{}
		if err := c.List(ctx, hosts, machineObjects(nm)); err != nil {
			return nil, fmt.Errorf("listing BareMetalHosts in Infra cluster %s: %w", s.infraName, err)
		}
		host := metal3.FindClaimed(hosts.Items, nm)
		if host == nil {
			return r.adoptHost(ctx, s)
		}
		ctrl.LoggerFrom(ctx).Info("Found the BareMetalHost this machine had claimed", "host", metal3.HostKey(host))
		return host, r.recordHost(ctx, s, host)
	}
	remote := nm.Status.Remote
	host := &bmov1alpha1.BareMetalHost{}
	err := c.Get(ctx, client.ObjectKey{Namespace: remote.Namespace, Name: remote.Name}, host)
	if apierrors.IsNotFound(err) {
		msg := fmt.Sprintf("BareMetalHost %s/%s, claimed by this machine, no longer exists in Infra cluster %s", remote.Namespace, remote.Name, s.infraName)
		setWaiting(nm, infrav1.HostClaimedCondition, infrav1.HostErrorReason, msg)
		setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.HostErrorReason, msg)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading BareMetalHost %s/%s in Infra cluster %s: %w", remote.Namespace, remote.Name, s.infraName, err)
	}
	return host, nil
}

// adoptHost takes over the host that spec.providerID names when the machine came with it (clusterctl
// move carries spec.providerID, not status) and the host is claimed for a NestMachine of this
// namespace and name: the claim is rewritten for this machine's UID and this management cluster,
// nothing else of the host changes. It returns nil when there is no such host; when the host is
// someone else's, the conditions say so and the machine claims nothing.
func (r *NestMachineReconciler) adoptHost(ctx context.Context, s *machineScope) (*bmov1alpha1.BareMetalHost, error) {
	nm := s.nm
	infraName, ns, name, err := infrav1.ParseProviderID(nm.Spec.ProviderID)
	if err != nil || infraName != s.infraName {
		return nil, nil
	}
	host := &bmov1alpha1.BareMetalHost{}
	if err := s.conn.Client().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, host); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	owner := metal3.Owner{NestMachine: nm, NestClusterName: s.nestCluster.Name, Identity: r.Identity}
	verdict, why := ownership.Claim(r.Identity, ownership.Machine(nm, s.nestCluster.Name), true, host)
	if verdict != ownership.Adopt && verdict != ownership.Ours {
		msg := fmt.Sprintf("spec.providerID names BareMetalHost %s in Infra cluster %s, which is not this machine's: %s", metal3.HostKey(host), s.infraName, why)
		setWaiting(nm, infrav1.HostClaimedCondition, infrav1.HostErrorReason, msg)
		setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.HostErrorReason, msg)
		return nil, errStop
	}
	adopted := metal3.RenderClaim(host, owner)
	if err := s.conn.Client().Update(ctx, adopted); err != nil {
		return nil, fmt.Errorf("adopting BareMetalHost %s in Infra cluster %s: %w", metal3.HostKey(host), s.infraName, err)
	}
	ctrl.LoggerFrom(ctx).Info("Adopted the BareMetalHost spec.providerID names", "host", metal3.HostKey(host), "why", why)
	if err := stampMachineSecrets(ctx, s, r.Identity, host.Namespace); err != nil {
		return nil, err
	}
	return adopted, r.recordHost(ctx, s, adopted)
}

// stampMachineSecrets stamps the Secrets made for the machine in namespace with this management
// cluster's identity and the machine's UID.
func stampMachineSecrets(ctx context.Context, s *machineScope, id ownership.Identity, namespace string) error {
	owner := ownership.Machine(s.nm, s.nestCluster.Name)
	secrets := &corev1.SecretList{}
	if err := s.conn.Client().List(ctx, secrets, client.InNamespace(namespace), machineObjects(s.nm)); err != nil {
		return err
	}
	for i := range secrets.Items {
		secret := &secrets.Items[i]
		if have, ok := ownership.OwnerOf(secret); !ok || !have.Same(owner) {
			continue
		}
		if _, err := patchMetadata(ctx, s.conn.Client(), secret, func() bool { return ownership.Stamp(secret, id, owner) }); err != nil {
			return fmt.Errorf("adopting Secret %s in Infra cluster %s: %w", client.ObjectKeyFromObject(secret), s.infraName, err)
		}
	}
	return nil
}

// claimHost claims an available host matching the machine's selector in its Infra cluster (the
// connection's cache holds no other Infra cluster's hosts: there is no fallback elsewhere). The
// claim is an Update carrying the cached resourceVersion: a conflict means another claimer (or the
// operator) wrote the host first, so the machine picks again among the rest — no lock anywhere. It
// returns nil, with the conditions saying why, when no host is available; a host becoming available
// brings the machine back (hostToNestMachines).
func (r *NestMachineReconciler) claimHost(ctx context.Context, s *machineScope) (*bmov1alpha1.BareMetalHost, error) {
	log := ctrl.LoggerFrom(ctx)
	nm := s.nm
	sel, err := metal3.Selector(nm.Spec.BareMetal.HostSelector)
	if err != nil {
		setWaiting(nm, infrav1.HostClaimedCondition, infrav1.NoHostAvailableReason, err.Error())
		setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.NoHostAvailableReason, err.Error())
		return nil, nil
	}
	c := s.conn.Client()
	owner := metal3.Owner{NestMachine: nm, NestClusterName: s.nestCluster.Name, Identity: r.Identity}
	lost := sets.New[string]()
	checkedRecord := false
	for {
		hosts := &bmov1alpha1.BareMetalHostList{}
		if err := c.List(ctx, hosts, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, fmt.Errorf("listing BareMetalHosts in Infra cluster %s: %w", s.infraName, err)
		}
		candidates, census := metal3.Candidates(hosts.Items, labels.Everything())
		pick := metal3.Choose(candidates, string(nm.UID), lost)
		if pick == nil {
			msg := fmt.Sprintf("no available BareMetalHost in Infra cluster %s matches hostSelector %q: %d match, %d available",
				s.infraName, selectorString(sel), census.Hosts, census.Claimable-lost.Len())
			if lost.Len() > 0 {
				msg += fmt.Sprintf(" (%d just taken by other machines)", lost.Len())
			}
			log.Info("Waiting for a BareMetalHost: " + msg)
			setWaiting(nm, infrav1.HostClaimedCondition, infrav1.NoHostAvailableReason, msg)
			setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.NoHostAvailableReason, msg)
			return nil, nil
		}
		if !checkedRecord {
			// The caches may lag behind this machine's own last claim (status patched, host updated,
			// neither event seen yet): the API server's copy of the NestMachine is the record that
			// prevents claiming a second host.
			checkedRecord = true
			fresh := &infrav1.NestMachine{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(nm), fresh); err != nil {
				return nil, fmt.Errorf("reading NestMachine %s: %w", client.ObjectKeyFromObject(nm), err)
			}
			if fresh.Status.Remote != nil {
				nm.Status.Remote = fresh.Status.Remote
				return r.heldHost(ctx, s)
			}
		}
		claimed := metal3.RenderClaim(pick, owner)
		err := c.Update(ctx, claimed)
		switch {
		case err == nil:
			log.Info("Claimed a BareMetalHost", "host", metal3.HostKey(claimed), "infraCluster", s.infraName)
			return claimed, r.recordHost(ctx, s, claimed)
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			log.V(4).Info("Lost the race for a BareMetalHost: picking another", "host", metal3.HostKey(pick))
			lost.Insert(metal3.HostKey(pick))
		default:
			// The write may have landed even though its answer was lost: look before claiming another.
			fresh := &bmov1alpha1.BareMetalHost{}
			if s.conn.Uncached.Get(ctx, client.ObjectKeyFromObject(pick), fresh) == nil && metal3.IsConsumer(fresh, nm) {
				return fresh, r.recordHost(ctx, s, fresh)
			}
			return nil, fmt.Errorf("claiming BareMetalHost %s in Infra cluster %s: %w", metal3.HostKey(pick), s.infraName, err)
		}
	}
}

func selectorString(sel labels.Selector) string {
	if sel.Empty() {
		return "<any>"
	}
	return sel.String()
}

// recordHost writes the claimed host on status.remote at once, before anything else happens to it,
// so that a restart finds it from the NestMachine and not only from the host's consumerRef. It is a
// patch of its own (on a copy: the deferred patch of the reconcile still sees its own changes).
func (r *NestMachineReconciler) recordHost(ctx context.Context, s *machineScope, host *bmov1alpha1.BareMetalHost) error {
	nm := s.nm
	nm.Status.Remote = &infrav1.RemoteObject{InfraCluster: s.infraName, Kind: hostKind, Namespace: host.Namespace, Name: host.Name}
	nm.Status.FailureDomain = s.infraName
	data, err := json.Marshal(map[string]any{"status": map[string]any{"remote": nm.Status.Remote, "failureDomain": s.infraName}})
	if err != nil {
		return err
	}
	target := &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Namespace: nm.Namespace, Name: nm.Name}}
	if err := r.Client.Status().Patch(ctx, target, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("recording BareMetalHost %s on NestMachine %s: %w", metal3.HostKey(host), client.ObjectKeyFromObject(nm), err)
	}
	return nil
}

// provisionHost puts the machine's data next to the host, asks the operator to provision it, and
// reports what the host says.
func (r *NestMachineReconciler) provisionHost(ctx context.Context, s *machineScope, host *bmov1alpha1.BareMetalHost) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("host", metal3.HostKey(host))
	nm := s.nm
	nm.Status.Remote = &infrav1.RemoteObject{InfraCluster: s.infraName, Kind: hostKind, Namespace: host.Namespace, Name: host.Name}
	if nm.Spec.ProviderID == "" {
		nm.Spec.ProviderID = infrav1.ProviderID(s.infraName, host.Namespace, host.Name)
	}
	if ref := host.Spec.ConsumerRef; ref != nil && !metal3.IsConsumer(host, nm) {
		msg := fmt.Sprintf("BareMetalHost %s was taken over by %s %s/%s while this machine held it", metal3.HostKey(host), ref.Kind, ref.Namespace, ref.Name)
		setWaiting(nm, infrav1.HostClaimedCondition, infrav1.HostErrorReason, msg)
		setWaiting(nm, infrav1.HostProvisionedCondition, infrav1.HostErrorReason, msg)
		return ctrl.Result{}, nil
	}
	conditions.Set(nm, metav1.Condition{Type: infrav1.HostClaimedCondition, Status: metav1.ConditionTrue, Reason: metal3.ClaimedReason,
		Message: fmt.Sprintf("BareMetalHost %s in Infra cluster %s", metal3.HostKey(host), s.infraName)})

	owner := metal3.Owner{NestMachine: nm, NestClusterName: s.nestCluster.Name, Identity: r.Identity}
	if host.Spec.Image == nil && host.Spec.CustomDeploy == nil {
		// The operator reads the data when it starts provisioning: it must be there first.
		if err := r.ensureHostData(ctx, s, owner, host); err != nil {
			var w *waitError
			if errors.As(err, &w) {
				log.Info("Waiting: " + w.message)
				setWaiting(nm, infrav1.BootstrapReadyCondition, w.reason, w.message)
				setWaiting(nm, infrav1.HostProvisionedCondition, w.reason, w.message)
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
	}
	desired, changed := metal3.RenderProvision(host, metal3.Provision{
		Owner: owner, Spec: nm.Spec.BareMetal,
		DataSecretName:  metal3.DataSecretName(host.Name, nm.UID),
		WithNetworkData: nm.Spec.BareMetal.NetworkDataSecretRef != nil,
	})
	if changed {
		if err := s.conn.Client().Update(ctx, desired); err != nil {
			if apierrors.IsConflict(err) {
				// The cache is behind a newer host, which carries our labels: its event brings us back.
				log.V(4).Info("BareMetalHost changed meanwhile: waiting for its event")
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, fmt.Errorf("provisioning BareMetalHost %s in Infra cluster %s: %w", metal3.HostKey(host), s.infraName, err)
		}
		if host.Spec.Image == nil && desired.Spec.Image != nil {
			log.Info("Provisioning the BareMetalHost", "image", desired.Spec.Image.URL)
		}
		host = desired
	}

	p := metal3.ReadProgress(host)
	p.Condition.ObservedGeneration = nm.Generation
	conditions.Set(nm, p.Condition)
	if len(p.Addresses) > 0 {
		nm.Status.Addresses = p.Addresses
	}
	if !p.Provisioned {
		log.V(4).Info("BareMetalHost not provisioned yet", "reason", p.Condition.Reason, "message", p.Condition.Message)
		return ctrl.Result{}, nil
	}
	observeProvisioned(nm, s.infraName, machineKindBareMetal)
	nm.Status.Initialization.Provisioned = ptr.To(true)
	r.setTenantNodeProviderID(ctx, s, p.NodeName)
	return ctrl.Result{}, nil
}

// ensureHostData creates the Secret with the machine's user (and network) data next to the host.
func (r *NestMachineReconciler) ensureHostData(ctx context.Context, s *machineScope, owner metal3.Owner, host *bmov1alpha1.BareMetalHost) error {
	c := s.conn.Client()
	key := client.ObjectKey{Namespace: host.Namespace, Name: metal3.DataSecretName(host.Name, s.nm.UID)}
	if err := c.Get(ctx, key, &corev1.Secret{}); err == nil || !apierrors.IsNotFound(err) {
		if err == nil {
			conditions.Set(s.nm, metav1.Condition{Type: infrav1.BootstrapReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.SecretCreatedReason})
		}
		return err
	}
	userData, format, err := r.bootstrapData(ctx, s)
	if err != nil {
		return err
	}
	// The host's Node is named by its operator's network (its inspected hostname): no hostname added.
	if userData, err = prepareBootstrapData(userData, format, ""); err != nil {
		return &waitError{reason: infrav1.InvalidBootstrapDataReason, message: err.Error()}
	}
	networkData, err := r.networkData(ctx, s)
	if err != nil {
		return err
	}
	secret := metal3.RenderDataSecret(owner, host, userData, networkData)
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the data Secret %s in Infra cluster %s: %w", key, s.infraName, err)
	}
	conditions.Set(s.nm, metav1.Condition{Type: infrav1.BootstrapReadyCondition, Status: metav1.ConditionTrue, Reason: infrav1.SecretCreatedReason})
	return nil
}

// networkData reads the machine's network data Secret (key "networkData") in its namespace.
func (r *NestMachineReconciler) networkData(ctx context.Context, s *machineScope) ([]byte, error) {
	ref := s.nm.Spec.BareMetal.NetworkDataSecretRef
	if ref == nil {
		return nil, nil
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: s.nm.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &waitError{reason: infrav1.WaitingForBootstrapDataReason, message: fmt.Sprintf("network data secret %s not found", ref.Name)}
		}
		return nil, fmt.Errorf("reading network data secret %s: %w", ref.Name, err)
	}
	data, ok := secret.Data[metal3.NetworkDataKey]
	if !ok {
		return nil, &waitError{reason: infrav1.WaitingForBootstrapDataReason, message: fmt.Sprintf("network data secret %s has no key %q", ref.Name, metal3.NetworkDataKey)}
	}
	return data, nil
}

// deleteHost deprovisions the machine's host, waits until the operator has it back, then releases
// it and deletes the data Secret; it reports whether all of that is done. The claim stays while the
// host deprovisions, so no other machine takes a host that still runs this one's image.
func (r *NestMachineReconciler) deleteHost(ctx context.Context, s *machineScope) (bool, error) {
	nm := s.nm
	remote := nm.Status.Remote
	key := client.ObjectKey{Namespace: remote.Namespace, Name: remote.Name}
	log := ctrl.LoggerFrom(ctx).WithValues("host", key.String())
	c := s.conn.Client()
	host := &bmov1alpha1.BareMetalHost{}
	err := c.Get(ctx, key, host)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("reading BareMetalHost %s in Infra cluster %s: %w", key, s.infraName, err)
	}
	if err == nil && !metal3.IsConsumer(host, nm) && host.Spec.ConsumerRef == nil {
		// Released already, or a cache that has not seen the claim yet: ask the API server.
		err = s.conn.Uncached.Get(ctx, key, host)
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("reading BareMetalHost %s in Infra cluster %s: %w", key, s.infraName, err)
		}
	}
	if apierrors.IsNotFound(err) || !metal3.IsConsumer(host, nm) {
		return true, deleteHostData(ctx, s)
	}

	if out, changed := metal3.RenderDeprovision(host); changed {
		if err := c.Update(ctx, out); err != nil {
			if apierrors.IsConflict(err) {
				return false, nil // the newer host's event brings us back
			}
			return false, fmt.Errorf("deprovisioning BareMetalHost %s in Infra cluster %s: %w", key, s.infraName, err)
		}
		log.Info("Deprovisioning the BareMetalHost")
		host = out
	}
	if !metal3.Deprovisioned(host) {
		conditions.Set(nm, metav1.Condition{Type: infrav1.ReadyCondition, Status: metav1.ConditionFalse, Reason: infrav1.DeletingReason,
			Message: fmt.Sprintf("waiting for BareMetalHost %s to deprovision: it is in state %q", key, host.Status.Provisioning.State)})
		return false, nil
	}
	if out, changed := metal3.RenderRelease(host); changed {
		if err := c.Update(ctx, out); err != nil {
			if apierrors.IsConflict(err) {
				return false, nil
			}
			return false, fmt.Errorf("releasing BareMetalHost %s in Infra cluster %s: %w", key, s.infraName, err)
		}
		log.Info("Released the BareMetalHost")
	}
	return true, deleteHostData(ctx, s)
}

// deleteHostData deletes the data Secrets made for the machine next to its host: found by the
// machine's namespace and name, so that one made before a move (named after the machine's earlier
// UID) goes too.
func deleteHostData(ctx context.Context, s *machineScope) error {
	remote := s.nm.Status.Remote
	owner := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: s.nm.Namespace, Name: s.nm.Name}
	secrets := &corev1.SecretList{}
	if err := s.conn.Client().List(ctx, secrets, client.InNamespace(remote.Namespace), machineObjects(s.nm)); err != nil {
		return fmt.Errorf("listing the data Secrets in Infra cluster %s: %w", s.infraName, err)
	}
	for i := range secrets.Items {
		secret := &secrets.Items[i]
		if have, ok := ownership.OwnerOf(secret); !ok || !have.Same(owner) {
			continue
		}
		if err := s.conn.Client().Delete(ctx, secret); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the data Secret %s in Infra cluster %s: %w", client.ObjectKeyFromObject(secret), s.infraName, err)
		}
	}
	return nil
}

// hostToNestMachines maps a BareMetalHost event to the NestMachine that holds the host and, when the
// host may be claimed, to the bare-metal NestMachines of that Infra cluster still waiting for a host
// it matches: a host becoming available is what unblocks them, so they never poll.
func (r *NestMachineReconciler) hostToNestMachines(ctx context.Context, infraName string, o client.Object) []reconcile.Request {
	reqs := nestMachineOfRemote(ctx, infraName, o)
	host, ok := o.(*bmov1alpha1.BareMetalHost)
	if !ok || !metal3.Claimable(host) {
		return reqs
	}
	list := &infrav1.NestMachineList{}
	if err := r.Client.List(ctx, list, client.MatchingFields{nestMachineInfraIndex: infraName}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing the NestMachines waiting for a BareMetalHost", "infraCluster", infraName)
		return reqs
	}
	for i := range list.Items {
		nm := &list.Items[i]
		if nm.Spec.BareMetal == nil || nm.Status.Remote != nil || !nm.DeletionTimestamp.IsZero() {
			continue
		}
		if sel, err := metal3.Selector(nm.Spec.BareMetal.HostSelector); err == nil && sel.Matches(labels.Set(host.Labels)) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nm)})
		}
	}
	return reqs
}

// hostStillHeld reports whether a host recorded as an orphan still carries this provider's claim.
func hostStillHeld(ctx context.Context, conn *infra.Connection, namespace, name string) bool {
	host := &bmov1alpha1.BareMetalHost{}
	if err := conn.Client().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, host); err != nil {
		return !apierrors.IsNotFound(err)
	}
	return metal3.IsNestConsumer(host) || host.Labels[infrav1.ManagedByLabel] == infrav1.ManagedByValue
}
