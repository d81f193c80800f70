package controllers_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cluster-api/util/conditions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	metal3sim "github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
)

// infraRBACObjects reads config/infra-rbac as its kustomization lists it: the files a platform team
// applies to an Infra cluster, not a copy of them.
func infraRBACObjects(t *testing.T) []client.Object {
	t.Helper()
	g := NewWithT(t)
	dir := filepath.Join(envtest.RepoRoot(), "config", "infra-rbac")
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var k struct {
		Resources []string `json:"resources"`
	}
	g.Expect(yaml.Unmarshal(data, &k)).To(Succeed())
	decoder := serializer.NewCodecFactory(envtest.Scheme()).UniversalDeserializer()
	var objs []client.Object
	for _, file := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, file))
		g.Expect(err).NotTo(HaveOccurred())
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			g.Expect(err).NotTo(HaveOccurred())
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := decoder.Decode(doc, nil, nil)
			g.Expect(err).NotTo(HaveOccurred(), "decoding %s", file)
			objs = append(objs, obj.(client.Object))
		}
	}
	return objs
}

// grantInfraRBAC applies config/infra-rbac to env. Given a suffix, the ServiceAccount, ClusterRole
// and ClusterRoleBinding get it appended to their names and edit changes the ClusterRole's rules: an
// identity whose grants differ from the shipped ones in one place. It returns the ServiceAccount's name.
func grantInfraRBAC(t *testing.T, env *envtest.Environment, suffix string, edit func([]rbacv1.PolicyRule) []rbacv1.PolicyRule) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	var sa string
	for _, obj := range infraRBACObjects(t) {
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			o.Name += suffix
			sa = o.Name
		case *rbacv1.ClusterRole:
			o.Name += suffix
			if edit != nil {
				o.Rules = edit(o.Rules)
			}
		case *rbacv1.ClusterRoleBinding:
			o.Name += suffix
			o.RoleRef.Name += suffix
			for i := range o.Subjects {
				o.Subjects[i].Name += suffix
			}
		}
		// The shipped objects are shared by the tests that use them as they are.
		if err := env.Client.Create(ctx, obj); !apierrors.IsAlreadyExists(err) {
			g.Expect(err).NotTo(HaveOccurred(), "creating %T %s", obj, obj.GetName())
		}
	}
	g.Expect(sa).NotTo(BeEmpty(), "config/infra-rbac has a ServiceAccount")
	return sa
}

// withoutVerb removes verb from the rule that grants it on resource of group.
func withoutVerb(group, resource, verb string) func([]rbacv1.PolicyRule) []rbacv1.PolicyRule {
	return func(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for _, r := range rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
				// Split the rule: the other resources keep the verb.
				rest := r.DeepCopy()
				rest.Resources = slices.DeleteFunc(slices.Clone(r.Resources), func(s string) bool { return s == resource })
				if len(rest.Resources) > 0 {
					out = append(out, *rest)
				}
				r = *r.DeepCopy()
				r.Resources = []string{resource}
				r.Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(s string) bool { return s == verb })
			}
			out = append(out, r)
		}
		return out
	}
}

