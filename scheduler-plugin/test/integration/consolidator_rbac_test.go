package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/consolidation"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

const (
	// consolidatorRBAC is what a platform team applies for the consolidator, read as shipped.
	consolidatorRBAC = "../../../config/consolidator/rbac.yaml"
	// consolidatorNamespace holds its ServiceAccount and leader-election Lease.
	consolidatorNamespace = "nest-system"
)

// consolidatorRBACObjects decodes config/consolidator/rbac.yaml.
func consolidatorRBACObjects(t *testing.T) []client.Object {
	t.Helper()
	data, err := os.ReadFile(consolidatorRBAC)
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(clientgoscheme.Scheme).UniversalDeserializer()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []client.Object
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("reading %s: %v", consolidatorRBAC, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding %s: %v", consolidatorRBAC, err)
		}
		objs = append(objs, obj.(client.Object))
	}
}

// shippedClusterRole is the consolidator's ClusterRole of config/consolidator.
func shippedClusterRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	for _, obj := range consolidatorRBACObjects(t) {
		if r, ok := obj.(*rbacv1.ClusterRole); ok {
			return r
		}
	}
	t.Fatalf("%s has no ClusterRole", consolidatorRBAC)
	return nil
}

// actAsConsolidator applies config/consolidator/rbac.yaml and returns a client config that
// impersonates its ServiceAccount. Given a suffix, the ServiceAccount, ClusterRole and
// ClusterRoleBinding get it appended to their names, the ClusterRole has rules instead of its
// own, and the leader-election Role is left out: an identity whose grants differ from the
// shipped ones in one place. It returns once the API server authorizes by the new binding.
func actAsConsolidator(ctx context.Context, t *testing.T, restConfig *rest.Config, admin client.Client, suffix string, rules []rbacv1.PolicyRule) *rest.Config {
	t.Helper()
	if err := admin.Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: consolidatorNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", consolidatorNamespace, err)
	}
	var sa string
	for _, obj := range consolidatorRBACObjects(t) {
		switch o := obj.(type) {
		case *v1.ServiceAccount:
			o.Name += suffix
			sa = o.Name
		case *rbacv1.ClusterRole:
			o.Name += suffix
			if suffix != "" {
				o.Rules = rules
			}
		case *rbacv1.ClusterRoleBinding:
			o.Name += suffix
			o.RoleRef.Name += suffix
			for i := range o.Subjects {
				o.Subjects[i].Name += suffix
			}
		default:
			if suffix != "" {
				continue
			}
		}
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
	if sa == "" {
		t.Fatalf("%s has no ServiceAccount", consolidatorRBAC)
	}
	user := "system:serviceaccount:" + consolidatorNamespace + ":" + sa
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + consolidatorNamespace, "system:authenticated"}

	// The authorizer learns of new bindings through a watch: wait until it grants the first
	// rule's first verb.
	if suffix == "" {
		rules = shippedClusterRole(t).Rules
	}
	rule := rules[0]
	clientset := kubernetes.NewForConfigOrDie(restConfig)
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		review, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: rule.APIGroups[0], Resource: rule.Resources[0], Verb: rule.Verbs[0]},
		}}, metav1.CreateOptions{})
		return err == nil && review.Status.Allowed, err
	})
	if err != nil {
		t.Fatalf("%s is not allowed to %s %s within %v: %v", user, rule.Verbs[0], rule.Resources[0], timeout, err)
	}
	impersonating := rest.CopyConfig(restConfig)
	impersonating.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return impersonating
}

// consolidationScenario sets up, in namespace p, VMs that scheduler p places (no other test's
// VMs or pending pods count), on nodes p-full, p-sparse and p-held: p-full runs two VMs,
// p-sparse one, which a round moves to p-full, emptying p-sparse. p-held, cordoned by an
// operator, runs a VM that may not move. It returns the scheduler's name.
func consolidationScenario(ctx context.Context, t *testing.T, c client.Client, clientset kubernetes.Interface, p string) string {
	t.Helper()
	scheduler := p
	createNamespace(ctx, t, clientset, p)
	createNodes(ctx, t, clientset, p, p+"-full", p+"-sparse", p+"-held")
	setCordon(ctx, t, clientset, p+"-held", true, nil) // as an operator
	createVM(ctx, t, c, clientset, p, scheduler, "full-a", p+"-full", kubevirtv1.EvictionStrategyLiveMigrate)
	createVM(ctx, t, c, clientset, p, scheduler, "full-b", p+"-full", kubevirtv1.EvictionStrategyLiveMigrate)
	createVM(ctx, t, c, clientset, p, scheduler, "sparse", p+"-sparse", kubevirtv1.EvictionStrategyLiveMigrate)
	createVM(ctx, t, c, clientset, p, scheduler, "held", p+"-held", kubevirtv1.EvictionStrategyNone)
	return scheduler
}

