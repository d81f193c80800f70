package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// zapLevel is error unless NEST_TEST_LOG=debug asks for the controllers' logs.
func zapLevel() zapcore.Level {
	if os.Getenv("NEST_TEST_LOG") == "debug" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

var seq atomic.Int64

// eventuallyTimeout bounds every wait of this suite for something the controllers do. A wait ends as
// soon as what it waits for happens; the bound only decides how long a test takes to fail. It is
// generous because the suite must hold on a loaded two-core machine (a CPU hog, other suites, the
// end-to-end sandbox), where a reconcile that takes 50 ms idle can take seconds.
const eventuallyTimeout = 2 * time.Minute

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

// registerInfraCluster stores env's kubeconfig in a Secret and registers an InfraCluster for it,
// probed every second so tests see loss and recovery quickly, with a 3-second orphan grace period so
// that the sweeper acts within the tests' waits.
func registerInfraCluster(t *testing.T, name string, env *envtest.Environment, allowed *infrav1.AllowedNamespaces) *infrav1.InfraCluster {
	t.Helper()
	return registerInfraClusterOn(t, mgmt, name, env, allowed)
}

// registerInfraClusterOn registers the InfraCluster in the management cluster of c.
func registerInfraClusterOn(t *testing.T, c client.Client, name string, env *envtest.Environment, allowed *infrav1.AllowedNamespaces, mutate ...func(*infrav1.InfraCluster)) *infrav1.InfraCluster {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(c.Create(ctx, env.KubeconfigSecret(providerNamespace, name+"-kubeconfig"))).To(Succeed())
	ic := &infrav1.InfraCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: infrav1.InfraClusterSpec{
			KubeconfigSecretRef:      &infrav1.SecretKeyReference{Name: name + "-kubeconfig"},
			AllowedNamespaces:        allowed,
			Probe:                    &infrav1.ProbeSpec{IntervalSeconds: 1, TimeoutSeconds: 1},
			OrphanGracePeriodSeconds: ptr.To[int32](3),
		},
	}
	for _, m := range mutate {
		m(ic)
	}
	g.Expect(c.Create(ctx, ic)).To(Succeed())
	return ic
}

// newTenant creates a CAPI Cluster and its NestCluster (owned by it, as CAPI's Cluster controller
// would make it) over the given Infra clusters, with a user-given endpoint.
func newTenant(t *testing.T, infras ...string) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	return newTenantWith(t, withEndpoint, infras...)
}

func newTenantWith(t *testing.T, mutate func(*infrav1.NestCluster), infras ...string) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	return newTenantOn(t, mgmt, "default", uniqueName("tenant"), mutate, infras...)
}

// withEndpoint gives a NestCluster a user-given control-plane endpoint.
func withEndpoint(nc *infrav1.NestCluster) {
	nc.Spec.ControlPlaneEndpoint = clusterv1.APIEndpoint{Host: "10.0.0.10", Port: 6443}
}

// newTenantOn creates the Cluster and NestCluster namespace/name in the management cluster of mgmt.
func newTenantOn(t *testing.T, mgmt client.Client, namespace, name string, mutate func(*infrav1.NestCluster), infras ...string) (*clusterv1.Cluster, *infrav1.NestCluster) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	cluster := &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestCluster", Name: name},
		},
	}
	g.Expect(mgmt.Create(ctx, cluster)).To(Succeed())
	nc := &infrav1.NestCluster{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels:          map[string]string{clusterv1.ClusterNameLabel: name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Cluster", Name: name, UID: cluster.UID}},
		},
	}
	for _, i := range infras {
		nc.Spec.InfraClusters = append(nc.Spec.InfraClusters, infrav1.InfraClusterUse{Name: i})
	}
	mutate(nc)
	g.Expect(mgmt.Create(ctx, nc)).To(Succeed())
	return cluster, nc
}

func failureDomainNames(nc *infrav1.NestCluster) []string {
	names := []string{}
	for _, fd := range nc.Status.FailureDomains {
		if ptr.Deref(fd.ControlPlane, false) {
			names = append(names, fd.Name)
		}
	}
	return names
}

// tenantNamespace is the namespace of nc in an Infra cluster with the default prefix.
func tenantNamespace(nc *infrav1.NestCluster) string {
	return ownership.TenantNamespace("nest-", nc.Namespace, nc.Labels[clusterv1.ClusterNameLabel])
}

func get(g Gomega, obj client.Object) client.Object {
	g.Expect(mgmt.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	return obj
}

// markInfrastructureProvisioned does what CAPI's Cluster controller does once the NestCluster is
// provisioned (no CAPI controller runs in this suite).
func markInfrastructureProvisioned(t *testing.T, cluster *clusterv1.Cluster) {
	t.Helper()
	markInfrastructureProvisionedOn(t, mgmt, cluster)
}

func markInfrastructureProvisionedOn(t *testing.T, mgmt client.Client, cluster *clusterv1.Cluster) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(mgmt.Get(context.Background(), client.ObjectKeyFromObject(cluster), cluster)).To(Succeed())
	cluster.Status.Initialization.InfrastructureProvisioned = ptr.To(true)
	g.Expect(mgmt.Status().Update(context.Background(), cluster)).To(Succeed())
}

