package clusterctl_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// TestPrometheusComponentScrapesTheManager builds config/default with the config/prometheus
// component, as its kustomization says to, and follows the ServiceMonitor to the manager: it selects
// the metrics Service, whose port it names, in the manager's namespace; the Service selects the
// manager's pod and targets its diagnostics port.
func TestPrometheusComponentScrapesTheManager(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rel := func(path string) string {
		r, err := filepath.Rel(dir, filepath.Join(envtest.RepoRoot(), path))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	write(t, filepath.Join(dir, "kustomization.yaml"), []byte("resources:\n- "+rel("config/default")+"\ncomponents:\n- "+rel("config/prometheus")+"\n"))
	objs := objects(t, run(t, nil, tool(t, "kustomize", "kustomize"), "build", dir))

	find := func(kind string, match func(u unstructured.Unstructured) bool) *unstructured.Unstructured {
		i := slices.IndexFunc(objs, func(u unstructured.Unstructured) bool { return u.GetKind() == kind && match(u) })
		if i < 0 {
			t.Fatalf("no %s in config/default with config/prometheus", kind)
		}
		return &objs[i]
	}
	all := func(unstructured.Unstructured) bool { return true }
	d := &appsv1.Deployment{}
	svc := &corev1.Service{}
	for obj, into := range map[*unstructured.Unstructured]any{
		find("Deployment", all): d,
		find("Service", func(u unstructured.Unstructured) bool { return strings.HasSuffix(u.GetName(), "-metrics") }): svc,
	} {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
			t.Fatal(err)
		}
	}
	monitor := find("ServiceMonitor", all)
	find("ClusterRole", func(u unstructured.Unstructured) bool { return u.GetName() == "capnest-metrics-reader" })

	if svc.Namespace != d.Namespace || monitor.GetNamespace() != d.Namespace {
		t.Errorf("metrics Service in %q, ServiceMonitor in %q, manager in %q: want one namespace", svc.Namespace, monitor.GetNamespace(), d.Namespace)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the metrics Service selects %v, the manager's pod has %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	manager := d.Spec.Template.Spec.Containers[slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })]
	if len(svc.Spec.Ports) != 1 || !slices.ContainsFunc(manager.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == svc.Spec.Ports[0].TargetPort.String() && p.ContainerPort == 8443
	}) {
		t.Errorf("the metrics Service ports %+v do not target the manager's metrics port 8443 (%+v)", svc.Spec.Ports, manager.Ports)
	}
	if !slices.ContainsFunc(manager.Args, func(a string) bool {
		return strings.Contains(a, "--diagnostics-address=${CAPNEST_DIAGNOSTICS_ADDRESS:=:8443}")
	}) {
		t.Errorf("manager args %v: the diagnostics endpoint is not on 8443 by default", manager.Args)
	}

	selector := &metav1.LabelSelector{}
	raw, _, _ := unstructured.NestedMap(monitor.Object, "spec", "selector")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, selector); err != nil {
		t.Fatal(err)
	}
	if s, err := metav1.LabelSelectorAsSelector(selector); err != nil || !s.Matches(labels.Set(svc.Labels)) {
		t.Errorf("the ServiceMonitor selects %v (%v), the metrics Service has labels %v", selector, err, svc.Labels)
	}
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v, want one", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	if len(svc.Spec.Ports) == 0 || ep["port"] != svc.Spec.Ports[0].Name || ep["scheme"] != "https" || ep["path"] != "/metrics" {
		t.Errorf("ServiceMonitor endpoint %v, want https /metrics on the Service's port %+v", ep, svc.Spec.Ports)
	}
}
