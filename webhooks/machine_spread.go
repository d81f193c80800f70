package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/annotations"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// Paths of the control-plane spread webhooks. They are not the paths controller-runtime derives for
// Machine (CAPI's own Machine webhooks use those): these are extra webhooks on a kind this provider
// does not own. The kubebuilder markers below must name the same paths.
const (
	// ControlPlaneSpreadDefaultPath serves the mutating webhook that fills spec.failureDomain.
	ControlPlaneSpreadDefaultPath = "/mutate-cluster-x-k8s-io-v1beta2-machine-nest-controlplane-spread"
	// ControlPlaneSpreadValidatePath serves the validating webhook that enforces the spread.
	ControlPlaneSpreadValidatePath = "/validate-cluster-x-k8s-io-v1beta2-machine-nest-controlplane-spread"
)

// The objectSelector sends only control-plane Machines; the matchConditions, evaluated by the API
// server, only those whose infrastructure is a NestMachine, so other providers' Machines never wait on
// this webhook.
//
// +kubebuilder:webhook:verbs=create,path=/mutate-cluster-x-k8s-io-v1beta2-machine-nest-controlplane-spread,mutating=true,failurePolicy=fail,matchPolicy=Equivalent,groups=cluster.x-k8s.io,resources=machines,versions=v1beta2,name=default.controlplanespread.machine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1,patch=`{"objectSelector":{"matchExpressions":[{"key":"cluster.x-k8s.io/control-plane","operator":"Exists"}]},"matchConditions":[{"name":"infrastructure-is-nestmachine","expression":"has(object.spec) && has(object.spec.infrastructureRef) && has(object.spec.infrastructureRef.kind) && has(object.spec.infrastructureRef.apiGroup) && object.spec.infrastructureRef.kind == 'NestMachine' && object.spec.infrastructureRef.apiGroup == 'infrastructure.cluster.x-k8s.io'"}]}`
// +kubebuilder:webhook:verbs=create;update,path=/validate-cluster-x-k8s-io-v1beta2-machine-nest-controlplane-spread,mutating=false,failurePolicy=fail,matchPolicy=Equivalent,groups=cluster.x-k8s.io,resources=machines,versions=v1beta2,name=validation.controlplanespread.machine.infrastructure.cluster.x-k8s.io,sideEffects=None,admissionReviewVersions=v1,patch=`{"objectSelector":{"matchExpressions":[{"key":"cluster.x-k8s.io/control-plane","operator":"Exists"}]},"matchConditions":[{"name":"infrastructure-is-nestmachine","expression":"has(object.spec) && has(object.spec.infrastructureRef) && has(object.spec.infrastructureRef.kind) && has(object.spec.infrastructureRef.apiGroup) && object.spec.infrastructureRef.kind == 'NestMachine' && object.spec.infrastructureRef.apiGroup == 'infrastructure.cluster.x-k8s.io'"}]}`

// ControlPlaneSpread keeps each tenant's control plane balanced over its Infra clusters. On a CAPI
// Machine with the control-plane label whose infrastructure is a NestMachine, it defaults an empty
// spec.failureDomain to the least-loaded healthy Infra cluster, rejects one that is unknown, not for
// control planes, not healthy, or that would unbalance the control plane (internal/placement has the
// rule), and keeps spec.failureDomain from changing afterwards. KubeadmControlPlane creates the
// NestMachine before the Machine, so the Machine is where this can be decided.
//
// Admissions of one tenant's control plane are decided one at a time, and each admitted Machine is
// counted as placed until the cache shows it (reservations, as kube-scheduler's assume cache does):
// control-plane Machines created at the same moment see each other. That holds within one webhook
// server; with several replicas, the NestMachine controller's own check is what keeps the rule.
type ControlPlaneSpread struct {
	// Client reads Clusters, NestClusters and Machines, from the manager's cache.
	Client client.Reader

	reservations reservations
}

// reservationTTL bounds how long an admitted Machine that never reached the cache (its create failed
// after admission) is counted.
const reservationTTL = time.Minute

// reservations are the control-plane Machines admitted (or given a failure domain by the defaulting
// webhook, for the validation that follows) but not yet seen in the cache, per tenant.
type reservations struct {
	mu sync.Mutex
	// locks serialize the decisions of one tenant (namespace/cluster).
	locks map[string]*sync.Mutex
	// admitted: tenant → Machine name → where it was admitted and when.
	admitted map[string]map[string]reservation
}

type reservation struct {
	failureDomain string
	at            time.Time
}

// lock takes the tenant's decision lock and returns how to release it.
func (r *reservations) lock(tenant string) func() {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*sync.Mutex{}
	}
	l, ok := r.locks[tenant]
	if !ok {
		l = &sync.Mutex{}
		r.locks[tenant] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// pending returns the failure domains of the tenant's admitted Machines that the cache does not show
// yet (cached names the Machines it shows), but self's, forgetting those it shows and those too old.
func (r *reservations) pending(tenant, self string, cached map[string]bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name, res := range r.admitted[tenant] {
		if cached[name] || time.Since(res.at) > reservationTTL {
			delete(r.admitted[tenant], name)
			continue
		}
		if name != self {
			out = append(out, res.failureDomain)
		}
	}
	return out
}

func (r *reservations) remove(tenant, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.admitted[tenant], name)
}