// machineOpts describe a tenant machine for newMachine.
type machineOpts struct {
	failureDomain string
	controlPlane  bool
	format        string // bootstrap format; "" = cloud-config
	spec          infrav1.NestMachineSpec
	name          string            // of the Machine and NestMachine, as a person names them; "" = generated
	data          []byte            // bootstrap data; nil = a small valid config of the format
	labels        map[string]string // more labels of the Machine and NestMachine
}

// newMachine creates what CAPI would for one machine: the bootstrap Secret, the Machine (with its
// failure domain) and the NestMachine owned by it.
func newMachine(t *testing.T, cluster *clusterv1.Cluster, o machineOpts) (*clusterv1.Machine, *infrav1.NestMachine) {
	t.Helper()
	return newMachineOn(t, mgmt, cluster, o)
}

// newMachineOn creates the machine in the management cluster of mgmt.
func newMachineOn(t *testing.T, mgmt client.Client, cluster *clusterv1.Cluster, o machineOpts) (*clusterv1.Machine, *infrav1.NestMachine) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	name := o.name
	if name == "" {
		name = uniqueName(cluster.Name + "-m")
	}
	labels := map[string]string{clusterv1.ClusterNameLabel: cluster.Name}
	if o.controlPlane {
		labels[clusterv1.MachineControlPlaneLabel] = ""
	}
	maps.Copy(labels, o.labels)
	format := o.format
	if format == "" {
		format = "cloud-config"
	}
	data := o.data
	switch {
	case data != nil:
	case format == "ignition":
		data = []byte(`{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`)
	default:
		data = []byte("#cloud-config\nhostname: " + name + "\n")
	}
	g.Expect(mgmt.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: name + "-bootstrap"},
		Data:       map[string][]byte{"value": data, "format": []byte(format)},
	})).To(Succeed())
	machine := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Namespace: cluster.Namespace, Name: name, Labels: labels,
			// CAPI's Machine controller makes the Cluster an owner of each Machine (clusterctl move
			// finds them through it).
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Cluster", Name: cluster.Name, UID: cluster.UID}}},
		Spec: clusterv1.MachineSpec{
			ClusterName:       cluster.Name,
			FailureDomain:     o.failureDomain,
			Bootstrap:         clusterv1.Bootstrap{DataSecretName: ptr.To(name + "-bootstrap")},
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: "NestMachine", Name: name},
		},
	}
	g.Expect(mgmt.Create(ctx, machine)).To(Succeed())
	nm := &infrav1.NestMachine{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: cluster.Namespace, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: clusterv1.GroupVersion.String(), Kind: "Machine", Name: name, UID: machine.UID}},
		},
		Spec: o.spec,
	}
	g.Expect(mgmt.Create(ctx, nm)).To(Succeed())
	return machine, nm
}

// vmSpec is a small VM booting from a container disk.
func vmSpec() infrav1.NestMachineSpec {
	mem := resource.MustParse("2Gi")
	return infrav1.NestMachineSpec{KubeVirt: &infrav1.KubeVirtMachineSpec{
		CPU:       &infrav1.CPU{Cores: 2},
		Memory:    &mem,
		BootImage: infrav1.BootImage{ContainerDisk: &infrav1.ContainerDiskSource{Image: "quay.io/containerdisks/fedora:42"}},
	}}
}

// stopAPIServer stops env's API server for the rest of t, or until the returned func starts it
// again: an Infra cluster lost and brought back.
func stopAPIServer(t *testing.T, env *envtest.Environment) (restart func()) {
	t.Helper()
	NewWithT(t).Expect(env.StopAPIServer()).To(Succeed())
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = env.StartAPIServer()
		}
	})
	return func() {
		t.Helper()
		NewWithT(t).Expect(env.StartAPIServer()).To(Succeed())
		stopped = false
	}
}

// sweepsWindow covers five full probes, so five sweeps, at the suite's 1 s probe interval (a full
// probe every sixth) with margin for a loaded machine.
const sweepsWindow = 33 * time.Second

// vmUIDs reads the UID of each NestMachine's VM in the Infra cluster c.
func vmUIDs(g Gomega, c client.Client, ns string, nms ...*infrav1.NestMachine) map[string]types.UID {
	uids := map[string]types.UID{}
	for _, nm := range nms {
		vm := &kubevirtv1.VirtualMachine{}
		g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: kubevirt.VMName(nm)}, vm)).To(Succeed())
		g.Expect(vm.DeletionTimestamp).To(BeNil(), "VM %s is being deleted", vm.Name)
		uids[vm.Name] = vm.UID
	}
	return uids
}

// secondManagement starts a second management API server and a manager of the provider on it, with
// another identity, registering the three Infra clusters of the suite with their own tenant namespace
// prefix.
func secondManagement(t *testing.T, id ownership.Identity, prefix string) client.Client {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	env, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: providerNamespace}})).To(Succeed())
	for i, name := range threeInfras {
		registerInfraClusterOn(t, env.Client, name, topo.Infras[i], &infrav1.AllowedNamespaces{}, func(ic *infrav1.InfraCluster) {
			ic.Spec.TenantNamespacePrefix = prefix
		})
	}
	stop, err := startManagerOn(ctx, env.Config, id)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(stop)
	return env.Client
}
