package webhooks

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// The fuzz targets feed arbitrary JSON to every webhook, decoded the way the API server's objects
// are, and require that nothing panics and that defaulting is idempotent. `go test` runs their seed
// corpus; `go test -run '^$' -fuzz=FuzzX -fuzztime=20s -fuzzminimizetime=1s ./webhooks/` explores (a short
// minimisation time keeps the slower targets exploring rather than shrinking inputs).

const fuzzNamespace = "tenant"

// fuzzReader is the cache the webhooks read: Infra clusters with every kind of allowedNamespaces, a
// labelled namespace, a tenant with a control plane.
func fuzzReader() client.Reader {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fuzzNamespace, Labels: map[string]string{"tenant": "yes"}}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-a"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{}}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-b"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{List: []string{fuzzNamespace}}}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-c"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}}}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-closed"}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-broken"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}}}},
		&infrav1.NestCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNamespace, Name: "tenant"},
			Spec:       infrav1.NestClusterSpec{InfraClusters: []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-b"}, {Name: "infra-c", ControlPlane: ptr.To(false)}}},
			Status: infrav1.NestClusterStatus{FailureDomains: []clusterv1.FailureDomain{
				{Name: "infra-a", ControlPlane: ptr.To(true)}, {Name: "infra-b", ControlPlane: ptr.To(true)}, {Name: "gone", ControlPlane: ptr.To(true)}}},
		},
		&clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNamespace, Name: "tenant"}, Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: "tenant"}}},
		&clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNamespace, Name: "docker"}, Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "DockerCluster", Name: "d"}}},
	}
	for i, fd := range []string{"infra-a", "infra-a", "infra-b", "gone", ""} {
		objs = append(objs, &clusterv1.Machine{
			ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNamespace, Name: "cp-" + string(rune('0'+i)),
				Labels: map[string]string{clusterv1.MachineControlPlaneLabel: "", clusterv1.ClusterNameLabel: "tenant"}},
			Spec: clusterv1.MachineSpec{ClusterName: "tenant", FailureDomain: fd},
		})
	}
	return fake.NewClientBuilder().WithScheme(envtest.Scheme()).WithObjects(objs...).
		WithIndex(&clusterv1.Machine{}, controlPlaneMachineClusterIndex, indexControlPlaneMachineByCluster).Build()
}

func seedJSON(f *testing.F, objs ...any) {
	for _, o := range objs {
		raw, err := json.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, raw, false)
		f.Add(raw, []byte(`{"spec":{}}`), true)
	}
	f.Add([]byte(`{`), []byte(`null`), false)
	f.Add([]byte(`{"spec":{"kubevirt":{},"baremetal":{}}}`), []byte(`{"spec":{"template":{"spec":{"infraClusters":[{}]}}}}`), true)
}

// dryRunContext is a context with an admission request that is (or is not) a topology dry run.
func dryRunContext(dryRun bool) context.Context {
	return admission.NewContextWithRequest(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{DryRun: ptr.To(dryRun)}})
}

// decode reads raw into obj like a webhook does, and reports whether there is an object to check.
func decode(raw []byte, obj runtime.Object) bool {
	return json.Unmarshal(raw, obj) == nil
}

func FuzzNestMachineWebhooks(f *testing.F) {
	kubevirt := infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{
		CPU:       &infrav1.CPU{Cores: 2, Dedicated: true},
		BootImage: infrav1.BootImage{HTTP: &infrav1.HTTPSource{URL: "https://x/y"}},
		RootDisk:  &infrav1.RootDisk{AccessMode: "ReadWriteOnce"},
		Networks:  []infrav1.Network{{Name: "a", Pod: &infrav1.PodNetwork{Binding: "bridge"}, MACAddress: "02:00:00:00:00:01"}, {Name: "b", MACAddress: "02:00:00:00:00:01"}},
		Placement: &infrav1.Placement{
			Tolerations: []corev1.Toleration{{Operator: "Exists", Value: "x", Effect: "Bad"}},
			Affinity: &corev1.Affinity{
				NodeAffinity:    &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{}},
				PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{}}},
			},
		},
		EvictionStrategy: "LiveMigrate",
		VMPatches:        []infrav1.JSONPatch{{Op: "move", From: "/a", Path: "/a/b"}, {Op: "remove", Path: "/metadata/labels"}, {Op: "add", Path: "/~"}},
	}}
	baremetal := infrav1.NestMachineSpec{BareMetal: &infrav1.BareMetalMachineSpec{
		HostSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "In"}}},
		Image:        infrav1.BareMetalImage{URL: "http://x", Checksum: "zz", ChecksumType: "md5"},
	}}
	seedJSON(f,
		&infrav1.NestMachine{Spec: kubevirt},
		&infrav1.NestMachine{Spec: baremetal},
		&infrav1.NestMachineTemplate{Spec: infrav1.NestMachineTemplateSpec{Template: infrav1.NestMachineTemplateResource{Spec: kubevirt}}},
	)
	f.Fuzz(func(t *testing.T, oldRaw, newRaw []byte, dryRun bool) {
		ctx := dryRunContext(dryRun)
		exercise(t, ctx, &NestMachine{}, oldRaw, newRaw, &infrav1.NestMachine{}, &infrav1.NestMachine{})
		exercise(t, ctx, &NestMachineTemplate{}, oldRaw, newRaw, &infrav1.NestMachineTemplate{}, &infrav1.NestMachineTemplate{})
	})
}

