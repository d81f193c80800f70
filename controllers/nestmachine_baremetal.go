package controllers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	ctrl "sigs.k8s.io/controller-runtime"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// reconcileHost provisions a bare-metal machine on a Metal3 BareMetalHost.
func (r *NestMachineReconciler) reconcileHost(_ context.Context, s *machineScope) (ctrl.Result, error) {
	conditions.Set(s.nm, metav1.Condition{Type: infrav1.HostProvisionedCondition, Status: metav1.ConditionFalse, Reason: "NotImplemented",
		Message: "bare-metal machines are not supported by this build yet"})
	return ctrl.Result{}, nil
}

// deleteHost deprovisions and releases the machine's BareMetalHost.
func (r *NestMachineReconciler) deleteHost(_ context.Context, _ *machineScope) (bool, error) {
	return true, nil
}
