package sandbox

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// loadBalancerController plays an Infra cluster's load-balancer implementation (MetalLB on bare
// metal): every Service of type LoadBalancer gets an address from the Infra cluster's pool, which it
// keeps. Addresses are 172.16.<infra>.<n>, distinct per Infra cluster as on distinct networks.
type loadBalancerController struct {
	c     client.Client
	infra int

	mu   sync.Mutex
	next int
}

func addLoadBalancerController(mgr ctrl.Manager, infra int) error {
	r := &loadBalancerController{c: mgr.GetClient(), infra: infra, next: 10}
	return ctrl.NewControllerManagedBy(mgr).Named("loadbalancer").
		For(&corev1.Service{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			svc, ok := o.(*corev1.Service)
			return ok && svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) == 0
		}))).
		Complete(r)
}

// Reconcile gives a LoadBalancer Service without an address the next one of the pool.
func (r *loadBalancerController) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	svc := &corev1.Service{}
	if err := r.c.Get(ctx, req.NamespacedName, svc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) > 0 || !svc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	r.mu.Lock()
	ip := fmt.Sprintf("172.16.%d.%d", r.infra+1, r.next)
	r.next++
	r.mu.Unlock()
	orig := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: ptrTo(corev1.LoadBalancerIPModeVIP)}}
	if err := r.c.Status().Patch(ctx, svc, client.MergeFrom(orig)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("giving Service %s the address %s: %w", req, ip, err))
	}
	return ctrl.Result{}, nil
}
