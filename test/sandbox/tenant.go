package sandbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// Tenant is one tenant cluster: the CAPI objects of a clusterctl flavor in the management cluster,
// and a real API server that plays its control plane's API server (the simulated machines register
// their Nodes there; CAPI, KubeadmControlPlane and the provider reach it through CAPI's ClusterCache).
type Tenant struct {
	TenantOptions
	// Env is the tenant cluster's API server.
	Env *envtest.Environment
	// Kubeconfig is the path of its admin kubeconfig.
	Kubeconfig string
	// Objects are what clusterctl generated and the sandbox applied (after its changes).
	Objects []*unstructured.Unstructured
	// Applied is when the objects were applied.
	Applied time.Time
}

// Key is the tenant Cluster's namespace/name.
func (t *Tenant) Key() client.ObjectKey {
	return client.ObjectKey{Namespace: t.Namespace, Name: t.Name}
}

// KubeadmControlPlaneName is the name the templates give the tenant's KubeadmControlPlane.
func (t *Tenant) KubeadmControlPlaneName() string { return t.Name + "-control-plane" }

// join plays a machine that booted and joined the tenant cluster: `kubeadm init` writes the
// kubeadm-config ConfigMap, the kubelet registers the Node (control-plane Nodes labelled and tainted
// by kubeadm) and, on control-plane machines, the mirror pods of the static control-plane pods.
func (t *Tenant) join(ctx context.Context, node *corev1.Node, controlPlane bool, userData []byte) error {
	c := t.Env.Client
	if controlPlane {
		if init, clusterConfiguration := kubeadmInit(userData); init {
			if err := ensureKubeadmConfig(ctx, c, clusterConfiguration, t.KubernetesVersion); err != nil {
				return err
			}
		}
		node.Labels[controlPlaneNodeRoleLabel] = ""
		node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: controlPlaneNodeRoleLabel, Effect: corev1.TaintEffectNoSchedule})
	}
	if err := nodes.Register(ctx, c, node); err != nil {
		return fmt.Errorf("registering node %s in tenant %s: %w", node.Name, t.Name, err)
	}
	if err := reportPressure(ctx, c, node.Name); err != nil {
		return err
	}
	if controlPlane {
		return ensureMirrorPods(ctx, c, node, t.KubernetesVersion)
	}
	return nil
}

// leave removes what a machine that is gone leaves in the tenant: its Node and mirror pods.
func (t *Tenant) leave(ctx context.Context, nodeName string) error {
	if err := removeMirrorPods(ctx, t.Env.Client, nodeName); err != nil {
		return err
	}
	return nodes.Remove(ctx, t.Env.Client, nodeName)
}

// prepare writes what the tenant's objects need in the management cluster before they are applied:
// its namespace, the kubeconfig Secret of its API server in CAPI's format, the certificates of the
// external etcd its KubeadmControlPlane is configured with and, for OpenShift, the installer's
// ignition Secrets.
func (t *Tenant) prepare(ctx context.Context, mgmt client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.Namespace}}
	if err := mgmt.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", t.Namespace, err)
	}
	labels := map[string]string{clusterv1.ClusterNameLabel: t.Name}
	// A user-provided kubeconfig (not of type cluster.x-k8s.io/secret): KubeadmControlPlane keeps its
	// own, generated from the cluster CA, only when it creates the Secret.
	kubeconfig := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "-kubeconfig", Labels: labels},
		Data:       map[string][]byte{"value": t.Env.KubeConfig},
	}
	ca, caKey, err := newCA(t.Name + "-etcd-ca")
	if err != nil {
		return err
	}
	clientCert, clientKey, err := newClientCert(ca, caKey, "kube-apiserver-etcd-client")
	if err != nil {
		return err
	}
	etcdCA := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "-etcd", Labels: labels},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"tls.crt": pemCert(ca)},
	}
	etcdClient := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "-apiserver-etcd-client", Labels: labels},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey},
	}
	secrets := []*corev1.Secret{kubeconfig, etcdCA, etcdClient}
	if t.Flavor.OpenShift() {
		ignitionSecrets, err := t.openshiftSecrets()
		if err != nil {
			return err
		}
		secrets = append(secrets, ignitionSecrets...)
	}
	for _, s := range secrets {
		if err := mgmt.Create(ctx, s); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// externalEtcd is the KubeadmControlPlane's external etcd: the tenant API server's own etcd runs
// outside the (simulated) machines, so KubeadmControlPlane has no etcd members to manage; it never
// dials this endpoint.
func (t *Tenant) externalEtcd() map[string]any {
	return map[string]any{
		"endpoints": []any{fmt.Sprintf("https://%s-etcd.sandbox.invalid:2379", t.Name)},
		"caFile":    "/etc/kubernetes/pki/etcd/ca.crt",
		"certFile":  "/etc/kubernetes/pki/apiserver-etcd-client.crt",
		"keyFile":   "/etc/kubernetes/pki/apiserver-etcd-client.key",
	}
}

// endpoint is the host and port of the tenant API server.
func (t *Tenant) endpoint() (string, string, error) {
	u, err := url.Parse(t.Env.Config.Host)
	if err != nil {
		return "", "", fmt.Errorf("parsing the address of tenant %s's API server: %w", t.Name, err)
	}
	return u.Hostname(), u.Port(), nil
}

// healthCheck is the MachineHealthCheck of the tenant's control plane.
func (t *Tenant) healthCheck() *clusterv1.MachineHealthCheck {
	timeout := ptr.To(int32(t.HealthCheckTimeout / time.Second))
	return &clusterv1.MachineHealthCheck{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "-control-plane"},
		Spec: clusterv1.MachineHealthCheckSpec{
			ClusterName: t.Name,
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{
				clusterv1.ClusterNameLabel: t.Name, clusterv1.MachineControlPlaneLabel: "",
			}},
			Checks: clusterv1.MachineHealthCheckChecks{
				UnhealthyNodeConditions: []clusterv1.UnhealthyNodeCondition{
					{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, TimeoutSeconds: timeout},
					{Type: corev1.NodeReady, Status: corev1.ConditionFalse, TimeoutSeconds: timeout},
				},
			},
		},
	}
}

// kubeconfigPath is where the tenant's kubeconfig is written.
func tenantKubeconfigPath(dir string, o TenantOptions) string {
	return filepath.Join(dir, fmt.Sprintf("tenant-%s-%s.kubeconfig", o.Namespace, o.Name))
}

func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing a CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newClientCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a client key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing a client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, errors.Join(errors.New("encoding a client key"), err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// pressureConditions are the node conditions a kubelet reports besides Ready; CAPI's Machine
// controller counts a Node healthy only once they are reported (and False).
var pressureConditions = []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// reportPressure reports no memory, disk or PID pressure on a Node, as its kubelet does.
func reportPressure(ctx context.Context, c client.Client, name string) error {
	node := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return fmt.Errorf("reading node %s: %w", name, err)
	}
	orig := node.DeepCopy()
	for _, t := range pressureConditions {
		if !slices.ContainsFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == t }) {
			node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionFalse, Reason: "KubeletHas" + strings.TrimPrefix(string(t), "Node") + "Pressure",
				Message: "simulated kubelet reports no " + string(t), LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			})
		}
	}
	if len(node.Status.Conditions) == len(orig.Status.Conditions) {
		return nil
	}
	if err := c.Status().Patch(ctx, node, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("reporting the pressure conditions of node %s: %w", name, err)
	}
	return nil
}
