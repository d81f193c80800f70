package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/cluster-api/util/patch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// NestMachineTemplateReconciler publishes what a machine of a template offers (status.capacity and
// status.nodeInfo), so the cluster autoscaler can scale a MachineDeployment up from zero.
type NestMachineTemplateReconciler struct {
	Client client.Client
}

// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates,verbs=get;list;watch
// +kubebuilder:rbac:groups=infrastructure.cluster.x-k8s.io,resources=nestmachinetemplates/status,verbs=get;update;patch

// SetupWithManager registers the controller.
func (r *NestMachineTemplateReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).For(&infrav1.NestMachineTemplate{}).WithOptions(opts).Complete(r)
}

// Reconcile derives the capacity of one template.
func (r *NestMachineTemplateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	t := &infrav1.NestMachineTemplate{}
	if err := r.Client.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	helper, err := patch.NewHelper(t, r.Client)
	if err != nil {
		return ctrl.Result{}, err
	}
	defer func() {
		if err := helper.Patch(ctx, t, patch.WithOwnedConditions{Conditions: []string{infrav1.CapacityKnownCondition}}); err != nil && !apierrors.IsNotFound(err) {
			reterr = errors.Join(reterr, fmt.Errorf("patching NestMachineTemplate %s: %w", klog.KObj(t), err))
		}
	}()
	capacity, why := TemplateCapacity(&t.Spec.Template.Spec)
	t.Status.NodeInfo = infrav1.NodeInfo{Architecture: "amd64", OperatingSystem: "linux"}
	if capacity == nil {
		t.Status.Capacity = nil
		conditions.Set(t, metav1.Condition{Type: infrav1.CapacityKnownCondition, Status: metav1.ConditionFalse, Reason: infrav1.CapacityNotDerivableReason, Message: why})
		return ctrl.Result{}, nil
	}
	t.Status.Capacity = capacity
	conditions.Set(t, metav1.Condition{Type: infrav1.CapacityKnownCondition, Status: metav1.ConditionTrue, Reason: infrav1.CapacityFromSpecReason})
	return ctrl.Result{}, nil
}

// TemplateCapacity is the cpu and memory a machine of the spec offers, or nil and why not.
func TemplateCapacity(spec *infrav1.NestMachineSpec) (corev1.ResourceList, string) {
	kv := spec.KubeVirt
	switch {
	case kv == nil:
		return nil, "bare-metal capacity depends on the host that is claimed"
	case kv.Instancetype != nil:
		return nil, fmt.Sprintf("capacity comes from instancetype %s in the Infra cluster, which the template does not carry", kv.Instancetype.Name)
	case kv.CPU == nil || kv.Memory == nil:
		return nil, "spec.template.spec.kubevirt has no cpu or memory"
	}
	vcpus := int64(kv.CPU.Cores) * int64(max(kv.CPU.Sockets, 1)) * int64(max(kv.CPU.Threads, 1))
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(vcpus, resource.DecimalSI),
		corev1.ResourceMemory: kv.Memory.DeepCopy(),
	}, ""
}
