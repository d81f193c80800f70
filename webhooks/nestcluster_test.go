package webhooks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// registered creates an InfraCluster and waits until the webhooks can see it.
func registered(t *testing.T, allowed *infrav1.AllowedNamespaces) string {
	t.Helper()
	ic := infraCluster(allowed)
	if err := k8sClient.Create(context.Background(), ic); err != nil {
		t.Fatalf("creating InfraCluster: %v", err)
	}
	waitCached(t, ic)
	return ic.Name
}

// usableIn returns the InfraClusters a rejection says the namespace may use.
func usableIn(err error) []string {
	msg := err.Error()
	i := strings.LastIndex(msg, "InfraClusters that admit")
	if i < 0 {
		return nil
	}
	j := strings.Index(msg[i:], ": ")
	if j < 0 {
		return nil
	}
	return strings.Split(msg[i+j+2:], ", ")
}

func TestNestClusterAccessToInfraClusters(t *testing.T) {
	env(t)
	tenantLabels := map[string]string{"nest.io/tenant": "true"}
	ns := namespace(t, tenantLabels)
	other := namespace(t, nil)
	everyone := registered(t, &infrav1.AllowedNamespaces{})
	nobody := registered(t, nil)
	listed := registered(t, &infrav1.AllowedNamespaces{List: []string{ns}})
	listedElsewhere := registered(t, &infrav1.AllowedNamespaces{List: []string{other}})
	selected := registered(t, &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: tenantLabels}})
	notSelected := registered(t, &infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"nest.io/tenant": "false"}}})

	cases := []struct {
		name          string
		infraClusters []string
		want          []string // nil: admitted
	}{
		{"every namespace ({})", []string{everyone}, nil},
		{"listed namespace", []string{listed}, nil},
		{"namespace selected by its labels", []string{selected}, nil},
		{"all three", []string{everyone, listed, selected}, nil},
		{"unknown InfraCluster", []string{everyone, "no-such-infra"},
			[]string{`spec.infraClusters[1].name: Invalid value: "no-such-infra"`, "InfraCluster \"no-such-infra\" not found", "InfraClusters that admit namespace"}},
		{"allowedNamespaces not set", []string{nobody},
			[]string{"spec.infraClusters[0].name: Forbidden", "does not admit namespace", "spec.allowedNamespaces is not set, which admits no namespace"}},
		{"another namespace listed", []string{everyone, listedElsewhere},
			[]string{"spec.infraClusters[1].name: Forbidden", "spec.allowedNamespaces.list admits [" + other + "]"}},
		{"selector does not match", []string{notSelected},
			[]string{"spec.infraClusters[0].name: Forbidden", "namespaces labelled nest.io/tenant=false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(context.Background(), nestCluster(ns, tc.infraClusters...))
			if tc.want == nil {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			expectInvalid(g, err, tc.want...)
			g.Expect(usableIn(err)).To(ContainElements(everyone, listed, selected), "the message lists the InfraClusters the namespace may use")
			for _, unusable := range []string{nobody, listedElsewhere, notSelected} {
				g.Expect(usableIn(err)).NotTo(ContainElement(unusable))
			}
		})
	}

	t.Run("the other namespace sees its own choices", func(t *testing.T) {
		g := NewWithT(t)
		err := k8sClient.Create(context.Background(), nestCluster(other, listed))
		expectInvalid(g, err, "spec.infraClusters[0].name: Forbidden")
		g.Expect(usableIn(err)).To(ContainElements(everyone, listedElsewhere))
		g.Expect(usableIn(err)).NotTo(ContainElement(listed))
		g.Expect(usableIn(err)).NotTo(ContainElement(selected))
	})
}

