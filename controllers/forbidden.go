package controllers

import (
	"errors"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cluster-api/util/conditions"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
)

// An Infra cluster that refuses the provider's identity a request (its RBAC lacks a grant that
// config/infra-rbac ships) is reported with reason Forbidden and a message naming the verb, resource
// and namespace, instead of a generic error: on the NestMachine whose reconcile was refused, and on
// the InfraCluster when its cache or its sweeper was.

// markForbidden reports a refusal that ended a NestMachine's reconcile (err is its error): on the
// provisioned condition while the machine is not provisioned yet, and on Ready. The reconcile is
// retried with backoff, so a grant made later takes effect without anything else changing.
func markForbidden(nm *infrav1.NestMachine, err error) {
	var fe *infra.ForbiddenError
	if !errors.As(err, &fe) {
		return
	}
	c := metav1.Condition{Status: metav1.ConditionFalse, Reason: infrav1.ForbiddenReason, Message: fe.Error()}
	if nm.DeletionTimestamp.IsZero() && !ptr.Deref(nm.Status.Initialization.Provisioned, false) {
		c.Type = infrav1.VMProvisionedCondition
		if nm.Spec.BareMetal != nil {
			c.Type = infrav1.HostProvisionedCondition
		}
		conditions.Set(nm, c)
	}
	c.Type = infrav1.ReadyCondition
	conditions.Set(nm, c)
}

// connectFailure is why connecting to an Infra cluster failed, with the reason for its Reachable
// condition: Forbidden when the Infra cluster refused a list or watch of the cache.
func connectFailure(err error) *reasonError {
	if errors.As(err, new(*infra.ForbiddenError)) {
		return &reasonError{reason: infrav1.ForbiddenReason, err: err}
	}
	return &reasonError{reason: infrav1.ProbeFailedReason, err: err}
}

// reportForbiddenSweep makes a refusal met by the sweeper a warning event on the InfraCluster: the
// orphans it could not remove stay until the grant is fixed.
func (r *InfraClusterReconciler) reportForbiddenSweep(ic *infrav1.InfraCluster, err error) {
	var fe *infra.ForbiddenError
	if errors.As(err, &fe) {
		r.Recorder.Eventf(ic, corev1.EventTypeWarning, infrav1.ForbiddenReason, "Sweeping orphans: %v", fe)
	}
}
