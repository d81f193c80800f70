// Command infra-kubeconfig mints the kubeconfig Secret an InfraCluster references, for the
// ServiceAccount that config/infra-rbac installs in the Infra cluster, and prints it as YAML for the
// management cluster:
//
//	kubectl --kubeconfig infra.kubeconfig apply -k config/infra-rbac
//	go run ./hack/infra-kubeconfig --kubeconfig infra.kubeconfig --secret-name infra-east-kubeconfig | kubectl apply -f -
//
// (`make infra-kubeconfig INFRA_KUBECONFIG=infra.kubeconfig NAME=infra-east` does the second line's
// first half.) Run it again before the token expires; the provider picks up the updated Secret without
// a restart. See docs/operations.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/nestcapi/cluster-api-provider-nest/internal/infra"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "infra-kubeconfig:", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "Kubeconfig of an administrator of the Infra cluster (default $KUBECONFIG).")
	kubeContext := flag.String("context", "", "Context of --kubeconfig to use; empty means its current context.")
	opts := infra.ServiceAccountKubeconfigOptions{}
	flag.StringVar(&opts.Namespace, "namespace", "nest-system", "Namespace of the ServiceAccount in the Infra cluster.")
	flag.StringVar(&opts.Name, "service-account", "nest-infra", "The ServiceAccount (config/infra-rbac's).")
	flag.DurationVar(&opts.Expiration, "duration", 365*24*time.Hour, "Lifetime of the requested token; the API server may shorten it (--service-account-max-token-expiration).")
	flag.StringVar(&opts.TokenSecret, "token-secret", "", "Use the token of this kubernetes.io/service-account-token Secret of the ServiceAccount instead of requesting one: it does not expire.")
	flag.StringVar(&opts.Server, "server", "", "The Infra API server's address as the management cluster reaches it; empty means the one in --kubeconfig.")
	secretName := flag.String("secret-name", "", "Name of the Secret in the management cluster: the InfraCluster's spec.kubeconfigSecretRef.name (required).")
	secretNamespace := flag.String("secret-namespace", "nest-system", "The provider's namespace in the management cluster, which holds kubeconfig Secrets.")
	flag.Parse()
	if *secretName == "" {
		return fmt.Errorf("--secret-name is required")
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the Infra cluster's kubeconfig: %w", err)
	}
	minted, expires, err := infra.ServiceAccountKubeconfig(context.Background(), cfg, opts)
	if err != nil {
		return err
	}
	out, err := yaml.Marshal(infra.KubeconfigSecret(*secretNamespace, *secretName, minted))
	if err != nil {
		return err
	}
	if !expires.IsZero() {
		fmt.Fprintf(os.Stderr, "infra-kubeconfig: the token of %s/%s expires at %s: mint the Secret again before then\n", opts.Namespace, opts.Name, expires.UTC().Format(time.RFC3339))
	}
	_, err = os.Stdout.Write(out)
	return err
}
