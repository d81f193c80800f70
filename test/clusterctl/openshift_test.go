package clusterctl_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// flavorKinds is what a flavor must generate: a kubeadm control plane and workers; plain
// control-plane Machines on NestMachines and workers on installer ignition (openshift flavors); or the
// OpenShift Assisted providers' control plane and bootstrap templates.
func flavorKinds(flavor string) []string {
	switch {
	case strings.HasPrefix(flavor, "openshift-assisted"):
		return []string{"Cluster", "NestCluster", "OpenshiftAssistedControlPlane", "NestMachineTemplate", "MachineDeployment", "OpenshiftAssistedConfigTemplate"}
	case strings.HasPrefix(flavor, "openshift"):
		return []string{"Cluster", "NestCluster", "Machine", "NestMachine", "MachineDeployment", "NestMachineTemplate"}
	}
	return []string{"Cluster", "NestCluster", "KubeadmControlPlane", "NestMachineTemplate", "MachineDeployment", "KubeadmConfigTemplate"}
}

func isControlPlaneMachine(obj unstructured.Unstructured) bool {
	_, ok := obj.GetLabels()[clusterv1.MachineControlPlaneLabel]
	return obj.GetKind() == "Machine" && ok
}

// createInfrastructure creates a tenant's Cluster and NestCluster for real (strict field validation,
// webhooks), reports every Infra cluster of the NestCluster as a healthy control-plane failure domain
// as the provider does once it has checked them, and waits until the webhooks' cache has both: the
// spread webhook places a plain control-plane Machine against them. Both are deleted after the test.
func createInfrastructure(t *testing.T, m *management, cluster, nestCluster *unstructured.Unstructured) {
	t.Helper()
	if cluster == nil || nestCluster == nil {
		t.Fatalf("the flavor makes control-plane Machines but not the Cluster (%v) and NestCluster (%v) of the same name", cluster != nil, nestCluster != nil)
	}
	ctx := context.Background()
	for _, obj := range []*unstructured.Unstructured{cluster, nestCluster} {
		o := obj.DeepCopy()
		if err := m.Client.Create(ctx, o, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			t.Fatalf("the management cluster rejects %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		t.Cleanup(func() {
			if err := m.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		})
	}
	nc := get(t, m, nestCluster.GetName(), &infrav1.NestCluster{})
	for _, use := range nc.Spec.InfraClusters {
		controlPlane := use.ControlPlane == nil || *use.ControlPlane
		nc.Status.FailureDomains = append(nc.Status.FailureDomains, clusterv1.FailureDomain{Name: use.Name, ControlPlane: &controlPlane})
	}
	if err := m.Client.Status().Update(ctx, nc); err != nil {
		t.Fatalf("reporting the failure domains of NestCluster %s: %v", nc.Name, err)
	}
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		cached := &infrav1.NestCluster{}
		if err := m.mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(nc), cached); err != nil || len(cached.Status.FailureDomains) != len(nc.Spec.InfraClusters) {
			return false, nil
		}
		return m.mgr.GetCache().Get(ctx, client.ObjectKey{Namespace: tenantNamespace, Name: cluster.GetName()}, &clusterv1.Cluster{}) == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for the webhooks' cache to see Cluster %s and the failure domains of its NestCluster: %v", cluster.GetName(), err)
	}
}

