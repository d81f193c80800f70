package sandbox

import (
	"context"
	"fmt"
	"slices"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/nestcapi/cluster-api-provider-nest/internal/scheme"
)

// namespaceController plays kube-controller-manager's namespace controller, which envtest does not
// run, in an Infra cluster: a namespace being deleted has its content deleted and, once empty, its
// "kubernetes" finalizer removed, so it goes.
type namespaceController struct {
	c         client.Client
	clientset kubernetes.Interface
}

// namespaceContent are the kinds a tenant namespace of an Infra cluster can hold.
var namespaceContent = []client.ObjectList{
	&kubevirtv1.VirtualMachineList{}, &kubevirtv1.VirtualMachineInstanceList{}, &cdiv1beta1.DataVolumeList{},
	&bmov1alpha1.BareMetalHostList{}, &corev1.PodList{}, &corev1.ServiceList{}, &corev1.SecretList{}, &corev1.ConfigMapList{},
	&corev1.PersistentVolumeClaimList{},
}

// runInfraControllers starts, in the infra-th Infra cluster at cfg, what kube-controller-manager and a
// load-balancer implementation would run there that the sandbox needs: the namespace controller and
// the load balancer (loadbalancer.go). They stop with ctx.
func runInfraControllers(ctx context.Context, cfg *rest.Config, infra int, done chan<- error) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		GracefulShutdownTimeout: ptr.To(5 * time.Second),
	})
	if err != nil {
		return fmt.Errorf("creating the namespace controller's manager: %w", err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r := &namespaceController{c: mgr.GetClient(), clientset: clientset}
	if err := ctrl.NewControllerManagedBy(mgr).Named("namespace").
		For(&corev1.Namespace{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return !o.GetDeletionTimestamp().IsZero()
		}))).
		Complete(r); err != nil {
		return err
	}
	if err := addLoadBalancerController(mgr, infra); err != nil {
		return err
	}
	go func() { done <- mgr.Start(ctx) }()
	return nil
}

// Reconcile deletes what is left in a namespace being deleted, then finalizes it. Deletion of the
// content takes the simulators a moment; the namespace is looked at again shortly, as the real
// namespace controller does.
func (r *namespaceController) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := &corev1.Namespace{}
	if err := r.c.Get(ctx, req.NamespacedName, ns); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ns.DeletionTimestamp.IsZero() || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return ctrl.Result{}, nil
	}
	left := 0
	for _, list := range namespaceContent {
		list = list.DeepCopyObject().(client.ObjectList)
		if err := r.c.List(ctx, list, client.InNamespace(ns.Name)); err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			return ctrl.Result{}, err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return ctrl.Result{}, err
		}
		for _, item := range items {
			o := item.(client.Object)
			left++
			if o.GetDeletionTimestamp().IsZero() {
				if err := r.c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
					return ctrl.Result{}, err
				}
			}
		}
	}
	if left > 0 {
		return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
	}
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := r.clientset.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("finalizing namespace %s: %w", ns.Name, err)
	}
	return ctrl.Result{}, nil
}