func (r *reservations) add(tenant, name, failureDomain string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admitted == nil {
		r.admitted = map[string]map[string]reservation{}
	}
	if r.admitted[tenant] == nil {
		r.admitted[tenant] = map[string]reservation{}
	}
	r.admitted[tenant][name] = reservation{failureDomain: failureDomain, at: time.Now()}
}

// SetupWebhookWithManager registers the defaulting and validating handlers at their paths.
func (s *ControlPlaneSpread) SetupWebhookWithManager(mgr ctrl.Manager) error {
	server := mgr.GetWebhookServer()
	server.Register(ControlPlaneSpreadDefaultPath, &admission.Webhook{Handler: admission.HandlerFunc(s.Default)})
	server.Register(ControlPlaneSpreadValidatePath, &admission.Webhook{Handler: admission.HandlerFunc(s.Validate)})
	return nil
}

// spreadMachine is the part of a Machine the webhook reads. Decoding only this keeps the path of
// every request cheap and independent of fields CAPI may add.
type spreadMachine struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ClusterName       string                                     `json:"clusterName"`
		InfrastructureRef clusterv1.ContractVersionedObjectReference `json:"infrastructureRef"`
		FailureDomain     string                                     `json:"failureDomain"`
	} `json:"spec"`
}

// ours reports whether the webhook is responsible for the Machine: a control-plane Machine on a
// NestMachine. The webhook configuration already filters on both; this holds when it is bypassed.
func (m *spreadMachine) ours() bool {
	_, controlPlane := m.Metadata.Labels[clusterv1.MachineControlPlaneLabel]
	return controlPlane && m.Spec.InfrastructureRef.Kind == "NestMachine" && m.Spec.InfrastructureRef.APIGroup == infrav1.GroupVersion.Group
}

var failureDomainPath = field.NewPath("spec", "failureDomain")

// Default fills an empty spec.failureDomain of a new control-plane Machine.
func (s *ControlPlaneSpread) Default(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("")
	}
	m := &spreadMachine{}
	if err := json.Unmarshal(req.Object.Raw, m); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the Machine: %w", err))
	}
	if !m.ours() || m.Spec.FailureDomain != "" {
		return admission.Allowed("")
	}
	tenant := req.Namespace + "/" + m.Spec.ClusterName
	defer s.reservations.lock(tenant)()
	in, skip, err := s.input(ctx, req.Namespace, m)
	if err != nil || skip {
		return respond(err)
	}
	chosen, err := placement.Choose(in)
	if err != nil {
		return respond(spreadError(m, in, err))
	}
	if m.Metadata.Name != "" && !in.Bootstrap && !ptr.Deref(req.DryRun, false) {
		// Held for the validation of this very request, so that Machines defaulted together spread.
		s.reservations.add(tenant, m.Metadata.Name, chosen)
	}
	patch, err := json.Marshal([]map[string]string{{"op": "add", "path": "/spec/failureDomain", "value": chosen}})
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	resp := admission.Allowed("spec.failureDomain defaulted to the least-loaded healthy Infra cluster")
	resp.Patch, resp.PatchType = patch, ptr.To(admissionv1.PatchTypeJSONPatch)
	return resp
}

// Validate admits a new control-plane Machine only where the placement rule allows, and keeps the
// failure domain of an existing one.
func (s *ControlPlaneSpread) Validate(ctx context.Context, req admission.Request) admission.Response {
	m := &spreadMachine{}
	if err := json.Unmarshal(req.Object.Raw, m); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the Machine: %w", err))
	}
	if !m.ours() {
		return admission.Allowed("")
	}
	switch req.Operation {
	case admissionv1.Create:
		tenant := req.Namespace + "/" + m.Spec.ClusterName
		defer s.reservations.lock(tenant)()
		in, skip, err := s.input(ctx, req.Namespace, m)
		if err != nil || skip {
			return respond(err)
		}
		in.Requested = m.Spec.FailureDomain
		if err := spreadError(m, in, placement.Check(in)); err != nil {
			s.reservations.remove(tenant, m.Metadata.Name)
			return respond(err)
		}
		if m.Metadata.Name != "" && !in.Bootstrap && !ptr.Deref(req.DryRun, false) {
			s.reservations.add(tenant, m.Metadata.Name, m.Spec.FailureDomain)
		}
		return admission.Allowed("")
	case admissionv1.Update:
		old := &spreadMachine{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old Machine: %w", err))
		}
		if old.Spec.FailureDomain != m.Spec.FailureDomain {
			spreadRejections.WithLabelValues(rejectFailureDomainImmutable).Inc()
			return respond(apierrors.NewInvalid(clusterv1.GroupVersion.WithKind("Machine").GroupKind(), m.Metadata.Name, field.ErrorList{
				field.Forbidden(failureDomainPath, fmt.Sprintf("the Infra cluster of a control-plane NestMachine is immutable (it was %q): a machine does not move between Infra clusters; delete it and let the control plane create a replacement", old.Spec.FailureDomain)),
			}))
		}
	}
	return admission.Allowed("")
}