// createVM creates, in namespace, a VMI running on node as KubeVirt reports it, and its
// virt-launcher pod bound there for scheduler (the suite of its node selector is the namespace).
func createVM(ctx context.Context, t *testing.T, c client.Client, clientset kubernetes.Interface, namespace, scheduler, name, node string, strategy kubevirtv1.EvictionStrategy) {
	t.Helper()
	vmi := createRunningVMI(ctx, t, c, namespace, name, node, strategy)
	pod := vmPod(namespace, "virt-launcher-"+name, namespace, node, "8", "32Gi", map[string]string{kubevirtv1.CreatedByLabel: string(vmi.UID)})
	pod.Spec.SchedulerName = scheduler
	createPod(ctx, t, clientset, pod)
}

func consolidatorFor(c client.Client, scheduler string) *consolidation.Consolidator {
	return &consolidation.Consolidator{Client: c, Options: consolidation.ConsolidatorOptions{
		// Migrations other tests left in flight count too.
		MaxInFlight:   20,
		SchedulerName: scheduler,
		Cordon:        true,
		Labels: consolidation.Labels{
			ClusterName: nestpacking.DefaultClusterNameLabelKey, Role: nestpacking.DefaultRoleLabelKey, ControlPlaneRole: nestpacking.DefaultControlPlaneRoleValue,
		},
	}}
}

// TestTheShippedConsolidatorRoleIsEnoughToCordonMigrateAndUncordon runs consolidation rounds with
// --cordon as the ServiceAccount of config/consolidator, with exactly its grants, against a real
// API server: the first round cordons and marks the node it empties and creates its migration;
// once a VM waits for room, the next round uncordons that node and leaves the node an operator
// cordoned alone. The ServiceAccount may also watch what it lists (the manager's cache does) and
// hold the leader-election Lease with the shipped Role.
func TestTheShippedConsolidatorRoleIsEnoughToCordonMigrateAndUncordon(t *testing.T) {
	ctx := t.Context()
	admin, clientset, restConfig := consolidatorAPIServer(t)
	const p = "rbac"
	scheduler := consolidationScenario(ctx, t, admin, clientset, p)

	asConsolidator := actAsConsolidator(ctx, t, restConfig, admin, "", nil)
	c, err := client.NewWithWatch(asConsolidator, client.Options{Scheme: consolidatorScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	consolidator := consolidatorFor(c, scheduler)

	plan, err := consolidator.RunOnce(ctx)
	if err != nil {
		t.Fatalf("consolidation round as the consolidator's ServiceAccount: %v", err)
	}
	if want := (consolidation.Migration{VM: p + "/sparse", From: p + "-sparse", To: p + "-full"}); len(plan.Migrations) != 1 || plan.Migrations[0] != want {
		t.Fatalf("planned %+v, want [%+v]", plan.Migrations, want)
	}
	expectCordon(ctx, t, admin, p+"-sparse", true, consolidation.CordonedByValue)
	expectCordon(ctx, t, admin, p+"-held", true, "")
	if got := listMigrations(ctx, t, admin, p); len(got) != 1 || got[0].Spec.AddedNodeSelector[v1.LabelHostname] != p+"-full" {
		t.Fatalf("migrations %+v, want one pinned to %s", got, p+"-full")
	}

	// A VM of the scheduler waits for room: the round gives p-sparse back and plans nothing.
	waiting := vmPod(p, "virt-launcher-waiting", p, "", "8", "32Gi", nil)
	waiting.Spec.SchedulerName = scheduler
	createPod(ctx, t, clientset, waiting)
	waiting.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable, LastTransitionTime: metav1.Now()}}
	if _, err := clientset.CoreV1().Pods(p).UpdateStatus(ctx, waiting, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("reporting pod %s unschedulable: %v", waiting.Name, err)
	}
	plan, err = consolidator.RunOnce(ctx)
	if err != nil {
		t.Fatalf("consolidation round with a VM waiting: %v", err)
	}
	if len(plan.Migrations) != 0 {
		t.Errorf("planned %+v while a VM waits for room", plan.Migrations)
	}
	expectCordon(ctx, t, admin, p+"-sparse", false, "")
	expectCordon(ctx, t, admin, p+"-held", true, "")

	for _, list := range []client.ObjectList{&v1.NodeList{}, &v1.PodList{}, &policyv1.PodDisruptionBudgetList{}, &kubevirtv1.VirtualMachineInstanceList{}, &kubevirtv1.VirtualMachineInstanceMigrationList{}} {
		w, err := c.Watch(ctx, list)
		if err != nil {
			t.Errorf("watching %T as the consolidator's ServiceAccount: %v", list, err)
			continue
		}
		w.Stop()
	}
	expectLeader(ctx, t, asConsolidator, admin)
}

