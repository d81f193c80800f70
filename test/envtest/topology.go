package envtest

import (
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// Topology is a management cluster and several Infra clusters, each a real API server.
type Topology struct {
	Management *Environment
	Infras     []*Environment
}

// StartTopology starts a management API server (with mgmt's webhooks, if any) and n Infra API
// servers, concurrently: on two cores that takes about as long as starting one.
func StartTopology(n int, mgmt Options) (*Topology, error) {
	envs := make([]*Environment, n+1)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range envs {
		wg.Go(func() {
			opts := Options{CRDs: Infra}
			if i == 0 {
				opts = mgmt
			}
			envs[i], errs[i] = Start(opts)
		})
	}
	wg.Wait()
	t := &Topology{Management: envs[0], Infras: envs[1:]}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, t.Stop())
	}
	return t, nil
}

// Stop stops every API server of the topology.
func (t *Topology) Stop() error {
	var errs []error
	for _, e := range append([]*Environment{t.Management}, t.Infras...) {
		if e != nil {
			errs = append(errs, e.Stop())
		}
	}
	return errors.Join(errs...)
}

// KubeconfigSecret is a Secret holding the environment's admin kubeconfig under key "value", the way
// an InfraCluster's spec.kubeconfigSecretRef expects it.
func (e *Environment) KubeconfigSecret(namespace, name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Data:       map[string][]byte{"value": e.KubeConfig},
	}
}

// KubeconfigSecretVia is KubeconfigSecret with the kubeconfig's server set to https://addr: a
// proxy in front of e's API server (Proxy, HTTPProxy), which serves e's certificate.
func (e *Environment) KubeconfigSecretVia(addr, namespace, name string) (*corev1.Secret, error) {
	cfg, err := clientcmd.Load(e.KubeConfig)
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig of %s: %w", e, err)
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = "https://" + addr
	}
	kubeconfig, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, err
	}
	secret := e.KubeconfigSecret(namespace, name)
	secret.Data["value"] = kubeconfig
	return secret, nil
}

// String names the environment by its API server address, for test messages.
func (e *Environment) String() string {
	return fmt.Sprintf("API server %s", e.Config.Host)
}
