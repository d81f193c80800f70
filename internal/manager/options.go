// Package manager builds the provider's controller manager: the flags CAPI providers share, the caches,
// health probes, the controllers and the webhooks. main.go parses flags into Options; tests, the
// sandbox and the benchmarks build the same manager in-process.
package manager

import (
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"sigs.k8s.io/cluster-api/util/flags"
)

// Options configure the manager. The zero value is not useful: start from DefaultOptions.
type Options struct {
	// Manager holds CAPI's shared TLS and diagnostics (metrics) options.
	Manager flags.ManagerOptions
	// HealthAddr serves /healthz and /readyz.
	HealthAddr string
	// LeaderElect turns leader election on.
	LeaderElect bool
	// LeaderElectionNamespace holds the leader-election lease; empty means the pod's namespace.
	LeaderElectionNamespace string
	// WatchNamespace limits the NestClusters and NestMachines reconciled to one namespace; empty means all.
	WatchNamespace string
	// WatchFilter reconciles only objects labelled cluster.x-k8s.io/watch-filter=<value>.
	WatchFilter string
	// WebhookPort serves the admission webhooks; 0 disables them.
	WebhookPort int
	// WebhookCertDir holds tls.crt and tls.key for the webhook server.
	WebhookCertDir string
	// EnableHTTP2 lets the webhook and metrics servers speak HTTP/2; by default they speak HTTP/1.1
	// only (webhooks.HTTP1Only).
	EnableHTTP2 bool
	// SyncPeriod is the resync period of the caches.
	SyncPeriod time.Duration
	// Concurrency per controller.
	InfraClusterConcurrency, NestClusterConcurrency, NestMachineConcurrency, NestMachineTemplateConcurrency int
	// ClusterCacheConcurrency of CAPI's cache of tenant clusters.
	ClusterCacheConcurrency int
	// KubeAPIQPS and KubeAPIBurst limit requests to the management cluster.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// InfraAPIQPS and InfraAPIBurst limit requests to each Infra cluster.
	InfraAPIQPS   float32
	InfraAPIBurst int
	// InfraCacheSyncTimeout bounds the first list of a new Infra-cluster cache (and the access checks
	// before it): an Infra cluster that answers its probe but not the list is retried after it.
	InfraCacheSyncTimeout time.Duration
	// ProviderNamespace holds the kubeconfig Secrets of InfraClusters.
	ProviderNamespace string
	// ManagementClusterID is this management cluster's identity, put on everything the provider makes
	// in Infra clusters (label nest.infrastructure.cluster.x-k8s.io/management-cluster): the sweeper
	// only ever deletes objects carrying its own. Empty means the UID of the kube-system namespace,
	// which is stable for the life of the cluster and distinct between clusters.
	ManagementClusterID string
	// Logger is the manager's (so its controllers') logger; the zero value means ctrl.Log.
	Logger logr.Logger
	// InProcessRestart allows a second manager in the same process (tests, the sandbox): controller
	// names are otherwise unique per process.
	InProcessRestart bool
}

// DefaultOptions are the defaults of the flags.
func DefaultOptions() Options {
	return Options{
		HealthAddr:                     ":9440",
		WebhookPort:                    9443,
		WebhookCertDir:                 "/tmp/k8s-webhook-server/serving-certs",
		SyncPeriod:                     10 * time.Minute,
		InfraClusterConcurrency:        10,
		NestClusterConcurrency:         10,
		NestMachineConcurrency:         50,
		NestMachineTemplateConcurrency: 10,
		ClusterCacheConcurrency:        100,
		KubeAPIQPS:                     50,
		KubeAPIBurst:                   100,
		InfraAPIQPS:                    50,
		InfraAPIBurst:                  100,
		InfraCacheSyncTimeout:          30 * time.Second,
		ProviderNamespace:              "nest-system",
		Manager:                        flags.ManagerOptions{DiagnosticsAddress: ":8443", TLSMinVersion: "VersionTLS12"},
	}
}

// AddFlags registers the manager's flags, with o's values as defaults.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	flags.AddManagerOptions(fs, &o.Manager)
	fs.StringVar(&o.Manager.DiagnosticsAddress, "metrics-bind-addr", o.Manager.DiagnosticsAddress,
		"The address the metrics endpoint binds to (the same setting as --diagnostics-address).")
	fs.StringVar(&o.HealthAddr, "health-addr", o.HealthAddr, "The address the health endpoint binds to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Enable leader election, so that only one manager is active.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", o.LeaderElectionNamespace,
		"Namespace of the leader-election lease; empty means the namespace the manager runs in.")
	fs.StringVar(&o.WatchNamespace, "namespace", o.WatchNamespace,
		"Namespace whose NestClusters and NestMachines the manager reconciles; empty means all namespaces.")
	fs.StringVar(&o.WatchFilter, "watch-filter", o.WatchFilter,
		"Reconcile only objects labelled cluster.x-k8s.io/watch-filter with this value; empty means all objects.")
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "Port of the webhook server; 0 disables the webhooks.")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", o.WebhookCertDir, "Directory holding tls.crt and tls.key of the webhook server.")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", o.EnableHTTP2,
		"Let the webhook and metrics servers speak HTTP/2. Off by default: HTTP/2 brings the stream-reset attacks of CVE-2023-44487 and CVE-2023-39325, and makes admission slower under load.")
	fs.DurationVar(&o.SyncPeriod, "sync-period", o.SyncPeriod, "Resync period of the caches: a safety net, not how changes are noticed.")
	fs.IntVar(&o.InfraClusterConcurrency, "infracluster-concurrency", o.InfraClusterConcurrency, "InfraClusters reconciled at once.")
	fs.IntVar(&o.NestClusterConcurrency, "nestcluster-concurrency", o.NestClusterConcurrency, "NestClusters reconciled at once.")
	fs.IntVar(&o.NestMachineConcurrency, "nestmachine-concurrency", o.NestMachineConcurrency, "NestMachines reconciled at once.")
	fs.IntVar(&o.NestMachineTemplateConcurrency, "nestmachinetemplate-concurrency", o.NestMachineTemplateConcurrency, "NestMachineTemplates reconciled at once.")
	fs.IntVar(&o.ClusterCacheConcurrency, "clustercache-concurrency", o.ClusterCacheConcurrency, "Tenant clusters whose connections are checked at once.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Requests per second to the management cluster.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Request burst to the management cluster.")
	fs.Float32Var(&o.InfraAPIQPS, "infra-api-qps", o.InfraAPIQPS, "Requests per second to each Infra cluster.")
	fs.IntVar(&o.InfraAPIBurst, "infra-api-burst", o.InfraAPIBurst, "Request burst to each Infra cluster.")
	fs.DurationVar(&o.InfraCacheSyncTimeout, "infra-cache-sync-timeout", o.InfraCacheSyncTimeout,
		"How long connecting to an Infra cluster waits for its cache's first list before giving up and trying again at the next probe.")
	fs.StringVar(&o.ManagementClusterID, "management-cluster-id", o.ManagementClusterID,
		"Identity of this management cluster, a label value put on everything the provider makes in Infra clusters; the sweeper only deletes objects carrying its own. Empty means the UID of the kube-system namespace. Give each management cluster sharing an Infra cluster its own.")
	fs.StringVar(&o.ProviderNamespace, "provider-namespace", o.ProviderNamespace,
		"Namespace of the provider, which holds the kubeconfig Secrets of InfraClusters.")
}