// registerInfraClusterAs registers env as InfraCluster name, reached as the ServiceAccount sa of
// config/infra-rbac with a kubeconfig minted the way docs/operations.md says (hack/infra-kubeconfig).
func registerInfraClusterAs(t *testing.T, name string, env *envtest.Environment, sa string) *infrav1.InfraCluster {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	kubeconfig, expires, err := infra.ServiceAccountKubeconfig(ctx, env.Config, infra.ServiceAccountKubeconfigOptions{
		Namespace: "nest-system", Name: sa, Expiration: time.Hour,
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(expires).To(BeTemporally(">", time.Now()))
	g.Expect(mgmt.Create(ctx, infra.KubeconfigSecret(providerNamespace, name+"-kubeconfig", kubeconfig))).To(Succeed())
	ic := &infrav1.InfraCluster{}
	ic.Name = name
	ic.Spec = infrav1.InfraClusterSpec{
		KubeconfigSecretRef:      &infrav1.SecretKeyReference{Name: name + "-kubeconfig"},
		AllowedNamespaces:        &infrav1.AllowedNamespaces{},
		Probe:                    &infrav1.ProbeSpec{IntervalSeconds: 1, TimeoutSeconds: 1},
		OrphanGracePeriodSeconds: ptr.To[int32](3),
	}
	g.Expect(mgmt.Create(ctx, ic)).To(Succeed())
	return ic
}

func waitInfraClusterReady(t *testing.T, ic *infrav1.InfraCluster) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		get(g, ic)
		g.Expect(conditions.IsTrue(ic, infrav1.ReadyCondition)).To(BeTrue(), "Ready: %s", conditions.GetMessage(ic, infrav1.ReadyCondition))
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
}

// The provider does its whole job in an Infra cluster as the ServiceAccount of config/infra-rbac and
// nothing more: it connects and probes, makes a tenant namespace and control-plane Service, provisions
// a VM and a bare-metal host and deletes them, sweeps an orphan, deletes the tenant and, last, the
// InfraCluster itself. Nothing it did was refused.
func TestTheShippedInfraRoleIsEnoughToProvisionDeleteAndSweep(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	env := topo.Infras[1]
	sa := grantInfraRBAC(t, env, "", nil)
	name := uniqueName("least")
	pool := startHostPool(t, env, name, uniqueName("pool"), metal3sim.Options{})
	pool.add(1, nil, false)
	ic := registerInfraClusterAs(t, name, env, sa)
	waitInfraClusterReady(t, ic)
	g.Eventually(func(g Gomega) {
		get(g, ic)
		g.Expect(conditions.IsTrue(ic, infrav1.KubeVirtAvailableCondition)).To(BeTrue())
		g.Expect(conditions.IsTrue(ic, infrav1.Metal3AvailableCondition)).To(BeTrue())
		g.Expect(ic.Status.Capacity).NotTo(BeNil(), "nodes are read")
		g.Expect(ic.Status.Capacity.Nodes).To(BeNumerically(">", 0))
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())

	cluster, nc := newTenantWith(t, func(nc *infrav1.NestCluster) {
		nc.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: name, Type: "ClusterIP", Port: 6443}
	}, name)
	g.Eventually(func(g Gomega) {
		get(g, nc)
		g.Expect(ptr.Deref(nc.Status.Initialization.Provisioned, false)).To(BeTrue(), "Ready: %s", conditions.GetMessage(nc, infrav1.ReadyCondition))
		g.Expect(nc.Spec.ControlPlaneEndpoint.Host).NotTo(BeEmpty(), "the endpoint is the Service's")
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	markInfrastructureProvisioned(t, cluster)
	_, vm := newMachine(t, cluster, machineOpts{failureDomain: name, controlPlane: true, spec: vmSpec()})
	_, host := newMachine(t, cluster, machineOpts{failureDomain: name, spec: bareMetalSpec(pool.pool)})
	waitProvisioned(t, vm)
	waitHostProvisioned(t, host)

	ns := tenantNamespace(nc)
	gone := ownership.Owner{Kind: ownership.KindNestMachine, Namespace: nc.Namespace, Name: "gone-machine", UID: "5c1a7e0b-0000-4000-8000-000000000000", NestCluster: nc.Name}
	stray := &corev1.Secret{}
	stray.Namespace, stray.Name = ns, "gone-machine-bootstrap"
	stray.Labels, stray.Annotations = ownership.Labels(identity, gone), ownership.Annotations(gone)
	g.Expect(env.Client.Create(ctx, stray)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(stray), &corev1.Secret{}))
	}, 60*time.Second, 200*time.Millisecond).Should(BeTrue(), "the sweeper deletes an orphan")

	for _, nm := range []*infrav1.NestMachine{vm, host} {
		g.Expect(mgmt.Delete(ctx, nm)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		for _, nm := range []*infrav1.NestMachine{vm, host} {
			live := &infrav1.NestMachine{}
			err := mgmt.Get(ctx, client.ObjectKeyFromObject(nm), live)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "NestMachine %s released; Ready: %s", nm.Name, conditions.GetMessage(live, infrav1.ReadyCondition))
		}
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	expectNothingLeft(t, env.Client, ns, vm)
	pool.expectAllReleased(t)

	g.Expect(mgmt.Delete(ctx, nc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		live := &infrav1.NestCluster{}
		err := mgmt.Get(ctx, client.ObjectKeyFromObject(nc), live)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "NestCluster released; Ready: %s", conditions.GetMessage(live, infrav1.ReadyCondition))
		namespace := &corev1.Namespace{}
		err = env.Client.Get(ctx, client.ObjectKey{Name: ns}, namespace)
		g.Expect(apierrors.IsNotFound(err) || !namespace.DeletionTimestamp.IsZero()).To(BeTrue(), "the tenant namespace is deleted")
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(eventReasons(g, name)).NotTo(ContainElement(infrav1.ForbiddenReason), "nothing the provider asked was refused")

	g.Expect(mgmt.Delete(ctx, ic)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(mgmt.Get(ctx, client.ObjectKeyFromObject(ic), &infrav1.InfraCluster{}))
	}, 60*time.Second, 200*time.Millisecond).Should(BeTrue(), "the InfraCluster is released once what it made is gone")
}

// With one grant of config/infra-rbac missing, the condition that the refusal stops names the verb,
// the resource and where, and config/infra-rbac, rather than a generic error; granting it lets the
// provider carry on.
func TestAMissingInfraGrantIsNamedInTheCondition(t *testing.T) {
	env := topo.Infras[1]

	t.Run("create virtualmachines: on the NestMachine", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		suffix := "-" + uniqueName("no-vm-create")
		sa := grantInfraRBAC(t, env, suffix, withoutVerb(kubevirtv1.GroupVersion.Group, "virtualmachines", "create"))
		ic := registerInfraClusterAs(t, uniqueName("no-vm-create"), env, sa)
		waitInfraClusterReady(t, ic)
		cluster, nc := newTenant(t, ic.Name)
		markInfrastructureProvisioned(t, cluster)
		_, nm := newMachine(t, cluster, machineOpts{failureDomain: ic.Name, spec: vmSpec()})
		t.Cleanup(func() {
			// Left to the controllers: each goes once what it waits for has.
			for _, obj := range []client.Object{nm, nc, ic} {
				_ = mgmt.Delete(context.Background(), obj)
			}
		})
		ns := tenantNamespace(nc)
		g.Eventually(func(g Gomega) {
			get(g, nm)
			g.Expect(conditions.GetReason(nm, infrav1.VMProvisionedCondition)).To(Equal(infrav1.ForbiddenReason), "VMProvisioned: %s", conditions.GetMessage(nm, infrav1.VMProvisionedCondition))
			g.Expect(conditions.GetReason(nm, infrav1.ReadyCondition)).To(Equal(infrav1.ForbiddenReason))
		}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
		g.Expect(conditions.GetMessage(nm, infrav1.VMProvisionedCondition)).To(And(
			HavePrefix("forbidden: cannot create virtualmachines.kubevirt.io in namespace "+ns+" in Infra cluster "+ic.Name),
			ContainSubstring("system:serviceaccount:nest-system:"+sa),
			ContainSubstring("config/infra-rbac")))

		role := &rbacv1.ClusterRole{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "nest-infra" + suffix}, role)).To(Succeed())
		for _, obj := range infraRBACObjects(t) {
			if shipped, ok := obj.(*rbacv1.ClusterRole); ok {
				role.Rules = shipped.Rules
			}
		}
		g.Expect(env.Client.Update(ctx, role)).To(Succeed())
		waitProvisioned(t, nm)
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, &kubevirtv1.VirtualMachine{})).To(Succeed())
	})

	t.Run("watch nodes: on the InfraCluster", func(t *testing.T) {
		g := NewWithT(t)
		sa := grantInfraRBAC(t, env, "-"+uniqueName("no-node-watch"), withoutVerb("", "nodes", "watch"))
		ic := registerInfraClusterAs(t, uniqueName("no-node-watch"), env, sa)
		t.Cleanup(func() { _ = mgmt.Delete(context.Background(), ic) })
		g.Eventually(func(g Gomega) {
			get(g, ic)
			g.Expect(conditions.GetReason(ic, infrav1.ReachableCondition)).To(Equal(infrav1.ForbiddenReason), "Reachable: %s", conditions.GetMessage(ic, infrav1.ReachableCondition))
		}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
		g.Expect(conditions.IsFalse(ic, infrav1.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(ic, infrav1.ReadyCondition)).To(And(
			HavePrefix("forbidden: cannot watch nodes at the cluster scope in Infra cluster "+ic.Name),
			ContainSubstring("config/infra-rbac")))
	})
}