// TestEveryRuleOfTheConsolidatorRoleIsNeeded runs a round like the test above as a ServiceAccount
// whose ClusterRole lacks one rule of the shipped one, for each rule a round uses: each fails,
// forbidden. The rules of the metrics endpoint are not used by a round.
func TestEveryRuleOfTheConsolidatorRoleIsNeeded(t *testing.T) {
	ctx := t.Context()
	admin, clientset, restConfig := consolidatorAPIServer(t)
	shipped := shippedClusterRole(t).Rules
	for i, rule := range shipped {
		if slices.Contains(rule.APIGroups, "authentication.k8s.io") || slices.Contains(rule.APIGroups, "authorization.k8s.io") {
			continue
		}
		name := strings.Join(rule.Verbs, ",") + " " + strings.Join(rule.Resources, ",")
		t.Run("without "+name, func(t *testing.T) {
			p := "rbac-without-" + strconv.Itoa(i)
			scheduler := consolidationScenario(ctx, t, admin, clientset, p)
			rules := slices.Delete(slices.Clone(shipped), i, i+1)
			c, err := client.New(actAsConsolidator(ctx, t, restConfig, admin, "-without-"+strconv.Itoa(i), rules), client.Options{Scheme: consolidatorScheme(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = consolidatorFor(c, scheduler).RunOnce(ctx)
			if !apierrors.IsForbidden(err) {
				t.Fatalf("a round without %s: error %v, want forbidden", name, err)
			}
			t.Logf("forbidden, as it should be: %v", err)
		})
	}
}

// expectCordon checks a node's cordon and the consolidator's mark on it ("" for none).
func expectCordon(ctx context.Context, t *testing.T, c client.Client, name string, unschedulable bool, mark string) {
	t.Helper()
	n := &v1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable != unschedulable || n.Annotations[consolidation.CordonedByAnnotation] != mark {
		t.Errorf("node %s: unschedulable %t, %s=%q; want %t, %q", name, n.Spec.Unschedulable, consolidation.CordonedByAnnotation, n.Annotations[consolidation.CordonedByAnnotation], unschedulable, mark)
	}
}

// expectLeader runs a manager with cmd/nest-consolidator's leader election as cfg's identity, on
// short timings: it must be elected (create the Lease), renew it (update), record the Event of its
// election, and release the Lease when it stops (update), all under the shipped Role.
func expectLeader(ctx context.Context, t *testing.T, cfg *rest.Config, admin client.Client) {
	t.Helper()
	ctrl.SetLogger(klog.Background())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        consolidatorScheme(t),
		LeaderElection:                true,
		LeaderElectionID:              consolidation.LeaderElectionID,
		LeaderElectionNamespace:       consolidatorNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(4 * time.Second),
		RenewDeadline:                 ptr.To(3 * time.Second),
		RetryPeriod:                   ptr.To(200 * time.Millisecond),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	elected := make(chan struct{})
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		close(elected)
		<-ctx.Done()
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()
	select {
	case <-elected:
	case err := <-done:
		t.Fatalf("the manager stopped before it was elected: %v", err)
	case <-time.After(timeout):
		cancel()
		<-done
		t.Fatalf("not elected within %v: the Role does not let it create the Lease %s/%s", timeout, consolidatorNamespace, consolidation.LeaderElectionID)
	}
	key := client.ObjectKey{Namespace: consolidatorNamespace, Name: consolidation.LeaderElectionID}
	lease := &coordinationv1.Lease{}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, key, lease); err != nil {
			return false, err
		}
		return lease.Spec.RenewTime != nil && lease.Spec.AcquireTime != nil && lease.Spec.RenewTime.After(lease.Spec.AcquireTime.Time), nil
	})
	if err != nil {
		t.Errorf("the leader did not renew the Lease %s within %v (%+v): %v", key, timeout, lease.Spec, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var events v1.EventList
		if err := admin.List(ctx, &events, client.InNamespace(consolidatorNamespace)); err != nil {
			return false, err
		}
		return slices.ContainsFunc(events.Items, func(e v1.Event) bool {
			return e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == consolidation.LeaderElectionID && e.Reason == "LeaderElection"
		}), nil
	})
	if err != nil {
		t.Errorf("no Event of the election of the Lease %s within %v: %v", key, timeout, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the manager stopped with an error: %v", err)
	}
	if err := admin.Get(context.Background(), key, lease); err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Errorf("the Lease %s is still held by %s: the leader did not release it when it stopped", key, h)
	}
}
