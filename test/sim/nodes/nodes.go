package nodes

import (
	"context"
	"errors"
	"fmt"
	"slices"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
)

// DefaultKubeletVersion is the kubelet version fake nodes report: the Kubernetes release of the test API
// servers.
const DefaultKubeletVersion = "v1.37.2"

// KubeVirtDevices is what virt-handler's device plugins advertise on an Infra node.
var KubeVirtDevices = corev1.ResourceList{
	kubevirt.KVMDevice:      resource.MustParse("1k"),
	kubevirt.TunDevice:      resource.MustParse("1k"),
	kubevirt.VhostNetDevice: resource.MustParse("1k"),
}

// Options describe fake nodes.
type Options struct {
	// Prefix names the nodes <Prefix>-<i>; default "node".
	Prefix string
	// Count is the number of nodes Create makes; default 1.
	Count int
	// Capacity of each node; default 32 CPUs, 128Gi memory, 110 pods, 500Gi ephemeral storage. Add extended
	// resources here.
	Capacity corev1.ResourceList
	// Allocatable of each node; default Capacity.
	Allocatable corev1.ResourceList
	// Labels on every node, besides kubernetes.io/hostname, kubernetes.io/os and kubernetes.io/arch.
	Labels map[string]string
	// Taints on every node.
	Taints []corev1.Taint
	// KubeVirt makes Infra nodes as virt-handler leaves them: labelled kubevirt.io/schedulable=true, with
	// KubeVirtDevices in capacity and allocatable. virt-launcher pods need both.
	KubeVirt bool
	// ProviderID sets spec.providerID; for Create, of node i: ProviderID(i).
	ProviderID func(i int) string
	// Address is the InternalIP of node i; default 192.168.<i/254>.<i%254+1>.
	Address func(i int) string
	// NotReady makes nodes whose Ready condition is False.
	NotReady bool
	// KubeletVersion reported in status.nodeInfo; default DefaultKubeletVersion.
	KubeletVersion string
}

// DefaultCapacity is a node's capacity when Options.Capacity is empty.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("32"),
		corev1.ResourceMemory:           resource.MustParse("128Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("500Gi"),
	}
}

// New builds node i of opts (not created): a Ready node with capacity, allocatable, labels, taints,
// addresses and node info.
func New(i int, opts Options) *corev1.Node {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "node"
	}
	name := fmt.Sprintf("%s-%d", prefix, i)
	capacity := opts.Capacity
	if len(capacity) == 0 {
		capacity = DefaultCapacity()
	}
	capacity = capacity.DeepCopy()
	allocatable := opts.Allocatable.DeepCopy()
	if len(allocatable) == 0 {
		allocatable = capacity.DeepCopy()
	}
	labels := map[string]string{}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	if opts.KubeVirt {
		labels[kubevirt.SchedulableLabel] = "true"
		for k, v := range KubeVirtDevices {
			capacity[k] = v
			allocatable[k] = v
		}
	}
	address := fmt.Sprintf("192.168.%d.%d", (i/254)%256, i%254+1)
	if opts.Address != nil {
		address = opts.Address(i)
	}
	node := build(name, labels, capacity, allocatable, address, !opts.NotReady, opts.KubeletVersion)
	node.Spec.Taints = opts.Taints
	if opts.ProviderID != nil {
		node.Spec.ProviderID = opts.ProviderID(i)
	}
	return node
}

func build(name string, labels map[string]string, capacity, allocatable corev1.ResourceList, address string, ready bool, kubelet string) *corev1.Node {
	if kubelet == "" {
		kubelet = DefaultKubeletVersion
	}
	all := map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
	}
	for k, v := range labels {
		all[k] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: all},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: allocatable,
			Conditions:  []corev1.NodeCondition{readyCondition(ready)},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion: kubelet, OperatingSystem: "linux", Architecture: "amd64",
				OSImage: "simulated", ContainerRuntimeVersion: "cri-o://1.37.0", KernelVersion: "6.8.0-sim",
			},
		},
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
	if address != "" {
		node.Status.Addresses = append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: address}}, node.Status.Addresses...)
	}
	return node
}

