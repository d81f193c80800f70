package e2e

import (
	"fmt"
	"strings"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/sandbox"
)

var _ = Describe("A highly available tenant over three Infra clusters", Ordered, func() {
	It("runs one control-plane VM per Infra cluster, placed by nest-scheduler, and its workers", func(ctx SpecContext) {
		cps := machinesOf(ha, "control-plane")
		Expect(infrasOf(cps)).To(Equal([]string{"infra-1", "infra-2", "infra-3"}), "one control-plane machine per Infra cluster: %v", cps)
		workers := machinesOf(ha, "worker")
		Expect(infrasOf(workers)).To(Equal([]string{"infra-1", "infra-2", "infra-3"}), "one worker per MachineDeployment, each pinned to its Infra cluster: %v", workers)
		for _, r := range append(cps, workers...) {
			Expect(r.Phase).To(Equal("Running"), "machine %s", r.Machine)
			Expect(r.InfraNode).To(HavePrefix(r.Infra+"-node-"), "machine %s runs on a node of its Infra cluster", r.Machine)

			remote := remoteOf(ctx, Default, ha, r.Machine)
			in := sb.Infra(remote.InfraCluster)
			vmi := &kubevirtv1.VirtualMachineInstance{}
			Expect(in.Env.Client.Get(ctx, client.ObjectKey{Namespace: remote.Namespace, Name: remote.Name}, vmi)).To(Succeed())
			Expect(vmi.Status.Phase).To(Equal(kubevirtv1.Running))
			pods := &corev1.PodList{}
			Expect(in.Env.Client.List(ctx, pods, client.InNamespace(remote.Namespace), client.MatchingLabels{kubevirtv1.CreatedByLabel: string(vmi.UID)})).To(Succeed())
			Expect(pods.Items).To(HaveLen(1), "one virt-launcher pod for VMI %s", vmi.Name)
			Expect(pods.Items[0].Spec.SchedulerName).To(Equal(sandbox.SchedulerName), "the VM asks for nest-scheduler")
			Expect(pods.Items[0].Spec.NodeName).To(Equal(vmi.Status.NodeName), "nest-scheduler bound the launcher pod")

			expectProviderID(ctx, ha, r, remote)
		}
		kcp := controlPlane(ctx, Default, ha)
		Expect(ptr.Deref(kcp.Status.ReadyReplicas, 0)).To(Equal(int32(3)), "the real KubeadmControlPlane counts three ready replicas")
		Expect(ptr.Deref(kcp.Status.Initialization.ControlPlaneInitialized, false)).To(BeTrue())
	})

	It("runs an OpenShift tenant from installer ignition: a master per Infra cluster, its endpoints, Nodes named by Ignition", func(ctx SpecContext) {
		var masters []sandbox.MachineRow
		for _, r := range machinesOf(ocp, "control-plane") {
			if strings.Contains(r.Machine, "-master-") {
				masters = append(masters, r)
			}
		}
		Expect(infrasOf(masters)).To(Equal([]string{"infra-1", "infra-2", "infra-3"}), "one master per Infra cluster: %v", masters)
		for _, r := range machinesOf(ocp, "") {
			Expect(r.Phase).To(Equal("Running"), "machine %s", r.Machine)
			remote := remoteOf(ctx, Default, ocp, r.Machine)
			Expect(r.Node).To(Equal(remote.Name), "the RHCOS guest of %s took its node name from the hostname the provider merged into its Ignition", r.Machine)
			expectProviderID(ctx, ocp, r, remote)
		}

		By("the NestCluster publishes the API, machine-config server and ingress in every Infra cluster")
		nc := &infrav1.NestCluster{}
		Expect(sb.Client().Get(ctx, ocp.Key(), nc)).To(Succeed())
		Expect(nc.Status.Endpoints).To(HaveLen(6))
		for _, ep := range nc.Status.Endpoints {
			Expect(ep.Host).To(HavePrefix("172.16."), "%s %s has its load balancer address", ep.InfraCluster, ep.Role)
			if ep.Role == infrav1.EndpointAPI {
				Expect(ep.Ports).To(ContainElement(infrav1.EndpointPort{Name: "machine-config", Port: 22623}))
			}
		}

		By("deleting the bootstrap machine once the installation has bootstrapped")
		Expect(sb.Client().Delete(ctx, &clusterv1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ocp.Namespace, Name: "ocp-bootstrap"}})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(phasesOf(machinesOf(ocp, "control-plane"))).NotTo(HaveKey("ocp-bootstrap"))
			g.Expect(infrasOf(machinesOf(ocp, "control-plane"))).To(Equal([]string{"infra-1", "infra-2", "infra-3"}))
		}).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
		Expect(sb.WaitReady(ctx, ocp, readyTimeout)).To(Succeed())

		By("scaling a MachineDeployment: the new worker fetches its config from the published machine-config server")
		scaleMachineDeployment(ctx, ocp, "ocp-md-1", 2)
		Eventually(func(g Gomega) { expectScaled(ctx, g, ocp, "ocp-md-1", 2) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
		Expect(sb.WaitReady(ctx, ocp, readyTimeout)).To(Succeed())
	})

	It("scales a MachineDeployment 2 → 10 → 3, creating and deleting machines with no leftovers", func(ctx SpecContext) {
		const md = "ha-md-0"
		for _, n := range []int32{2, 10, 3} {
			By(fmt.Sprintf("scaling %s to %d", md, n))
			scaleMachineDeployment(ctx, ha, md, n)
			Eventually(func(g Gomega) { expectScaled(ctx, g, ha, md, n) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
			Expect(sb.WaitReady(ctx, ha, readyTimeout)).To(Succeed(), "the tenant is ready with %s at %d replicas", md, n)
			machines := machinesOfDeployment(ctx, Default, ha, md)
			for _, m := range machines {
				remote := remoteOf(ctx, Default, ha, m.Name)
				Expect(remote.InfraCluster).To(Equal("infra-1"), "%s is pinned to infra-1", md)
			}
			Eventually(func(g Gomega) []string { return strays(ctx, g) }).WithTimeout(time.Minute).WithPolling(poll).
				Should(BeEmpty(), "every VM, VMI, DataVolume, launcher pod and Secret in the Infra clusters belongs to a NestMachine that exists")
		}
		vms := &kubevirtv1.VirtualMachineList{}
		Expect(sb.Infra("infra-1").Env.Client.List(ctx, vms, client.MatchingLabels{infrav1.NestClusterNameLabel: ha.Name})).To(Succeed())
		Expect(vms.Items).To(HaveLen(3+1), "infra-1 holds md-0's three workers and one control-plane VM")
	})

	It("provisions bare-metal workers of the partially virtualized flavor on Metal3 hosts, and releases them", func(ctx SpecContext) {
		bm := createReadyTenant(ctx, sandbox.TenantOptions{
			Name: "bm", Namespace: "tenants-bm", Flavor: sandbox.FlavorBareMetalWorkers, Workers: 2, Infra: "infra-2",
		})
		workers := machinesOf(bm, "worker")
		Expect(workers).To(HaveLen(2))
		hosts := sb.Infra("infra-2").Env.Client
		claimed := func(g Gomega) []string {
			list := &bmov1alpha1.BareMetalHostList{}
			g.Expect(hosts.List(ctx, list, client.InNamespace(sandbox.HostNamespace))).To(Succeed())
			var out []string
			for _, h := range list.Items {
				if h.Spec.ConsumerRef != nil {
					g.Expect(h.Status.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioned), "claimed host %s is provisioned", h.Name)
					out = append(out, h.Name)
				}
			}
			return out
		}
		for _, w := range workers {
			Expect(w.Infra).To(Equal("infra-2"))
			Expect(w.InfraNode).To(HavePrefix("infra-2-host-"), "worker %s runs on a BareMetalHost", w.Machine)
			Expect(w.Phase).To(Equal("Running"))
		}
		Expect(claimed(Default)).To(HaveLen(2), "two hosts claimed")
		Expect(machinesOf(bm, "control-plane")).To(HaveLen(1))
		Expect(machinesOf(bm, "control-plane")[0].InfraNode).To(HavePrefix("infra-2-node-"), "the control plane is a VM")

		By("scaling the bare-metal workers to one: a host is deprovisioned and released")
		scaleMachineDeployment(ctx, bm, "bm-md-0", 1)
		Eventually(func(g Gomega) { expectScaled(ctx, g, bm, "bm-md-0", 1) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
		Expect(sb.WaitReady(ctx, bm, readyTimeout)).To(Succeed())
		Eventually(claimed).WithTimeout(2 * time.Minute).WithPolling(poll).Should(HaveLen(1))

		By("deleting the tenant: every host is released")
		Expect(sb.DeleteTenant(ctx, bm, 3*time.Minute)).To(Succeed())
		Eventually(claimed).WithTimeout(2 * time.Minute).WithPolling(poll).Should(BeEmpty())
		Eventually(func(g Gomega) []string { return objectsOfTenant(ctx, g, bm) }).WithTimeout(2 * time.Minute).WithPolling(poll).Should(BeEmpty())
	})

	It("provisions an OpenShift tenant's bare-metal workers from the worker ignition, and releases them", func(ctx SpecContext) {
		bm := createReadyTenant(ctx, sandbox.TenantOptions{
			Name: "ocp-bm", Namespace: "tenants-ocp-bm", Flavor: sandbox.FlavorOpenShiftBareMetalWorkers, Workers: 1, Infra: "infra-2",
		})
		workers := machinesOf(bm, "worker")
		Expect(workers).To(HaveLen(1))
		Expect(workers[0].InfraNode).To(HavePrefix("infra-2-host-"), "the worker runs on a BareMetalHost")
		remote := remoteOf(ctx, Default, bm, workers[0].Machine)
		Expect(remote.Kind).To(Equal("BareMetalHost"))
		expectProviderID(ctx, bm, workers[0], remote)
		nc := &infrav1.NestCluster{}
		Expect(sb.Client().Get(ctx, bm.Key(), nc)).To(Succeed())
		Expect(nc.Status.Endpoints).To(ConsistOf(HaveField("Role", infrav1.EndpointAPI)), "the flavor publishes no ingress Service: the routers run on the hosts")
		Expect(nc.Spec.ControlPlaneEndpoint.Host).To(Equal(nc.Status.Endpoints[0].Host), "one Infra cluster: the endpoint is its API Service")

		Expect(sb.DeleteTenant(ctx, bm, 4*time.Minute)).To(Succeed())
		Eventually(func(g Gomega) []string { return objectsOfTenant(ctx, g, bm) }).WithTimeout(2 * time.Minute).WithPolling(poll).Should(BeEmpty())
	})

	var lostMachine, lostVM, lostNamespace string
	var ocpLostMachine, ocpLostNode string
	var ocpLostVM *infrav1.RemoteObject

	It("keeps the control plane when an Infra cluster is lost, and replaces its machine elsewhere", func(ctx SpecContext) {
		const lost = "infra-3"
		for _, r := range machinesOf(ha, "control-plane") {
			if r.Infra == lost {
				lostMachine = r.Machine
			}
		}
		Expect(lostMachine).NotTo(BeEmpty())
		remote := remoteOf(ctx, Default, ha, lostMachine)
		lostVM, lostNamespace = remote.Name, remote.Namespace

		Expect(sb.LoseInfra(ctx, lost)).To(Succeed())
		Eventually(func(g Gomega) []string { return controlPlaneFailureDomains(ctx, g, ha) }).WithTimeout(time.Minute).WithPolling(poll).
			Should(Equal([]string{"infra-1", "infra-2"}), "the lost Infra cluster leaves the tenant's failure domains")
		survivors := 0
		for _, r := range machinesOf(ha, "control-plane") {
			if r.Infra != lost && r.Phase == "Running" {
				survivors++
			}
		}
		Expect(survivors).To(Equal(2), "two of three control-plane machines keep running")

		Eventually(func(g Gomega) {
			cps := machinesOf(ha, "control-plane")
			g.Expect(phasesOf(cps)).NotTo(HaveKey(lostMachine), "the lost machine is remediated and deleted: nothing hangs")
			g.Expect(cps).To(HaveLen(3))
			for _, r := range cps {
				g.Expect(r.Phase).To(Equal("Running"), "machine %s", r.Machine)
				g.Expect(r.Infra).To(BeElementOf("infra-1", "infra-2"), "replacement %s lands in a healthy Infra cluster", r.Machine)
			}
			g.Expect(ptr.Deref(controlPlane(ctx, g, ha).Status.ReadyReplicas, 0)).To(Equal(int32(3)))
		}).WithTimeout(recoveryTimeout).WithPolling(poll).Should(Succeed())

		orphans := infraCluster(ctx, Default, lost).Status.Orphans
		Expect(orphans).To(ContainElement(HaveField("Name", lostVM)), "the lost machine's VM is recorded as an orphan to sweep")

		By("the OpenShift tenant's master there has no remediation: its Machine stays, its Node is not ready")
		for _, r := range machinesOf(ocp, "control-plane") {
			if r.Infra == lost {
				ocpLostMachine = r.Machine
				ocpLostVM = remoteOf(ctx, Default, ocp, r.Machine)
				ocpLostNode = r.Node
			}
		}
		Expect(ocpLostMachine).NotTo(BeEmpty())
		node := &corev1.Node{}
		Expect(ocp.Env.Client.Get(ctx, client.ObjectKey{Name: ocpLostNode}, node)).To(Succeed())
		Expect(nodeReady(node)).To(Equal(corev1.ConditionUnknown))
	})

	It("restores one control-plane VM per Infra cluster when the lost one returns, and sweeps the orphans", func(ctx SpecContext) {
		const lost = "infra-3"
		Expect(sb.RecoverInfra(ctx, lost)).To(Succeed())
		Eventually(func(g Gomega) []string { return controlPlaneFailureDomains(ctx, g, ha) }).WithTimeout(time.Minute).WithPolling(poll).
			Should(Equal([]string{"infra-1", "infra-2", "infra-3"}), "the Infra cluster rejoins the failure domains")

		Eventually(func(g Gomega) {
			g.Expect(infraCluster(ctx, g, lost).Status.Orphans).To(BeEmpty(), "orphans are swept")
			vm := &kubevirtv1.VirtualMachine{}
			err := sb.Infra(lost).Env.Client.Get(ctx, client.ObjectKey{Namespace: lostNamespace, Name: lostVM}, vm)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the orphaned VM %s is gone", lostVM)
		}).WithTimeout(2 * time.Minute).WithPolling(poll).Should(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(controlPlane(ctx, g, ha).Spec.Rollout.After.IsZero()).To(BeFalse(), "the provider requested a KubeadmControlPlane rollout")
			cps := machinesOf(ha, "control-plane")
			g.Expect(infrasOf(cps)).To(Equal([]string{"infra-1", "infra-2", "infra-3"}), "one control-plane machine per Infra cluster again: %v", cps)
			ready, why := sb.TenantReady(ha)
			g.Expect(ready).To(BeTrue(), why)
		}).WithTimeout(recoveryTimeout).WithPolling(poll).Should(Succeed())
		nc := &infrav1.NestCluster{}
		Expect(sb.Client().Get(ctx, ha.Key(), nc)).To(Succeed())
		Expect(meta.IsStatusConditionTrue(nc.Status.Conditions, infrav1.ControlPlaneBalancedCondition)).To(BeTrue(), "the NestCluster reports the control plane balanced")
		Eventually(func(g Gomega) []string { return strays(ctx, g) }).WithTimeout(time.Minute).WithPolling(poll).Should(BeEmpty())

		By("the OpenShift tenant's master runs again as it was: same Machine, same VM, its Node ready")
		Eventually(func(g Gomega) {
			g.Expect(remoteOf(ctx, g, ocp, ocpLostMachine)).To(Equal(ocpLostVM))
			node := &corev1.Node{}
			g.Expect(ocp.Env.Client.Get(ctx, client.ObjectKey{Name: ocpLostNode}, node)).To(Succeed())
			g.Expect(nodeReady(node)).To(Equal(corev1.ConditionTrue))
			ready, why := sb.TenantReady(ocp)
			g.Expect(ready).To(BeTrue(), why)
		}).WithTimeout(recoveryTimeout).WithPolling(poll).Should(Succeed())
		Expect(infrasOf(machinesOf(ocp, "control-plane"))).To(Equal([]string{"infra-1", "infra-2", "infra-3"}))
		Eventually(func(g Gomega) {
			nc := &infrav1.NestCluster{}
			g.Expect(sb.Client().Get(ctx, ocp.Key(), nc)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(nc.Status.Conditions, infrav1.ControlPlaneBalancedCondition)).To(BeTrue(), "nothing to restore: the masters ran again where they were")
		}).WithTimeout(time.Minute).WithPolling(poll).Should(Succeed())
	})

	It("deletes the OpenShift tenant and leaves none of its Services, VMs or namespaces", func(ctx SpecContext) {
		Expect(sb.DeleteTenant(ctx, ocp, 4*time.Minute)).To(Succeed())
		Eventually(func(g Gomega) []string { return objectsOfTenant(ctx, g, ocp) }).WithTimeout(2 * time.Minute).WithPolling(poll).Should(BeEmpty())
	})

	It("moves to another management cluster with clusterctl move, keeping every VM, and runs from there", func(ctx SpecContext) {
		vmsOfTenant := func(g Gomega) map[string]kubevirtv1.VirtualMachine {
			out := map[string]kubevirtv1.VirtualMachine{}
			for _, in := range sb.Infras {
				vms := &kubevirtv1.VirtualMachineList{}
				g.Expect(in.Env.Client.List(ctx, vms, client.MatchingLabels{infrav1.NestClusterNameLabel: ha.Name})).To(Succeed())
				for _, vm := range vms.Items {
					out[in.Name+"/"+vm.Namespace+"/"+vm.Name] = vm
				}
			}
			return out
		}
		state := func(g Gomega) map[string]string {
			out := map[string]string{}
			for k, vm := range vmsOfTenant(g) {
				g.Expect(vm.DeletionTimestamp).To(BeNil(), "VM %s is being deleted", k)
				out[k] = fmt.Sprintf("uid %s generation %d", vm.UID, vm.Generation)
			}
			return out
		}
		before := state(Default)
		Expect(before).NotTo(BeEmpty())
		source := sb.Client()

		Expect(sb.Move(ctx, ha.Namespace)).To(Succeed())
		Expect(sb.WaitReady(ctx, ha, readyTimeout)).To(Succeed(), "the tenant is ready on the new management cluster")
		nms := &infrav1.NestMachineList{}
		Expect(source.List(ctx, nms, client.InNamespace(ha.Namespace))).To(Succeed())
		Expect(nms.Items).To(BeEmpty(), "clusterctl removed the tenant from the previous management cluster")

		By("both providers running and sweeping: nothing is recreated or rewritten")
		Consistently(state).WithTimeout(40 * time.Second).WithPolling(2 * time.Second).Should(Equal(before))
		kubeSystem := &corev1.Namespace{}
		Expect(sb.Client().Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, kubeSystem)).To(Succeed())
		for k, vm := range vmsOfTenant(Default) {
			Expect(vm.Labels).To(HaveKeyWithValue(infrav1.ManagementClusterLabel, string(kubeSystem.UID)), "VM %s belongs to the new management cluster", k)
		}

		By("scaling a MachineDeployment on the new management cluster")
		const md = "ha-md-0"
		n := int32(len(machinesOfDeployment(ctx, Default, ha, md)))
		for _, replicas := range []int32{n + 1, n} {
			scaleMachineDeployment(ctx, ha, md, replicas)
			Eventually(func(g Gomega) { expectScaled(ctx, g, ha, md, replicas) }).WithTimeout(readyTimeout).WithPolling(poll).Should(Succeed())
			Expect(sb.WaitReady(ctx, ha, readyTimeout)).To(Succeed())
		}
		Eventually(func(g Gomega) []string { return strays(ctx, g) }).WithTimeout(time.Minute).WithPolling(poll).Should(BeEmpty())
	})

	It("leaves no object of the tenant in any Infra cluster once it is deleted", func(ctx SpecContext) {
		Expect(sb.DeleteTenant(ctx, ha, 4*time.Minute)).To(Succeed())
		Eventually(func(g Gomega) []string { return objectsOfTenant(ctx, g, ha) }).WithTimeout(2*time.Minute).WithPolling(poll).
			Should(BeEmpty(), "no VM, VMI, DataVolume, pod, Secret, Service, namespace or host of the tenant is left")
		Eventually(func(g Gomega) []string { return strays(ctx, g) }).WithTimeout(time.Minute).WithPolling(poll).Should(BeEmpty())
	})
})
