package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/sandbox"
)

// machinesOf lists the machines of a tenant as the sandbox shows them.
func machinesOf(t *sandbox.Tenant, role string) []sandbox.MachineRow {
	var rows []sandbox.MachineRow
	for _, r := range sb.Machines() {
		if r.Tenant == t.Namespace+"/"+t.Name && (role == "" || r.Role == role) {
			rows = append(rows, r)
		}
	}
	return rows
}

// infrasOf lists the Infra cluster of each row, sorted.
func infrasOf(rows []sandbox.MachineRow) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Infra)
	}
	sort.Strings(out)
	return out
}

// phasesOf maps machine name to phase.
func phasesOf(rows []sandbox.MachineRow) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[r.Machine] = r.Phase
	}
	return out
}

// ownedKinds are the kinds the provider creates in an Infra cluster (or claims there: hosts).
var ownedKinds = []client.ObjectList{
	&kubevirtv1.VirtualMachineList{}, &kubevirtv1.VirtualMachineInstanceList{}, &cdiv1beta1.DataVolumeList{},
	&corev1.PodList{}, &corev1.SecretList{}, &corev1.ServiceList{}, &corev1.NamespaceList{}, &bmov1alpha1.BareMetalHostList{},
}

// objectsOfTenant lists every object in every Infra cluster labelled as the tenant's: "<infra> <Kind>
// <namespace>/<name>".
func objectsOfTenant(ctx context.Context, g Gomega, t *sandbox.Tenant) []string {
	var out []string
	for _, in := range sb.Infras {
		for _, list := range ownedKinds {
			list = list.DeepCopyObject().(client.ObjectList)
			g.Expect(in.Env.Client.List(ctx, list, client.MatchingLabels{
				infrav1.NestClusterNamespaceLabel: t.Namespace, infrav1.NestClusterNameLabel: t.Name,
			})).To(Succeed())
			out = append(out, describe(g, in.Name, list)...)
		}
	}
	return out
}

// strays lists the objects in any Infra cluster made for a NestMachine that no longer exists, or for
// an earlier NestMachine of the same name that the current one does not record: what a machine left
// behind. (A moved machine's VM keeps its first owner's UID in its template, so in its instance and
// pod: the NestMachine records it, as the sweeper's rule says.)
func strays(ctx context.Context, g Gomega) []string {
	nms := &infrav1.NestMachineList{}
	g.Expect(sb.Client().List(ctx, nms)).To(Succeed())
	byName := map[types.NamespacedName]*infrav1.NestMachine{}
	for i := range nms.Items {
		byName[client.ObjectKeyFromObject(&nms.Items[i])] = &nms.Items[i]
	}
	var out []string
	for _, in := range sb.Infras {
		for _, list := range ownedKinds {
			list = list.DeepCopyObject().(client.ObjectList)
			g.Expect(in.Env.Client.List(ctx, list, client.HasLabels{infrav1.NestMachineUIDLabel})).To(Succeed())
			items, err := meta.ExtractList(list)
			g.Expect(err).NotTo(HaveOccurred())
			for _, item := range items {
				o := item.(client.Object)
				owner, ok := ownership.OwnerOf(o)
				nm := byName[owner.Key()]
				if !ok || nm == nil || (string(nm.UID) != o.GetLabels()[infrav1.NestMachineUIDLabel] && !ownership.RecordsIn(nm, in.Name, o.GetNamespace())) {
					out = append(out, fmt.Sprintf("%s %T %s/%s", in.Name, o, o.GetNamespace(), o.GetName()))
				}
			}
		}
	}
	return out
}

func describe(g Gomega, infra string, list client.ObjectList) []string {
	items, err := meta.ExtractList(list)
	g.Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, item := range items {
		o := item.(client.Object)
		kind := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", list), "*v1."), "List")
		out = append(out, fmt.Sprintf("%s %s %s/%s", infra, kind, o.GetNamespace(), o.GetName()))
	}
	return out
}

// remoteOf is the remote object (VM or host) recorded by a Machine's NestMachine.
func remoteOf(ctx context.Context, g Gomega, t *sandbox.Tenant, machine string) *infrav1.RemoteObject {
	nm := &infrav1.NestMachine{}
	g.Expect(sb.Client().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: machine}, nm)).To(Succeed())
	g.Expect(nm.Status.Remote).NotTo(BeNil(), "NestMachine %s records its remote object", machine)
	return nm.Status.Remote
}