// converted decodes a generated object into its Go type, failing the test when it is missing.
func converted[T any](t *testing.T, objs map[string]*unstructured.Unstructured, key string, into *T) *T {
	t.Helper()
	obj, ok := objs[key]
	if !ok {
		t.Fatalf("the flavor makes no %s (it makes %v)", key, slices.Sorted(maps.Keys(objs)))
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return into
}

// rhcosSize is what a flavor gives an RHCOS VM by default.
type rhcosSize struct {
	cores         int32
	memory, disk  string
	role          string
	defaultSource bool
}

var (
	controlPlaneSize = rhcosSize{role: "control-plane", cores: 8, memory: "32Gi", disk: "120Gi"}
	bootstrapSize    = rhcosSize{role: "bootstrap", cores: 4, memory: "16Gi", disk: "120Gi"}
	workerSize       = rhcosSize{role: "worker", cores: 4, memory: "16Gi", disk: "120Gi"}
)

// vmNetworks says how a flavor's VMs attach: the pod network with a bridge binding (one Infra
// cluster: each node its own pod address), or the pod network first (default route, the Infra
// cluster's Services) and NEST_VM_NETWORK second (the node address, shared with the other Infra
// clusters or the bare-metal workers).
type vmNetworks struct{ podBridge, multus bool }

// expectRHCOSVM checks a KubeVirt machine of an OpenShift flavor: its size, the RHCOS DataSource
// clone with a root disk of the size RHCOS needs, and its networks.
func expectRHCOSVM(t *testing.T, name string, kv *infrav1.KubeVirtMachineSpec, size rhcosSize, nets vmNetworks) {
	t.Helper()
	if kv == nil {
		t.Errorf("%s is not a KubeVirt machine", name)
		return
	}
	if kv.CPU == nil || kv.CPU.Cores != size.cores || kv.Memory == nil || kv.Memory.String() != size.memory {
		t.Errorf("%s: cpu %+v memory %v, want the %s defaults %d cores and %s", name, kv.CPU, kv.Memory, size.role, size.cores, size.memory)
	}
	if ds := kv.BootImage.DataSource; ds == nil || ds.Namespace != "openshift-virtualization-os-images" || ds.Name != "rhcos" {
		t.Errorf("%s boots %+v, want a clone of the DataSource openshift-virtualization-os-images/rhcos", name, kv.BootImage)
	}
	if kv.RootDisk == nil || kv.RootDisk.Size == nil || kv.RootDisk.Size.String() != size.disk {
		t.Errorf("%s: rootDisk %+v, want %s", name, kv.RootDisk, size.disk)
	}
	switch {
	case nets.podBridge:
		if len(kv.Networks) != 1 || kv.Networks[0].Pod == nil || kv.Networks[0].Pod.Binding != "bridge" {
			t.Errorf("%s: networks %+v, want the pod network with a bridge binding", name, kv.Networks)
		}
	case nets.multus:
		if len(kv.Networks) != 2 || kv.Networks[0].Pod == nil || kv.Networks[1].Multus == nil || kv.Networks[1].Multus.NetworkName != testValues["NEST_VM_NETWORK"] {
			t.Errorf("%s: networks %+v, want the pod network first and NEST_VM_NETWORK second", name, kv.Networks)
		}
	}
}

// expectOpenShiftEndpoints checks the NestCluster of an OpenShift flavor: its Infra clusters, the
// OpenShift Services as LoadBalancers, with ingress or not, and the control-plane endpoint given
// (several Infra clusters) or left to the API Service (one).
func expectOpenShiftEndpoints(t *testing.T, objs map[string]*unstructured.Unstructured, cluster string, infraClusters []string, endpoint string, ingress bool) {
	t.Helper()
	nc := converted(t, objs, "NestCluster/"+cluster, &infrav1.NestCluster{})
	var names []string
	for _, use := range nc.Spec.InfraClusters {
		names = append(names, use.Name)
	}
	var want []string
	for _, name := range infraClusters {
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("NestCluster %s: infraClusters %v, want %v", cluster, names, want)
	}
	e := nc.Spec.OpenShiftEndpoints
	if e == nil || e.Type != "LoadBalancer" {
		t.Fatalf("NestCluster %s: openshiftEndpoints %+v, want LoadBalancer Services by default", cluster, e)
	}
	if got := e.Ingress == nil || *e.Ingress; got != ingress {
		t.Errorf("NestCluster %s: ingress Service %v, want %v", cluster, got, ingress)
	}
	if nc.Spec.ControlPlaneService != nil {
		t.Errorf("NestCluster %s has a controlPlaneService: openshiftEndpoints publishes the API", cluster)
	}
	if got := nc.Spec.ControlPlaneEndpoint; got.Host != endpoint || (endpoint != "" && got.Port != 6443) {
		t.Errorf("NestCluster %s: controlPlaneEndpoint %+v, want host %q port 6443 (empty: taken from the API Service)", cluster, got, endpoint)
	}
}

// installerFlavor is what an openshift flavor with installer ignition should generate.
type installerFlavor struct {
	cluster string
	// controlPlane is the failure domain of each control-plane Machine, master-0 first.
	controlPlane []string
	// bootstrap is the failure domain of the bootstrap Machine; empty: left to the spread webhook.
	bootstrap string
	// endpoint is the NestCluster's control-plane endpoint host; empty: from the API Service.
	endpoint string
	// workers maps each MachineDeployment (name without the cluster prefix) to its failure domain.
	workers          map[string]string
	podBridge        bool
	multus           bool
	bareMetalWorkers bool
	ingress          bool
}

// expectInstallerIgnition checks an openshift flavor with installer ignition: no control-plane
// provider; control-plane Machines with the control-plane label, a failure domain each and the
// master ignition Secret; the bootstrap Machine, behind the control-plane Services like
// openshift-install's, with the bootstrap ignition Secret; workers with the worker ignition Secret.
func expectInstallerIgnition(t *testing.T, objs map[string]*unstructured.Unstructured, f installerFlavor) {
	t.Helper()
	nets := vmNetworks{podBridge: f.podBridge, multus: f.multus}
	cluster := converted(t, objs, "Cluster/"+f.cluster, &clusterv1.Cluster{})
	if cluster.Spec.ControlPlaneRef.IsDefined() {
		t.Errorf("Cluster %s has controlPlaneRef %+v: its control plane is plain Machines", f.cluster, cluster.Spec.ControlPlaneRef)
	}
	// The Infra clusters of the control plane, in order, then those of the workers.
	expectOpenShiftEndpoints(t, objs, f.cluster, append(slices.Clone(f.controlPlane), slices.Sorted(maps.Values(f.workers))...), f.endpoint, f.ingress)

	machine := func(name, secret, failureDomain string, size rhcosSize, labels ...string) {
		t.Helper()
		m := converted(t, objs, "Machine/"+f.cluster+"-"+name, &clusterv1.Machine{})
		for _, l := range append([]string{clusterv1.MachineControlPlaneLabel}, labels...) {
			if v, ok := m.Labels[l]; !ok || v != "" {
				t.Errorf("Machine %s: label %s is %q (present %v), want it present and empty", m.Name, l, v, ok)
			}
		}
		if m.Labels[clusterv1.ClusterNameLabel] != f.cluster || m.Spec.ClusterName != f.cluster {
			t.Errorf("Machine %s: cluster %q (label %q), want %s", m.Name, m.Spec.ClusterName, m.Labels[clusterv1.ClusterNameLabel], f.cluster)
		}
		if want := f.cluster + "-" + secret; m.Spec.Bootstrap.DataSecretName == nil || *m.Spec.Bootstrap.DataSecretName != want || m.Spec.Bootstrap.ConfigRef.IsDefined() {
			t.Errorf("Machine %s: bootstrap %+v, want the Secret %s and no bootstrap provider", m.Name, m.Spec.Bootstrap, want)
		}
		if m.Spec.FailureDomain != failureDomain {
			t.Errorf("Machine %s: failureDomain %q, want %q", m.Name, m.Spec.FailureDomain, failureDomain)
		}
		ref := m.Spec.InfrastructureRef
		if ref.Kind != "NestMachine" || ref.APIGroup != infrav1.GroupVersion.Group || ref.Name != m.Name {
			t.Errorf("Machine %s: infrastructureRef %+v, want the NestMachine of the same name", m.Name, ref)
		}
		nm := converted(t, objs, "NestMachine/"+m.Name, &infrav1.NestMachine{})
		expectRHCOSVM(t, "NestMachine "+nm.Name, nm.Spec.KubeVirt, size, nets)
	}
	for i, fd := range f.controlPlane {
		machine(fmt.Sprintf("master-%d", i), "master", fd, controlPlaneSize)
	}
	machine("bootstrap", "bootstrap", f.bootstrap, bootstrapSize, "install.openshift.io/bootstrap")
	if n := len(slices.DeleteFunc(slices.Collect(maps.Values(objs)), func(o *unstructured.Unstructured) bool { return !isControlPlaneMachine(*o) })); n != len(f.controlPlane)+1 {
		t.Errorf("%d control-plane Machines, want %d and the bootstrap Machine", n, len(f.controlPlane))
	}

	for md, fd := range f.workers {
		d := converted(t, objs, "MachineDeployment/"+f.cluster+"-"+md, &clusterv1.MachineDeployment{})
		b := d.Spec.Template.Spec.Bootstrap
		if want := f.cluster + "-worker"; b.DataSecretName == nil || *b.DataSecretName != want || b.ConfigRef.IsDefined() {
			t.Errorf("MachineDeployment %s: bootstrap %+v, want the Secret %s", d.Name, b, want)
		}
		if d.Spec.Template.Spec.FailureDomain != fd {
			t.Errorf("MachineDeployment %s: failureDomain %q, want %q", d.Name, d.Spec.Template.Spec.FailureDomain, fd)
		}
		tmpl := converted(t, objs, "NestMachineTemplate/"+d.Spec.Template.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		if !f.bareMetalWorkers {
			expectRHCOSVM(t, "NestMachineTemplate "+tmpl.Name, tmpl.Spec.Template.Spec.KubeVirt, workerSize, nets)
			continue
		}
		bm := tmpl.Spec.Template.Spec.BareMetal
		if bm == nil || bm.Image.URL != testValues["NEST_BAREMETAL_IMAGE_URL"] || bm.HostSelector.MatchLabels["role"] != "worker" {
			t.Errorf("NestMachineTemplate %s: baremetal %+v, want hosts labelled role=worker written with NEST_BAREMETAL_IMAGE_URL", tmpl.Name, bm)
		}
	}
}

// assistedFlavor is what an openshift-assisted flavor should generate.
type assistedFlavor struct {
	cluster       string
	infraClusters []string
	endpoint      string
	workers       map[string]string
	podBridge     bool
	multus        bool
}

// expectAssisted checks an openshift-assisted flavor: the OpenshiftAssistedControlPlane with the
// OpenShift version, base domain and pull secret, user-managed networking (no VIPs: the NestCluster's
// Services are the endpoints), the node name from the config drive; workers bootstrapped by an
// OpenshiftAssistedConfigTemplate.
func expectAssisted(t *testing.T, objs map[string]*unstructured.Unstructured, f assistedFlavor) {
	t.Helper()
	nets := vmNetworks{podBridge: f.podBridge, multus: f.multus}
	cp := f.cluster + "-control-plane"
	cluster := converted(t, objs, "Cluster/"+f.cluster, &clusterv1.Cluster{})
	if ref := cluster.Spec.ControlPlaneRef; ref.Kind != "OpenshiftAssistedControlPlane" || ref.APIGroup != "controlplane.cluster.x-k8s.io" || ref.Name != cp {
		t.Errorf("Cluster %s: controlPlaneRef %+v, want OpenshiftAssistedControlPlane %s", f.cluster, ref, cp)
	}
	expectOpenShiftEndpoints(t, objs, f.cluster, f.infraClusters, f.endpoint, true)

	oacp := objs["OpenshiftAssistedControlPlane/"+cp]
	pullSecret := f.cluster + "-pull-secret"
	expectField(t, oacp, 3, "spec", "replicas")
	expectField(t, oacp, testValues["NEST_OPENSHIFT_VERSION"], "spec", "distributionVersion")
	expectField(t, oacp, testValues["NEST_OPENSHIFT_BASE_DOMAIN"], "spec", "config", "baseDomain")
	expectField(t, oacp, pullSecret, "spec", "config", "pullSecretRef", "name")
	expectField(t, oacp, pullSecret, "spec", "openshiftAssistedConfigSpec", "pullSecretRef", "name")
	expectField(t, oacp, "$METADATA_LOCAL_HOSTNAME", "spec", "openshiftAssistedConfigSpec", "nodeRegistration", "name")
	expectField(t, oacp, "", "spec", "config", "sshAuthorizedKey")
	for _, vips := range []string{"apiVIPs", "ingressVIPs"} {
		if oacp != nil {
			if _, found, _ := unstructured.NestedFieldNoCopy(oacp.Object, "spec", "config", vips); found {
				t.Errorf("OpenshiftAssistedControlPlane %s sets %s: the cluster is installed with user-managed networking behind the NestCluster's Services", cp, vips)
			}
		}
	}
	expectField(t, oacp, "NestMachineTemplate", "spec", "machineTemplate", "infrastructureRef", "kind")
	expectField(t, oacp, infrav1.GroupVersion.Group, "spec", "machineTemplate", "infrastructureRef", "apiGroup")
	expectField(t, oacp, cp, "spec", "machineTemplate", "infrastructureRef", "name")
	cpTemplate := converted(t, objs, "NestMachineTemplate/"+cp, &infrav1.NestMachineTemplate{})
	expectRHCOSVM(t, "NestMachineTemplate "+cpTemplate.Name, cpTemplate.Spec.Template.Spec.KubeVirt, controlPlaneSize, nets)

	config := objs["OpenshiftAssistedConfigTemplate/"+f.cluster+"-worker"]
	expectField(t, config, pullSecret, "spec", "template", "spec", "pullSecretRef", "name")
	expectField(t, config, "$METADATA_LOCAL_HOSTNAME", "spec", "template", "spec", "nodeRegistration", "name")
	for md, fd := range f.workers {
		d := converted(t, objs, "MachineDeployment/"+f.cluster+"-"+md, &clusterv1.MachineDeployment{})
		if ref := d.Spec.Template.Spec.Bootstrap.ConfigRef; ref.Kind != "OpenshiftAssistedConfigTemplate" || ref.APIGroup != "bootstrap.cluster.x-k8s.io" || ref.Name != f.cluster+"-worker" {
			t.Errorf("MachineDeployment %s: bootstrap configRef %+v, want OpenshiftAssistedConfigTemplate %s-worker", d.Name, ref, f.cluster)
		}
		if d.Spec.Template.Spec.FailureDomain != fd {
			t.Errorf("MachineDeployment %s: failureDomain %q, want %q", d.Name, d.Spec.Template.Spec.FailureDomain, fd)
		}
		tmpl := converted(t, objs, "NestMachineTemplate/"+d.Spec.Template.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		expectRHCOSVM(t, "NestMachineTemplate "+tmpl.Name, tmpl.Spec.Template.Spec.KubeVirt, workerSize, nets)
	}
}

// TestAssistedCRDsRejectFieldsTheProvidersDoNotHave shows that the hand-written OpenShift Assisted CRDs
// of test/crd/assisted check the flavors: a misspelt or missing field in what the openshift-assisted
// flavor generates is rejected by the dry run, as the providers' own CRDs would reject it.
func TestAssistedCRDsRejectFieldsTheProvidersDoNotHave(t *testing.T) {
	t.Parallel()
	m := managementCluster(t)
	objs := map[string]*unstructured.Unstructured{}
	for _, obj := range generate(t, "t-assisted-typos", flavors(t)["openshift-assisted"]) {
		objs[obj.GetKind()] = &obj
	}
	for _, tc := range []struct {
		name, kind string
		edit       func(obj map[string]any) error
		want       string
	}{
		{
			name: "misspelt config field", kind: "OpenshiftAssistedControlPlane", want: `unknown field "spec.config.baseDomian"`,
			edit: func(obj map[string]any) error {
				unstructured.RemoveNestedField(obj, "spec", "config", "baseDomain")
				return unstructured.SetNestedField(obj, "tenants.example.com", "spec", "config", "baseDomian")
			},
		},
		{
			name: "no distribution version", kind: "OpenshiftAssistedControlPlane", want: "spec.distributionVersion: Required value",
			edit: func(obj map[string]any) error {
				unstructured.RemoveNestedField(obj, "spec", "distributionVersion")
				return nil
			},
		},
		{
			name: "VIPs the flavors do not set", kind: "OpenshiftAssistedControlPlane", want: `unknown field "spec.config.apiVIPs"`,
			edit: func(obj map[string]any) error {
				return unstructured.SetNestedStringSlice(obj, []string{"192.0.2.10"}, "spec", "config", "apiVIPs")
			},
		},
		{
			name: "misspelt node registration", kind: "OpenshiftAssistedConfigTemplate", want: `unknown field "spec.template.spec.nodeRegistration.nmae"`,
			edit: func(obj map[string]any) error {
				return unstructured.SetNestedField(obj, "$METADATA_LOCAL_HOSTNAME", "spec", "template", "spec", "nodeRegistration", "nmae")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, ok := objs[tc.kind]
			if !ok {
				t.Fatalf("the openshift-assisted flavor makes no %s", tc.kind)
			}
			edited := obj.DeepCopy()
			if err := tc.edit(edited.Object); err != nil {
				t.Fatal(err)
			}
			err := m.Client.Create(context.Background(), edited, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("dry-running %s with %s: error %v, want one saying %s", tc.kind, tc.name, err, tc.want)
			}
		})
	}
}
