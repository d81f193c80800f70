package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ignition"
	"github.com/nestcapi/cluster-api-provider-nest/internal/kubevirt"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

type vmi = kubevirtv1.VirtualMachineInstance

// Names kubeadm gives to what it writes into a cluster it initialises or joins.
const (
	kubeadmConfigMap          = "kubeadm-config"
	kubeadmClusterConfigKey   = "ClusterConfiguration"
	controlPlaneNodeRoleLabel = "node-role.kubernetes.io/control-plane"
	mirrorPodAnnotation       = "kubernetes.io/config.mirror"
	kubeadmConfigPath         = "/run/kubeadm/kubeadm.yaml"
)

// controlPlaneComponents are the static pods kubeadm runs on a control-plane node whose etcd is
// external; KubeadmControlPlane checks each one's Ready condition.
var controlPlaneComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// machinePlacement is where a simulated machine runs, as its guest saw it when it booted.
type machinePlacement struct {
	// Tenant is the namespace/name of the tenant Cluster.
	Tenant string
	// Infra is the Infra cluster.
	Infra string
	// InfraNode is the Infra cluster node the VM (or host) runs on.
	InfraNode string
	// IP is the machine's first address.
	IP string
	// Node is the tenant Node it registered.
	Node string
}

// guest plays what runs inside a booted machine and what the tenant control plane does about it:
// kubelet registers the tenant Node (and stops heart-beating when the machine becomes unreachable),
// `kubeadm init` writes the kubeadm-config ConfigMap from the bootstrap data the machine booted with,
// and on control-plane machines the kubelet's mirror pods of the static control-plane pods appear.
type guest struct {
	mu      sync.Mutex
	tenants map[string]*Tenant // by <namespace>/<cluster-name label value>
	// placements by <infra>/<namespace>/<name> of the VM (or host) in the Infra cluster.
	placements map[string]machinePlacement
	onChange   func()
	// mgmt is a client of the (current) management cluster, which the sandbox's DNS reads (OpenShift
	// guests).
	mgmt func() client.Client
}

func newGuest() *guest {
	return &guest{tenants: map[string]*Tenant{}, placements: map[string]machinePlacement{}, onChange: func() {}}
}

func tenantKey(namespace, clusterLabel string) string { return namespace + "/" + clusterLabel }

func (g *guest) addTenant(t *Tenant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tenants[tenantKey(t.Namespace, ownership.LabelValue(t.Name))] = t
}

func (g *guest) removeTenant(t *Tenant) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.tenants, tenantKey(t.Namespace, ownership.LabelValue(t.Name)))
}

// tenantOf finds the tenant of a machine object in an Infra cluster (a VMI or a claimed host) from
// its ownership labels. The templates name the NestCluster after the Cluster.
func (g *guest) tenantOf(o client.Object) *Tenant {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tenants[tenantKey(o.GetLabels()[infrav1.NestClusterNamespaceLabel], o.GetLabels()[infrav1.NestClusterNameLabel])]
}

func (g *guest) tenantByKey(key string) *Tenant {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.tenants {
		if t.Namespace+"/"+t.Name == key {
			return t
		}
	}
	return nil
}

func placementKey(infra, namespace, name string) string { return infra + "/" + namespace + "/" + name }

// placement returns where the machine backed by the remote object infra/namespace/name runs.
func (g *guest) placement(infra, namespace, name string) (machinePlacement, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.placements[placementKey(infra, namespace, name)]
	return p, ok
}

func (g *guest) setPlacement(key string, p machinePlacement) {
	g.mu.Lock()
	old, had := g.placements[key]
	g.placements[key] = p
	g.mu.Unlock()
	if !had || old != p {
		g.onChange()
	}
}

func (g *guest) forget(key string) {
	g.mu.Lock()
	_, had := g.placements[key]
	delete(g.placements, key)
	g.mu.Unlock()
	if had {
		g.onChange()
	}
}

// bootedMachine is a machine that booted in an Infra cluster: a VMI or a provisioned host.
type bootedMachine struct {
	// obj carries the ownership labels that name the tenant.
	obj client.Object
	// node is the tenant Node its kubelet registers.
	node         *corev1.Node
	controlPlane bool
	userData     []byte
	infraNode    string
	ip           string
}