// input gathers the placement input of a new control-plane Machine: the Infra clusters of its
// NestCluster with their health, and where the cluster's other control-plane machines are. skip is
// true for a paused Cluster, whose Machines are being moved by clusterctl or restored as they were.
func (s *ControlPlaneSpread) input(ctx context.Context, namespace string, m *spreadMachine) (in placement.Input, skip bool, err error) {
	clusterPath := field.NewPath("spec", "clusterName")
	reject := func(reason, detail string) error {
		spreadRejections.WithLabelValues(reason).Inc()
		return apierrors.NewInvalid(clusterv1.GroupVersion.WithKind("Machine").GroupKind(), m.Metadata.Name,
			field.ErrorList{field.Invalid(clusterPath, m.Spec.ClusterName, detail)})
	}
	cluster := &clusterv1.Cluster{}
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: m.Spec.ClusterName}, cluster, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return in, false, reject(rejectClusterNotFound, "Cluster not found: a control-plane NestMachine is placed by its Cluster's NestCluster")
		}
		return in, false, fmt.Errorf("reading Cluster %s/%s: %w", namespace, m.Spec.ClusterName, err)
	}
	if ptr.Deref(cluster.Spec.Paused, false) || annotations.HasPaused(cluster) {
		return in, true, nil
	}
	ref := cluster.Spec.InfrastructureRef
	if ref.Kind != "NestCluster" || ref.APIGroup != infrav1.GroupVersion.Group {
		return in, false, reject(rejectNotNestCluster, fmt.Sprintf("the Cluster's spec.infrastructureRef is %s %q, not a NestCluster: NestMachine control planes need a NestCluster, which lists their Infra clusters", ref.GroupKind(), ref.Name))
	}
	nc := &infrav1.NestCluster{}
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, nc, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return in, false, reject(rejectNestClusterNotFound, fmt.Sprintf("NestCluster %q of the Cluster not found", ref.Name))
		}
		return in, false, fmt.Errorf("reading NestCluster %s/%s: %w", namespace, ref.Name, err)
	}
	healthy := make(map[string]bool, len(nc.Status.FailureDomains))
	for _, fd := range nc.Status.FailureDomains {
		healthy[fd.Name] = ptr.Deref(fd.ControlPlane, false)
	}
	// A NestCluster its controller has not reported on yet (status.infraClusters empty: it was just
	// created, as when a flavor of plain control-plane Machines is applied in one go) is placed by its
	// spec: every Infra cluster is taken to be healthy. The spread still holds; a machine placed in an
	// Infra cluster that turns out unusable waits in the NestMachine controller until it is.
	reported := len(nc.Status.InfraClusters) > 0
	for _, use := range nc.Spec.InfraClusters {
		in.Domains = append(in.Domains, placement.Domain{Name: use.Name, ControlPlane: ptr.Deref(use.ControlPlane, true), Healthy: healthy[use.Name] || !reported})
	}

	in.Bootstrap = !placement.Spread(m.Metadata.Labels)
	machines := &clusterv1.MachineList{}
	if err := s.Client.List(ctx, machines, client.InNamespace(namespace), client.MatchingFields{controlPlaneMachineClusterIndex: m.Spec.ClusterName}, client.UnsafeDisableDeepCopy); err != nil {
		return in, false, fmt.Errorf("listing the control-plane Machines of Cluster %s/%s: %w", namespace, m.Spec.ClusterName, err)
	}
	cached := make(map[string]bool, len(machines.Items))
	for i := range machines.Items {
		other := &machines.Items[i]
		cached[other.Name] = true
		if other.DeletionTimestamp != nil || (m.Metadata.Name != "" && other.Name == m.Metadata.Name) || !placement.Spread(other.Labels) {
			continue
		}
		in.Placed = append(in.Placed, other.Spec.FailureDomain)
	}
	// Admitted a moment ago, not in the cache yet: they count where they were admitted.
	in.Placed = append(in.Placed, s.reservations.pending(namespace+"/"+m.Spec.ClusterName, m.Metadata.Name, cached)...)
	return in, false, nil
}

// spreadError turns a placement rejection into an Invalid status on spec.failureDomain.
func spreadError(m *spreadMachine, in placement.Input, err error) error {
	if err == nil {
		return nil
	}
	var rejection *placement.Rejection
	if !errors.As(err, &rejection) {
		return err
	}
	spreadRejections.WithLabelValues(string(rejection.Reason)).Inc()
	return apierrors.NewInvalid(clusterv1.GroupVersion.WithKind("Machine").GroupKind(), m.Metadata.Name, field.ErrorList{
		field.Invalid(failureDomainPath, in.Requested, rejection.Error()),
	})
}

// respond turns an error into an admission response: an API status (a rejection) as it is, anything
// else (a failed read) as an internal error so that the caller retries.
func respond(err error) admission.Response {
	if err == nil {
		return admission.Allowed("")
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		s := status.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &s}}
	}
	spreadRejections.WithLabelValues(rejectInternalError).Inc()
	return admission.Errored(http.StatusInternalServerError, err)
}
