package clusterctl_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// TestConsolidatorManifestsApplyToAnInfraCluster builds config/consolidator with kustomize, as `make
// release-manifests` does for nest-consolidator.yaml, and checks that it is off by default (neither
// config/default nor config/scheduler brings any of it), that its objects refer to each other
// (the Deployment runs as the ServiceAccount its bindings grant, the leader-election Role is in
// the Lease's namespace), and that an API server accepts every object: created in a server-side
// dry run with strict field validation, as `kubectl apply` sends them (the Namespace for real,
// so that the namespaced objects have one).
func TestConsolidatorManifestsApplyToAnInfraCluster(t *testing.T) {
	t.Parallel()
	root := envtest.RepoRoot()
	kustomize := tool(t, "kustomize", "kustomize")
	objs := objects(t, run(t, nil, kustomize, "build", filepath.Join(root, "config", "consolidator")))

	for _, dir := range []string{"default", "scheduler"} {
		for _, obj := range objects(t, run(t, nil, kustomize, "build", filepath.Join(root, "config", dir))) {
			if strings.Contains(obj.GetName(), "consolidator") {
				t.Errorf("config/%s has %s %s: the consolidator is off by default, deployed from config/consolidator only", dir, obj.GetKind(), obj.GetName())
			}
		}
	}

	var (
		d                  appsv1.Deployment
		clusterBinding     rbacv1.ClusterRoleBinding
		leaderElection     rbacv1.RoleBinding
		serviceAccount     string
		clusterRole, roles []string
	)
	for _, obj := range objs {
		switch obj.GetKind() {
		case "Deployment":
			fromUnstructured(t, obj, &d)
		case "ServiceAccount":
			serviceAccount = obj.GetNamespace() + "/" + obj.GetName()
		case "ClusterRole":
			clusterRole = append(clusterRole, obj.GetName())
		case "Role":
			roles = append(roles, obj.GetNamespace()+"/"+obj.GetName())
		case "ClusterRoleBinding":
			fromUnstructured(t, obj, &clusterBinding)
		case "RoleBinding":
			fromUnstructured(t, obj, &leaderElection)
		}
	}
	if got := d.Namespace + "/" + d.Spec.Template.Spec.ServiceAccountName; got != serviceAccount {
		t.Errorf("the Deployment runs as %s, the ServiceAccount is %s", got, serviceAccount)
	}
	subjects := func(s []rbacv1.Subject) []string {
		var out []string
		for _, s := range s {
			out = append(out, s.Kind+" "+s.Namespace+"/"+s.Name)
		}
		return out
	}
	if !slices.Equal(subjects(clusterBinding.Subjects), []string{"ServiceAccount " + serviceAccount}) || !slices.Equal(clusterRole, []string{clusterBinding.RoleRef.Name}) {
		t.Errorf("ClusterRoleBinding %s binds %s to %v; want the ClusterRole %v to %s", clusterBinding.Name, clusterBinding.RoleRef.Name, subjects(clusterBinding.Subjects), clusterRole, serviceAccount)
	}
	args := d.Spec.Template.Spec.Containers[0].Command
	if !slices.Contains(args, "--leader-election-namespace="+leaderElection.Namespace) ||
		!slices.Equal(roles, []string{leaderElection.Namespace + "/" + leaderElection.RoleRef.Name}) ||
		!slices.Equal(subjects(leaderElection.Subjects), []string{"ServiceAccount " + serviceAccount}) {
		t.Errorf("leader election: RoleBinding %s/%s binds Role %s to %v, Roles %v; the consolidator runs %v",
			leaderElection.Namespace, leaderElection.Name, leaderElection.RoleRef.Name, subjects(leaderElection.Subjects), roles, args)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || !slices.Contains(args, "--leader-elect=true") {
		t.Errorf("the Deployment runs %v replicas with %v: want one, with leader election", d.Spec.Replicas, args)
	}

	env, err := envtest.Start(envtest.Options{})
	if err != nil {
		t.Fatalf("starting an API server: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the API server: %v", err)
		}
	})
	ctx := context.Background()
	for _, obj := range objs {
		var opts []client.CreateOption
		if obj.GetKind() != "Namespace" {
			opts = []client.CreateOption{client.DryRunAll}
		}
		opts = append(opts, client.FieldValidation(metav1.FieldValidationStrict))
		if err := env.Client.Create(ctx, obj.DeepCopy(), opts...); err != nil {
			t.Errorf("the API server rejects %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

func fromUnstructured(t *testing.T, obj unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}