// boot runs what a booted machine's guest does in its tenant cluster.
func (g *guest) boot(ctx context.Context, in *Infra, m bootedMachine) error {
	t := g.tenantOf(m.obj)
	if t == nil {
		return nil
	}
	if err := t.join(ctx, m.node, m.controlPlane, m.userData); err != nil {
		return err
	}
	g.setPlacement(placementKey(in.Name, m.obj.GetNamespace(), m.obj.GetName()), machinePlacement{
		Tenant: t.Namespace + "/" + t.Name, Infra: in.Name, InfraNode: m.infraNode, IP: m.ip, Node: m.node.Name,
	})
	return nil
}

// shutdown is a machine that is gone: its Node and mirror pods go (the tenant's node lifecycle and
// pod garbage collectors would remove them).
func (g *guest) shutdown(ctx context.Context, in *Infra, o client.Object) error {
	key := placementKey(in.Name, o.GetNamespace(), o.GetName())
	p, ok := g.placement(in.Name, o.GetNamespace(), o.GetName())
	if !ok {
		return nil
	}
	if t := g.tenantByKey(p.Tenant); t != nil {
		if err := t.leave(ctx, p.Node); err != nil {
			return err
		}
	}
	g.forget(key)
	return nil
}

// vmiBooted is the KubeVirt simulator's OnRunning hook: the VM's guest runs its bootstrap data.
func (g *guest) vmiBooted(ctx context.Context, in *Infra, v *vmi) error {
	t := g.tenantOf(v)
	if t == nil {
		return nil
	}
	userData, err := readUserData(ctx, in.Env.Client, v)
	if err != nil {
		return err
	}
	ip := ""
	if len(v.Status.Interfaces) > 0 {
		ip = v.Status.Interfaces[0].IP
	}
	node := nodes.ForVMI(v, nodes.TenantOptions{KubeletVersion: t.KubernetesVersion})
	if t.Flavor.OpenShift() {
		// No hostname file: NetworkManager takes the one of the config drive's metadata.
		if node.Name, err = t.rhcosBoot(ctx, g.mgmt(), "VMI "+v.Name, ignition.ConfigDriveHostname(v.Name, v.Spec.Hostname), userData); err != nil {
			return err
		}
	}
	return g.boot(ctx, in, bootedMachine{
		obj: v, node: node,
		controlPlane: v.Labels[kubevirt.RoleLabel] == kubevirt.RoleControlPlane, userData: userData,
		infraNode: v.Status.NodeName, ip: ip,
	})
}

// setReachable sets the Ready condition of the tenant Nodes of every machine in infra: Unknown when
// the Infra cluster is lost (the kubelets there stop posting status), True when it returns.
func (g *guest) setReachable(ctx context.Context, infra string, reachable bool) error {
	g.mu.Lock()
	var targets []machinePlacement
	for _, p := range g.placements {
		if p.Infra == infra {
			targets = append(targets, p)
		}
	}
	tenants := map[string]*Tenant{}
	for _, t := range g.tenants {
		tenants[t.Namespace+"/"+t.Name] = t
	}
	g.mu.Unlock()
	for _, p := range targets {
		t := tenants[p.Tenant]
		if t == nil {
			continue
		}
		if err := setNodeReachable(ctx, t.Env.Client, p.Node, reachable); err != nil {
			return err
		}
	}
	return nil
}

// setNodeReachable sets the Ready condition of a Node as the node lifecycle controller does when its
// kubelet stops posting status (Unknown), or as the kubelet does when it posts again (True). A Node
// that is gone is fine.
func setNodeReachable(ctx context.Context, c client.Client, name string, reachable bool) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return client.IgnoreNotFound(err)
	}
	orig := node.DeepCopy()
	want := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown",
		Message: "Kubelet stopped posting node status.", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}
	if reachable {
		want.Status, want.Reason, want.Message = corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	}
	found := false
	for i, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == want.Status {
				return nil
			}
			node.Status.Conditions[i] = want
			found = true
		}
	}
	if !found {
		node.Status.Conditions = append(node.Status.Conditions, want)
	}
	if err := c.Status().Patch(ctx, node, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("setting the Ready condition of node %s to %s: %w", name, want.Status, err))
	}
	return nil
}