func TestNestClusterSpecRules(t *testing.T) {
	env(t)
	ns := namespace(t, nil)
	a := registered(t, &infrav1.AllowedNamespaces{})
	b := registered(t, &infrav1.AllowedNamespaces{})
	ctx := context.Background()

	t.Run("controlPlane defaults to true", func(t *testing.T) {
		g := NewWithT(t)
		nc := nestCluster(ns, a, b)
		nc.Spec.InfraClusters[1].ControlPlane = ptr.To(false)
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())
		g.Expect(nc.Spec.InfraClusters[0].ControlPlane).To(Equal(ptr.To(true)))
		g.Expect(nc.Spec.InfraClusters[1].ControlPlane).To(Equal(ptr.To(false)))
	})

	t.Run("endpoint host without port", func(t *testing.T) {
		nc := nestCluster(ns, a)
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: "api.tenant.example.com"}
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, nc), "spec.controlPlaneEndpoint.port: Required value", "usually 6443")
	})

	t.Run("endpoint host that is no host", func(t *testing.T) {
		nc := nestCluster(ns, a)
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: "https://api:6443", Port: 6443}
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, nc), "spec.controlPlaneEndpoint.host: Invalid value", "IP address or a lower-case DNS name")
	})

	t.Run("warnings", func(t *testing.T) {
		g := NewWithT(t)
		wctx, recorded := withWarnings(ctx)
		nc := nestCluster(ns, a, b)
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
		g.Expect(k8sClient.Create(wctx, nc)).To(Succeed())
		g.Expect(recorded.all()).To(ContainElement(ContainSubstring("2 Infra clusters take control-plane machines but spec.controlPlaneEndpoint is not set")))
	})

	t.Run("Infra clusters may be added and removed, if the added ones are usable", func(t *testing.T) {
		g := NewWithT(t)
		nc := nestCluster(ns, a)
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())
		nc.Spec.InfraClusters = append(nc.Spec.InfraClusters, infrav1.InfraClusterUse{Name: "no-such-infra"})
		expectInvalid(g, k8sClient.Update(ctx, nc), `spec.infraClusters[1].name: Invalid value: "no-such-infra"`, "not found")

		nc.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: a}, {Name: b}}
		g.Expect(k8sClient.Update(ctx, nc)).To(Succeed())
		nc.Spec.InfraClusters = []infrav1.InfraClusterUse{{Name: b}}
		g.Expect(k8sClient.Update(ctx, nc)).To(Succeed())
	})

	t.Run("an Infra cluster that stopped admitting the namespace does not block other changes", func(t *testing.T) {
		g := NewWithT(t)
		revoked := infraCluster(&infrav1.AllowedNamespaces{})
		g.Expect(k8sClient.Create(ctx, revoked)).To(Succeed())
		waitCached(t, revoked)
		nc := nestCluster(ns, revoked.Name)
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())

		revoked.Spec.AllowedNamespaces = nil
		g.Expect(k8sClient.Update(ctx, revoked)).To(Succeed())
		waitCached(t, revoked)
		nc.Labels = map[string]string{"cluster.x-k8s.io/cluster-name": "c"}
		g.Expect(k8sClient.Update(ctx, nc)).To(Succeed())
	})

	t.Run("controlPlaneService cannot be added later", func(t *testing.T) {
		g := NewWithT(t)
		nc := nestCluster(ns, a)
		nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{}
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())
		nc.Spec.ControlPlaneService = &infrav1.ControlPlaneService{InfraCluster: a}
		expectInvalid(g, k8sClient.Update(ctx, nc), "spec.controlPlaneService: Forbidden", "neither added nor removed")
	})

	t.Run("a NestCluster being deleted may lose its finalizer", func(t *testing.T) {
		g := NewWithT(t)
		gone := infraCluster(&infrav1.AllowedNamespaces{})
		g.Expect(k8sClient.Create(ctx, gone)).To(Succeed())
		waitCached(t, gone)
		nc := nestCluster(ns, gone.Name)
		nc.Finalizers = []string{infrav1.NestClusterFinalizer}
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())
		g.Expect(k8sClient.Delete(ctx, nc)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(k8sClient.Delete(ctx, gone)).To(Succeed())
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed(), "a NestCluster being deleted does not hold its InfraCluster")
		waitGone(t, gone)
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(nc), nc)).To(Succeed())
		nc.Finalizers = nil
		g.Expect(k8sClient.Update(ctx, nc)).To(Succeed())
	})
}

func TestNestClusterTemplateRules(t *testing.T) {
	env(t)
	ns := namespace(t, nil)
	a := registered(t, &infrav1.AllowedNamespaces{})
	ctx := context.Background()

	t.Run("unknown InfraClusters are warnings in a template", func(t *testing.T) {
		g := NewWithT(t)
		wctx, recorded := withWarnings(ctx)
		tmpl := nestClusterTemplate(ns, a, "registered-later")
		g.Expect(k8sClient.Create(wctx, tmpl)).To(Succeed())
		g.Expect(recorded.all()).To(ContainElement(ContainSubstring(`spec.template.spec.infraClusters[1].name: Invalid value: "registered-later"`)))
		g.Expect(tmpl.Spec.Template.Spec.InfraClusters[0].ControlPlane).To(Equal(ptr.To(true)), "defaulted like a NestCluster")
	})

	t.Run("the endpoint is checked", func(t *testing.T) {
		tmpl := nestClusterTemplate(ns, a)
		tmpl.Spec.Template.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Port: 6443}
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, tmpl), "spec.template.spec.controlPlaneEndpoint.host: Required value")
	})

	t.Run("spec.template.spec is immutable except for topology dry runs", func(t *testing.T) {
		g := NewWithT(t)
		tmpl := nestClusterTemplate(ns, a)
		g.Expect(k8sClient.Create(ctx, tmpl)).To(Succeed())
		changed := tmpl.DeepCopy()
		changed.Spec.Template.Spec.InfraClusters = append(changed.Spec.Template.Spec.InfraClusters, infrav1.InfraClusterUse{Name: "infra-x"})
		expectInvalid(g, k8sClient.Update(ctx, changed.DeepCopy()), "spec.template.spec: Forbidden", "changed: spec.template.spec.infraClusters", "create a new NestClusterTemplate")
		expectInvalid(g, k8sClient.Update(ctx, changed.DeepCopy(), client.DryRunAll), "spec.template.spec: Forbidden")

		changed.Annotations = map[string]string{clusterv1.TopologyDryRunAnnotation: ""}
		g.Expect(k8sClient.Update(ctx, changed.DeepCopy(), client.DryRunAll)).To(Succeed())
		expectInvalid(g, k8sClient.Update(ctx, changed.DeepCopy()), "spec.template.spec: Forbidden")

		tmpl.Labels = map[string]string{"team": "a"}
		g.Expect(k8sClient.Update(ctx, tmpl)).To(Succeed(), "metadata may change")
	})
}

