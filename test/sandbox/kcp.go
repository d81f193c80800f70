package sandbox

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certificateExpiry plays the one read KubeadmControlPlane makes that the sandbox's machines cannot
// answer: the expiry of a control-plane machine's API server certificate, which KCP reads through a
// port-forward to the kube-apiserver pod on the node and records on the machine's KubeadmConfig. The
// simulated machines have no API server to forward to, so the sandbox records the expiry kubeadm
// gives that certificate (one year) once the machine has a Node.
type certificateExpiry struct {
	c    client.Client
	mu   sync.Mutex
	done map[string]bool
}

// observe records the expiry for a KCP-owned Machine that has a Node, once.
func (e *certificateExpiry) observe(ctx context.Context, m *clusterv1.Machine) {
	if _, ok := m.Labels[clusterv1.MachineControlPlaneLabel]; !ok || !m.Status.NodeRef.IsDefined() ||
		m.Spec.Bootstrap.ConfigRef.Kind != "KubeadmConfig" || !m.DeletionTimestamp.IsZero() {
		return
	}
	key := m.Namespace + "/" + m.Spec.Bootstrap.ConfigRef.Name
	e.mu.Lock()
	if e.done[key] {
		e.mu.Unlock()
		return
	}
	e.done[key] = true
	e.mu.Unlock()
	go func() {
		cfg := &bootstrapv1.KubeadmConfig{}
		err := e.c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Spec.Bootstrap.ConfigRef.Name}, cfg)
		if err == nil {
			if _, ok := cfg.Annotations[clusterv1.MachineCertificatesExpiryDateAnnotation]; ok {
				return
			}
			orig := cfg.DeepCopy()
			if cfg.Annotations == nil {
				cfg.Annotations = map[string]string{}
			}
			cfg.Annotations[clusterv1.MachineCertificatesExpiryDateAnnotation] = time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339)
			err = e.c.Patch(ctx, cfg, client.MergeFrom(orig))
		}
		if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			ctrl.LoggerFrom(ctx).Error(err, "Recording the API server certificate expiry", "KubeadmConfig", key)
			e.mu.Lock()
			delete(e.done, key)
			e.mu.Unlock()
		}
	}()
}

// externalEtcdDeferral is the message with which KubeadmControlPlane (CAPI v1.14) defers the
// remediation of a control-plane Machine when it has not listed the etcd members. It lists them only
// for a managed (stacked) etcd, so with an external etcd it never remediates.
const externalEtcdDeferral = "Failed to check etcd cluster health before remediation"

// etcdRemediation plays what KubeadmControlPlane would do for a Machine that a MachineHealthCheck
// marked and KCP deferred only because it cannot see the members of the (external) etcd: it deletes
// the Machine, as KCP does once its etcd checks pass (the sandbox's etcd is the tenant API server's
// own, outside the machines, and healthy). KCP then creates the replacement in the failure domain
// with the fewest machines, as after its own remediation.
type etcdRemediation struct {
	c    client.Client
	mu   sync.Mutex
	done map[types.UID]bool
}

// observe deletes a Machine KCP deferred for that reason, once.
func (r *etcdRemediation) observe(ctx context.Context, m *clusterv1.Machine) {
	if !m.DeletionTimestamp.IsZero() {
		return
	}
	owner := metav1.GetControllerOf(m)
	if owner == nil || owner.Kind != "KubeadmControlPlane" {
		return
	}
	c := conditions.Get(m, clusterv1.MachineOwnerRemediatedCondition)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != controlplanev1.KubeadmControlPlaneMachineRemediationDeferredReason || c.Message != externalEtcdDeferral {
		return
	}
	r.mu.Lock()
	if r.done[m.UID] {
		r.mu.Unlock()
		return
	}
	r.done[m.UID] = true
	r.mu.Unlock()
	go func() {
		err := r.c.Delete(ctx, &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID}},
			client.Preconditions{UID: &m.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
			ctrl.LoggerFrom(ctx).Error(err, "Remediating a control-plane Machine", "Machine", m.Namespace+"/"+m.Name)
			r.mu.Lock()
			delete(r.done, m.UID)
			r.mu.Unlock()
		}
	}()
}