func readyCondition(ready bool) corev1.NodeCondition {
	c := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}
	if !ready {
		c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletNotReady", "simulated: node is not ready"
	}
	return c
}

// Create creates opts.Count nodes (New(0..Count-1, opts)), status included, and returns them.
func Create(ctx context.Context, c client.Client, opts Options) ([]*corev1.Node, error) {
	count := opts.Count
	if count <= 0 {
		count = 1
	}
	out := make([]*corev1.Node, 0, count)
	for i := range count {
		node := New(i, opts)
		if err := create(ctx, c, node); err != nil {
			return out, err
		}
		out = append(out, node)
	}
	return out, nil
}

// create creates node and plays the node lifecycle controller, which envtest does not run: the API
// server's TaintNodesByCondition admission taints every new node node.kubernetes.io/not-ready, and that
// controller lifts the taint once the node reports Ready.
func create(ctx context.Context, c client.Client, node *corev1.Node) error {
	want := node.Spec.Taints
	if err := c.Create(ctx, node); err != nil {
		return fmt.Errorf("creating node %s: %w", node.Name, err)
	}
	return syncTaints(ctx, c, node, want)
}

// syncTaints sets the node's taints to want plus the not-ready taint when the node is not Ready.
func syncTaints(ctx context.Context, c client.Client, node *corev1.Node, want []corev1.Taint) error {
	taints := slices.DeleteFunc(slices.Clone(want), func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady })
	if !nodeReady(node) {
		taints = append(taints, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule})
	}
	if equality.Semantic.DeepEqual(node.Spec.Taints, taints) || (len(node.Spec.Taints) == 0 && len(taints) == 0) {
		return nil
	}
	orig := node.DeepCopy()
	node.Spec.Taints = taints
	if err := c.Patch(ctx, node, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("setting the taints of node %s: %w", node.Name, err)
	}
	return nil
}

// Register creates node, or brings an existing node of that name to node's labels, taints, providerID
// (when set) and status: idempotent, for hooks that run at least once.
func Register(ctx context.Context, c client.Client, node *corev1.Node) error {
	existing := &corev1.Node{}
	err := c.Get(ctx, client.ObjectKeyFromObject(node), existing)
	if apierrors.IsNotFound(err) {
		if err := create(ctx, c, node.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(errors.Unwrap(err)) {
			return err
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading node %s: %w", node.Name, err)
	}
	upd := existing.DeepCopy()
	for k, v := range node.Labels {
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[k] = v
	}
	if node.Spec.ProviderID != "" {
		upd.Spec.ProviderID = node.Spec.ProviderID
	}
	if !equality.Semantic.DeepEqual(existing.ObjectMeta, upd.ObjectMeta) || !equality.Semantic.DeepEqual(existing.Spec, upd.Spec) {
		if err := c.Patch(ctx, upd, client.MergeFrom(existing)); err != nil {
			return fmt.Errorf("updating node %s: %w", node.Name, err)
		}
	}
	orig := upd.DeepCopy()
	upd.Status.Capacity, upd.Status.Allocatable = node.Status.Capacity, node.Status.Allocatable
	upd.Status.Addresses, upd.Status.NodeInfo = node.Status.Addresses, node.Status.NodeInfo
	setReady(upd, nodeReady(node))
	if !equality.Semantic.DeepEqual(orig.Status, upd.Status) {
		if err := c.Status().Patch(ctx, upd, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("updating the status of node %s: %w", node.Name, err)
		}
	}
	return syncTaints(ctx, c, upd, node.Spec.Taints)
}

// Remove deletes a node; a node that is already gone is fine.
func Remove(ctx context.Context, c client.Client, name string) error {
	err := c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing node %s: %w", name, err)
	}
	return nil
}

// SetReady sets the Ready condition of a node, as a kubelet (or its absence) would.
func SetReady(ctx context.Context, c client.Client, name string, ready bool) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return fmt.Errorf("reading node %s: %w", name, err)
	}
	orig := node.DeepCopy()
	setReady(node, ready)
	if err := c.Status().Patch(ctx, node, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("setting node %s ready=%t: %w", name, ready, err)
	}
	return syncTaints(ctx, c, node, node.Spec.Taints)
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setReady(node *corev1.Node, ready bool) {
	want := readyCondition(ready)
	for i, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == want.Status {
			want.LastTransitionTime = c.LastTransitionTime
		}
		node.Status.Conditions[i] = want
		return
	}
	node.Status.Conditions = append(node.Status.Conditions, want)
}