func TestInfraClusterRules(t *testing.T) {
	env(t)
	ctx := context.Background()

	t.Run("probe defaults", func(t *testing.T) {
		g := NewWithT(t)
		ic := infraCluster(&infrav1.AllowedNamespaces{})
		g.Expect(k8sClient.Create(ctx, ic)).To(Succeed())
		g.Expect(ic.Spec.Probe).To(Equal(&infrav1.ProbeSpec{IntervalSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 3}))
	})

	t.Run("namespace selector", func(t *testing.T) {
		ic := infraCluster(&infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tenant", Operator: "Near", Values: []string{"x"}},
		}}})
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, ic),
			"spec.allowedNamespaces.selector.matchExpressions[0].operator", "one of In, NotIn, Exists, DoesNotExist")

		ic = infraCluster(&infrav1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tenant", Operator: "Exists", Values: []string{"x"}},
		}}})
		expectInvalid(NewWithT(t), k8sClient.Create(ctx, ic), "spec.allowedNamespaces.selector.matchExpressions[0].values: Forbidden")
	})

	t.Run("warnings for no namespace and tenants losing access; deletion in use refused", func(t *testing.T) {
		g := NewWithT(t)
		wctx, recorded := withWarnings(ctx)
		g.Expect(k8sClient.Create(wctx, infraCluster(nil))).To(Succeed())
		g.Expect(recorded.all()).To(ContainElement(ContainSubstring("no namespace may use this Infra cluster")))

		ns := namespace(t, nil)
		ic := infraCluster(&infrav1.AllowedNamespaces{List: []string{ns}})
		g.Expect(k8sClient.Create(ctx, ic)).To(Succeed())
		waitCached(t, ic)
		nc := nestCluster(ns, ic.Name)
		g.Expect(k8sClient.Create(ctx, nc)).To(Succeed())
		waitCached(t, nc)

		wctx, recorded = withWarnings(ctx)
		ic.Spec.AllowedNamespaces.List = []string{"someone-else"}
		g.Expect(k8sClient.Update(wctx, ic)).To(Succeed())
		g.Expect(recorded.all()).To(ContainElement(ContainSubstring("no longer admits NestClusters that use this Infra cluster: [" + ns + "/" + nc.Name + "]")))

		err := k8sClient.Delete(ctx, ic)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
		g.Expect(err).To(MatchError(ContainSubstring("NestClusters [" + ns + "/" + nc.Name + "] still list it in spec.infraClusters")))
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ic), &infrav1.InfraCluster{})).To(Succeed(), "refused before anything happened")

		g.Expect(k8sClient.Delete(ctx, nc)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(k8sClient.Delete(ctx, ic)).To(Succeed())
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed(), "an unused InfraCluster may go")
	})
}

// Two Infra clusters for the control plane cannot survive losing the fuller one: the webhook says so
// on create and on update.
func TestTwoControlPlaneInfraClustersAreWarnedAbout(t *testing.T) {
	env(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	a, b := registered(t, &infrav1.AllowedNamespaces{}), registered(t, &infrav1.AllowedNamespaces{})
	wctx, recorded := withWarnings(ctx)
	nc := nestCluster(ns, a, b)
	g.Expect(k8sClient.Create(wctx, nc)).To(Succeed())
	g.Expect(recorded.all()).To(ContainElement(ContainSubstring("exactly two Infra clusters take control-plane machines")))

	c := registered(t, &infrav1.AllowedNamespaces{})
	wctx, recorded = withWarnings(ctx)
	nc.Spec.InfraClusters = append(nc.Spec.InfraClusters, infrav1.InfraClusterUse{Name: c})
	g.Expect(k8sClient.Update(wctx, nc)).To(Succeed())
	g.Expect(recorded.all()).NotTo(ContainElement(ContainSubstring("exactly two")), "three are fine")

	wctx, recorded = withWarnings(ctx)
	nc.Spec.InfraClusters[2].ControlPlane = ptr.To(false)
	g.Expect(k8sClient.Update(wctx, nc)).To(Succeed())
	g.Expect(recorded.all()).To(ContainElement(ContainSubstring("exactly two Infra clusters take control-plane machines")), "the third for workers only")
}