// controlPlane reads the tenant's KubeadmControlPlane.
func controlPlane(ctx context.Context, g Gomega, t *sandbox.Tenant) *controlplanev1.KubeadmControlPlane {
	kcp := &controlplanev1.KubeadmControlPlane{}
	g.Expect(sb.Client().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.KubeadmControlPlaneName()}, kcp)).To(Succeed())
	return kcp
}

// controlPlaneFailureDomains lists the Cluster's control-plane failure domains.
func controlPlaneFailureDomains(ctx context.Context, g Gomega, t *sandbox.Tenant) []string {
	c := &clusterv1.Cluster{}
	g.Expect(sb.Client().Get(ctx, t.Key(), c)).To(Succeed())
	var out []string
	for _, fd := range c.Status.FailureDomains {
		if ptr.Deref(fd.ControlPlane, false) {
			out = append(out, fd.Name)
		}
	}
	slices.Sort(out)
	return out
}

// infraCluster reads an InfraCluster.
func infraCluster(ctx context.Context, g Gomega, name string) *infrav1.InfraCluster {
	ic := &infrav1.InfraCluster{}
	g.Expect(sb.Client().Get(ctx, client.ObjectKey{Name: name}, ic)).To(Succeed())
	return ic
}

// scaleMachineDeployment sets a MachineDeployment's replicas.
func scaleMachineDeployment(ctx context.Context, t *sandbox.Tenant, name string, replicas int32) {
	md := &clusterv1.MachineDeployment{}
	Expect(sb.Client().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, md)).To(Succeed())
	orig := md.DeepCopy()
	md.Spec.Replicas = ptr.To(replicas)
	Expect(sb.Client().Patch(ctx, md, client.MergeFrom(orig))).To(Succeed())
}

// machinesOfDeployment lists the Machines of a MachineDeployment that are not being deleted.
func machinesOfDeployment(ctx context.Context, g Gomega, t *sandbox.Tenant, md string) []clusterv1.Machine {
	list := &clusterv1.MachineList{}
	g.Expect(sb.Client().List(ctx, list, client.InNamespace(t.Namespace), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: md})).To(Succeed())
	return list.Items
}

// expectScaled checks, from the API server, that a MachineDeployment has observed its spec and has
// exactly replicas Machines, all ready and none being deleted.
func expectScaled(ctx context.Context, g Gomega, t *sandbox.Tenant, name string, replicas int32) {
	md := &clusterv1.MachineDeployment{}
	g.Expect(sb.Client().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: name}, md)).To(Succeed())
	g.Expect(md.Status.ObservedGeneration).To(Equal(md.Generation), "%s observed its spec", name)
	g.Expect(ptr.Deref(md.Status.Replicas, 0)).To(Equal(replicas), "%s replicas", name)
	g.Expect(ptr.Deref(md.Status.ReadyReplicas, 0)).To(Equal(replicas), "%s ready replicas", name)
	list := &clusterv1.MachineList{}
	g.Expect(sb.Client().List(ctx, list, client.InNamespace(t.Namespace), client.MatchingLabels{clusterv1.MachineDeploymentNameLabel: name})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(int(replicas)), "%s has exactly %d Machines, none left being deleted", name, replicas)
}

// nodeReady is the status of a Node's Ready condition ("" when it has none).
func nodeReady(node *corev1.Node) corev1.ConditionStatus {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// createReadyTenant creates a tenant of the sandbox and waits until it is ready.
func createReadyTenant(ctx context.Context, o sandbox.TenantOptions) *sandbox.Tenant {
	t, err := sb.CreateTenant(ctx, o)
	Expect(err).NotTo(HaveOccurred())
	Expect(sb.WaitReady(ctx, t, readyTimeout)).To(Succeed(), "tenant %s/%s (flavor %s) comes up", o.Namespace, o.Name, o.Flavor)
	return t
}

// expectProviderID checks that the tenant Node a machine registered carries the providerID of the
// machine's VM or host, which the provider sets through CAPI's ClusterCache.
func expectProviderID(ctx context.Context, t *sandbox.Tenant, r sandbox.MachineRow, remote *infrav1.RemoteObject) {
	node := &corev1.Node{}
	Expect(t.Env.Client.Get(ctx, client.ObjectKey{Name: r.Node}, node)).To(Succeed())
	Expect(node.Spec.ProviderID).To(Equal(infrav1.ProviderID(remote.InfraCluster, remote.Namespace, remote.Name)), "the Node of machine %s", r.Machine)
}