// ProviderID is the providerID this provider gives a machine: nest://<infra cluster>/<namespace>/<name>.
func ProviderID(infra, namespace, name string) string {
	return fmt.Sprintf("nest://%s/%s/%s", infra, namespace, name)
}

// TenantOptions describe the tenant Node of a booted machine.
type TenantOptions struct {
	// Infra is the name of the InfraCluster the machine runs on, for the providerID.
	Infra string
	// SetProviderID sets spec.providerID to ProviderID(Infra, namespace, name), as a cloud provider would;
	// leave it false when the provider under test is expected to set it.
	SetProviderID bool
	// Labels on the Node.
	Labels map[string]string
	// NotReady registers the Node not ready.
	NotReady bool
	// KubeletVersion reported; default DefaultKubeletVersion.
	KubeletVersion string
}

// ForVMI is the tenant Node a booted VMI registers: named after the guest's hostname, with the VMI's
// vCPUs and guest memory as capacity and its first interface address as InternalIP.
func ForVMI(vmi *kubevirtv1.VirtualMachineInstance, o TenantOptions) *corev1.Node {
	name := vmi.Spec.Hostname
	if name == "" {
		name = vmi.Name
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(kubevirt.VCPUs(&vmi.Spec), resource.DecimalSI),
		corev1.ResourceMemory:           kubevirt.GuestMemory(&vmi.Spec),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("50Gi"),
	}
	address := ""
	if len(vmi.Status.Interfaces) > 0 {
		address = vmi.Status.Interfaces[0].IP
	}
	node := build(name, o.Labels, capacity, capacity.DeepCopy(), address, !o.NotReady, o.KubeletVersion)
	if o.SetProviderID {
		node.Spec.ProviderID = ProviderID(o.Infra, vmi.Namespace, vmi.Name)
	}
	return node
}

// ForHost is the tenant Node a provisioned BareMetalHost registers: named after the host's hostname from
// inspection (else the host), with its CPUs and RAM as capacity and its first NIC address as InternalIP.
func ForHost(host *bmov1alpha1.BareMetalHost, o TenantOptions) *corev1.Node {
	name := host.Name
	capacity := corev1.ResourceList{
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("400Gi"),
	}
	address := ""
	if hw := host.Status.HardwareDetails; hw != nil {
		if hw.Hostname != "" {
			name = hw.Hostname
		}
		capacity[corev1.ResourceCPU] = *resource.NewQuantity(int64(hw.CPU.Count), resource.DecimalSI)
		capacity[corev1.ResourceMemory] = *resource.NewQuantity(int64(hw.RAMMebibytes)<<20, resource.BinarySI)
		for _, nic := range hw.NIC {
			if nic.IP != "" {
				address = nic.IP
				break
			}
		}
	}
	node := build(name, o.Labels, capacity, capacity.DeepCopy(), address, !o.NotReady, o.KubeletVersion)
	if o.SetProviderID {
		node.Spec.ProviderID = ProviderID(o.Infra, host.Namespace, host.Name)
	}
	return node
}