func FuzzClusterWebhooks(f *testing.F) {
	spec := infrav1.NestClusterSpec{
		InfraClusters:        []infrav1.InfraClusterUse{{Name: "infra-a"}, {Name: "infra-closed"}, {Name: "infra-broken"}, {Name: "missing"}},
		ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "https://x"},
		ControlPlaneService:  &infrav1.ControlPlaneService{InfraCluster: "infra-a"},
	}
	seedJSON(f,
		&infrav1.NestCluster{ObjectMeta: metav1.ObjectMeta{Namespace: fuzzNamespace}, Spec: spec},
		&infrav1.NestClusterTemplate{Spec: infrav1.NestClusterTemplateSpec{Template: infrav1.NestClusterTemplateResource{Spec: spec}}},
		&infrav1.InfraCluster{ObjectMeta: metav1.ObjectMeta{Name: "infra-a"}, Spec: infrav1.InfraClusterSpec{AllowedNamespaces: &infrav1.AllowedNamespaces{
			Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "", Operator: "Exists", Values: []string{"x"}}}}}}},
	)
	reader := fuzzReader()
	f.Fuzz(func(t *testing.T, oldRaw, newRaw []byte, dryRun bool) {
		ctx := dryRunContext(dryRun)
		exercise(t, ctx, &NestCluster{Client: reader}, oldRaw, newRaw, &infrav1.NestCluster{}, &infrav1.NestCluster{})
		exercise(t, ctx, &NestClusterTemplate{Client: reader}, oldRaw, newRaw, &infrav1.NestClusterTemplate{}, &infrav1.NestClusterTemplate{})
		exercise(t, ctx, &InfraCluster{Client: reader}, oldRaw, newRaw, &infrav1.InfraCluster{}, &infrav1.InfraCluster{})
	})
}

func FuzzControlPlaneSpread(f *testing.F) {
	machine := func(cluster, kind, fd string) []byte {
		raw, _ := json.Marshal(&clusterv1.Machine{
			ObjectMeta: metav1.ObjectMeta{Name: "new", Labels: map[string]string{clusterv1.MachineControlPlaneLabel: ""}},
			Spec: clusterv1.MachineSpec{ClusterName: cluster, FailureDomain: fd,
				InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: kind, Name: "new"}},
		})
		return raw
	}
	for _, m := range [][]byte{
		machine("tenant", "NestMachine", ""), machine("tenant", "NestMachine", "infra-b"), machine("tenant", "NestMachine", "infra-a"),
		machine("tenant", "NestMachine", "infra-c"), machine("tenant", "NestMachine", "gone"), machine("missing", "NestMachine", ""),
		machine("docker", "NestMachine", ""), machine("tenant", "DockerMachine", "x"),
	} {
		f.Add(m, m, true)
		f.Add(m, machine("tenant", "NestMachine", "infra-b"), false)
	}
	f.Add([]byte(`{"metadata":{"labels":{"cluster.x-k8s.io/control-plane":""}},"spec":{"infrastructureRef":{"kind":"NestMachine","apiGroup":"infrastructure.cluster.x-k8s.io"}}}`), []byte(`[]`), true)
	s := &ControlPlaneSpread{Client: fuzzReader()}
	f.Fuzz(func(t *testing.T, newRaw, oldRaw []byte, create bool) {
		req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			Namespace: fuzzNamespace, Operation: admissionv1.Update,
			Object: runtime.RawExtension{Raw: newRaw}, OldObject: runtime.RawExtension{Raw: oldRaw},
		}}
		if create {
			req.Operation = admissionv1.Create
		}
		resp := s.Default(context.Background(), req)
		if resp.Allowed && len(resp.Patch) > 0 {
			var patch []map[string]string
			if err := json.Unmarshal(resp.Patch, &patch); err != nil || len(patch) != 1 || (patch[0]["value"] != "infra-a" && patch[0]["value"] != "infra-b") {
				t.Fatalf("the default must be one healthy control-plane Infra cluster, got %s", resp.Patch)
			}
		}
		_ = s.Validate(context.Background(), req)
	})
}

// typedWebhook is a defaulting and validating webhook of one kind, as controller-runtime calls it.
type typedWebhook[T runtime.Object] interface {
	admission.Defaulter[T]
	admission.Validator[T]
}

// exercise decodes oldRaw and newRaw into oldObj and newObj and, when both decode, runs every call
// of w on them: none may panic, and defaulting must be idempotent.
func exercise[T runtime.Object](t *testing.T, ctx context.Context, w typedWebhook[T], oldRaw, newRaw []byte, oldObj, newObj T) {
	t.Helper()
	if !decode(oldRaw, oldObj) || !decode(newRaw, newObj) {
		return
	}
	requireIdempotentDefault(t, func(o T) { _ = w.Default(ctx, o) }, newObj)
	_, _ = w.ValidateCreate(ctx, newObj)
	_, _ = w.ValidateUpdate(ctx, oldObj, newObj)
	_, _ = w.ValidateDelete(ctx, newObj)
}

// requireIdempotentDefault applies a defaulter twice: the second time must change nothing, or every
// update of a stored object would look like a change.
func requireIdempotentDefault[T runtime.Object](t *testing.T, def func(T), obj T) {
	t.Helper()
	def(obj)
	again := obj.DeepCopyObject().(T)
	def(again)
	if !equality.Semantic.DeepEqual(obj, again) {
		t.Fatalf("defaulting is not idempotent: %+v then %+v", obj, again)
	}
}