// readUserData reads the cloud-init (or Ignition) user data a VMI boots with from its Secret.
func readUserData(ctx context.Context, c client.Client, v *vmi) ([]byte, error) {
	for _, vol := range v.Spec.Volumes {
		var ref *corev1.LocalObjectReference
		switch {
		case vol.CloudInitNoCloud != nil:
			ref = vol.CloudInitNoCloud.UserDataSecretRef
		case vol.CloudInitConfigDrive != nil:
			ref = vol.CloudInitConfigDrive.UserDataSecretRef
		}
		if ref == nil {
			continue
		}
		secret := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: v.Namespace, Name: ref.Name}, secret); err != nil {
			return nil, fmt.Errorf("reading the user data of VMI %s/%s: %w", v.Namespace, v.Name, err)
		}
		return secret.Data[kubevirt.UserDataKey], nil
	}
	return nil, nil
}

// kubeadmInit reports whether the bootstrap data runs `kubeadm init`, and the ClusterConfiguration it
// initialises the cluster with (the document kubeadm stores in the kubeadm-config ConfigMap).
func kubeadmInit(userData []byte) (bool, string) {
	if !bytes.Contains(userData, []byte("kubeadm init")) {
		return false, ""
	}
	var cloudConfig struct {
		WriteFiles []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"write_files"`
	}
	if err := yaml.Unmarshal(userData, &cloudConfig); err != nil {
		return true, ""
	}
	for _, f := range cloudConfig.WriteFiles {
		if f.Path != kubeadmConfigPath {
			continue
		}
		for _, doc := range strings.Split(f.Content, "\n---") {
			var meta metav1.TypeMeta
			if yaml.Unmarshal([]byte(doc), &meta) == nil && meta.Kind == "ClusterConfiguration" {
				return true, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) + "\n"
			}
		}
	}
	return true, ""
}

// ensureKubeadmConfig writes kube-system/kubeadm-config as `kubeadm init` does.
func ensureKubeadmConfig(ctx context.Context, c client.Client, clusterConfiguration, version string) error {
	if clusterConfiguration == "" {
		clusterConfiguration = fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\n", version)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: kubeadmConfigMap},
		Data:       map[string]string{kubeadmClusterConfigKey: clusterConfiguration},
	}
	if err := c.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("writing the kubeadm-config ConfigMap: %w", err)
	}
	return nil
}

// ensureMirrorPods creates the mirror pods of a control-plane node's static pods, running and ready.
func ensureMirrorPods(ctx context.Context, c client.Client, node *corev1.Node, version string) error {
	ip := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	for _, component := range controlPlaneComponents {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: metav1.NamespaceSystem,
				Name:      component + "-" + node.Name,
				Labels:    map[string]string{"component": component, "tier": "control-plane"},
				Annotations: map[string]string{
					mirrorPodAnnotation:           "sandbox-" + component,
					"kubernetes.io/config.hash":   "sandbox-" + component,
					"kubernetes.io/config.source": "file",
				},
			},
			Spec: corev1.PodSpec{
				NodeName:    node.Name,
				HostNetwork: true,
				Containers:  []corev1.Container{{Name: component, Image: "registry.k8s.io/" + component + ":" + version}},
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			},
		}
		if err := c.Create(ctx, pod); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating the mirror pod %s: %w", pod.Name, err)
			}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
				return fmt.Errorf("reading the mirror pod %s: %w", pod.Name, err)
			}
		}
		if pod.Status.Phase == corev1.PodRunning {
			continue
		}
		orig := pod.DeepCopy()
		now := metav1.Now()
		pod.Status = corev1.PodStatus{
			Phase: corev1.PodRunning, HostIP: ip, PodIP: ip, StartTime: &now,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: component, Image: pod.Spec.Containers[0].Image, Ready: true, Started: ptrTo(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			}},
		}
		if err := c.Status().Patch(ctx, pod, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("setting the status of mirror pod %s: %w", pod.Name, err)
		}
	}
	return nil
}

// removeMirrorPods deletes a node's mirror pods at once, as the pod garbage collector does for pods
// of a deleted node.
func removeMirrorPods(ctx context.Context, c client.Client, nodeName string) error {
	for _, component := range controlPlaneComponents {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: component + "-" + nodeName}}
		if err := c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the mirror pod %s: %w", pod.Name, err)
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }
