package infra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// KubeconfigKey is the key of an InfraCluster's kubeconfig Secret that spec.kubeconfigSecretRef
// reads by default.
const KubeconfigKey = "value"

// ServiceAccountKubeconfigOptions say which ServiceAccount of an Infra cluster a kubeconfig is for and
// how its token is obtained.
type ServiceAccountKubeconfigOptions struct {
	// Namespace and Name of the ServiceAccount (config/infra-rbac: nest-system/nest-infra).
	Namespace, Name string
	// Expiration of a token requested from the API server (TokenRequest). The kubeconfig must be
	// minted again before then; the provider picks up the updated Secret without a restart.
	Expiration time.Duration
	// TokenSecret, when set, names a Secret of type kubernetes.io/service-account-token in Namespace
	// whose token is used instead: it does not expire, and is revoked by deleting the Secret.
	TokenSecret string
	// Server is the Infra API server's address as the management cluster reaches it; empty means the
	// address of the config the kubeconfig is minted with.
	Server string
}

// ServiceAccountKubeconfig returns a kubeconfig that reaches the Infra cluster of cfg (an
// administrator's config) as a ServiceAccount, and when its token expires (zero for a token Secret's).
// The kubeconfig trusts the CA that cfg trusts.
func ServiceAccountKubeconfig(ctx context.Context, cfg *rest.Config, opts ServiceAccountKubeconfigOptions) ([]byte, time.Time, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, time.Time{}, err
	}
	sa, err := cs.CoreV1().ServiceAccounts(opts.Namespace).Get(ctx, opts.Name, metav1.GetOptions{})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading ServiceAccount %s/%s (apply config/infra-rbac to the Infra cluster first): %w", opts.Namespace, opts.Name, err)
	}
	var token string
	var expires time.Time
	if opts.TokenSecret != "" {
		if token, err = serviceAccountTokenSecret(ctx, cs, sa, opts.TokenSecret); err != nil {
			return nil, time.Time{}, err
		}
	} else {
		tr, err := cs.CoreV1().ServiceAccounts(opts.Namespace).CreateToken(ctx, opts.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(opts.Expiration.Seconds()))},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", opts.Namespace, opts.Name, err)
		}
		token, expires = tr.Status.Token, tr.Status.ExpirationTimestamp.Time
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, time.Time{}, fmt.Errorf("reading the CA of the Infra cluster: %w", err)
		}
	}
	server := opts.Server
	if server == "" {
		server = cfg.Host
	}
	user := "system:serviceaccount:" + opts.Namespace + ":" + opts.Name
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"infra": {Server: server, CertificateAuthorityData: ca, TLSServerName: cfg.ServerName}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{user: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"infra": {Cluster: "infra", AuthInfo: user}},
		CurrentContext: "infra",
	})
	return kubeconfig, expires, err
}

// serviceAccountTokenSecret reads the token the Infra cluster's token controller writes into a
// Secret of type kubernetes.io/service-account-token for sa, waiting a little for it to be written.
func serviceAccountTokenSecret(ctx context.Context, cs kubernetes.Interface, sa *corev1.ServiceAccount, name string) (string, error) {
	var token string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		secret, err := cs.CoreV1().Secrets(sa.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if secret.Type != corev1.SecretTypeServiceAccountToken || secret.Annotations[corev1.ServiceAccountNameKey] != sa.Name {
			return false, fmt.Errorf("Secret %s/%s is not a token Secret of ServiceAccount %s: give it type %s and annotation %s: %s",
				sa.Namespace, name, sa.Name, corev1.SecretTypeServiceAccountToken, corev1.ServiceAccountNameKey, sa.Name)
		}
		token = string(secret.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	if err != nil {
		if apierrors.IsNotFound(err) || errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("no token in Secret %s/%s: %w", sa.Namespace, name, err)
		}
		return "", err
	}
	return token, nil
}

// KubeconfigSecret is the Secret an InfraCluster's spec.kubeconfigSecretRef names: the kubeconfig
// under KubeconfigKey, in the provider's namespace of the management cluster.
func KubeconfigSecret(namespace, name string, kubeconfig []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{KubeconfigKey: kubeconfig},
	}
}
