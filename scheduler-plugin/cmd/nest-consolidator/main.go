// Command nest-consolidator empties nodes of an Infra cluster by live migration: every interval it
// plans with pkg/consolidation and creates VirtualMachineInstanceMigrations for the VMs that
// nest-scheduler places. It is a controller-runtime manager: it reads the cluster from the
// manager's cache, and only the leader plans. It ships in the nest-scheduler image and is
// deployed by config/consolidator, which nothing else includes: it is off by default.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/consolidation"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// options are the command's flags.
type options struct {
	consolidator            consolidation.ConsolidatorOptions
	evictionStrategy        string
	leaderElect             bool
	leaderElectionNamespace string
	metricsAddr             string
	probeAddr               string
}

// addFlags registers the flags on fs with their defaults: those config/consolidator's Deployment
// spells out. It also registers controller-runtime's --kubeconfig and klog's flags (--v).
func addFlags(fs *flag.FlagSet) *options {
	o := &options{consolidator: consolidation.ConsolidatorOptions{
		Labels: consolidation.Labels{
			ClusterName:      nestpacking.DefaultClusterNameLabelKey,
			Role:             nestpacking.DefaultRoleLabelKey,
			ControlPlaneRole: nestpacking.DefaultControlPlaneRoleValue,
			Exempt:           nestpacking.DefaultBootstrapMachineLabelKey,
		},
	}}
	fs.DurationVar(&o.consolidator.Interval, "interval", 5*time.Minute, "Time between two plans.")
	fs.IntVar(&o.consolidator.MaxInFlight, "max-in-flight", 2, "Most live migrations running at once in the cluster, all of them counted.")
	fs.StringVar(&o.consolidator.SchedulerName, "scheduler-name", "nest-scheduler", "Consolidate the VMs whose virt-launcher pods this scheduler places.")
	fs.StringVar(&o.evictionStrategy, "default-eviction-strategy", "",
		"KubeVirt's cluster-wide evictionStrategy (the KubeVirt CR's spec.configuration.evictionStrategy), for VMs that set none; empty means None.")
	fs.DurationVar(&o.consolidator.FailedMoveBackoff, "failed-move-backoff", time.Hour,
		"How long a VM is not moved again to a node one of its consolidation migrations failed to reach (KubeVirt keeps failed migrations for a while).")
	fs.BoolVar(&o.consolidator.Cordon, "cordon", false,
		"Cordon the nodes a plan empties before migrating their VMs, and uncordon them (planning nothing) while VMs of --scheduler-name wait for room. Only nodes it cordoned are ever uncordoned.")
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "Plan on the leader only, holding the Lease "+consolidation.LeaderElectionID+" in --leader-election-namespace.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "nest-system", "Namespace of the leader-election Lease.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443",
		"Address of the metrics endpoint, served over HTTPS to callers the API server authenticates and authorizes (get on the /metrics URL); \"0\" disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; \"0\" disables them.")
	config.RegisterFlags(fs)
	klog.InitFlags(fs)
	return o
}

// evictionStrategies are the values of KubeVirt's evictionStrategy.
var evictionStrategies = []kubevirtv1.EvictionStrategy{
	kubevirtv1.EvictionStrategyNone, kubevirtv1.EvictionStrategyLiveMigrate,
	kubevirtv1.EvictionStrategyLiveMigrateIfPossible, kubevirtv1.EvictionStrategyExternal,
}

// complete validates the flags and fills in what derives from them.
func (o *options) complete() error {
	var errs []error
	if o.consolidator.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--interval must be positive, got %s", o.consolidator.Interval))
	}
	if o.consolidator.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("--max-in-flight must be at least 1, got %d", o.consolidator.MaxInFlight))
	}
	if o.consolidator.FailedMoveBackoff <= 0 {
		errs = append(errs, fmt.Errorf("--failed-move-backoff must be positive, got %s", o.consolidator.FailedMoveBackoff))
	}
	// Empty would take every VM for nest-scheduler's, and move VMs another scheduler placed.
	if o.consolidator.SchedulerName == "" {
		errs = append(errs, errors.New("--scheduler-name must not be empty"))
	}
	if o.evictionStrategy != "" {
		s := kubevirtv1.EvictionStrategy(o.evictionStrategy)
		if !slices.Contains(evictionStrategies, s) {
			errs = append(errs, fmt.Errorf("--default-eviction-strategy %q is not a KubeVirt evictionStrategy: want one of %v, or empty for None", o.evictionStrategy, evictionStrategies))
		}
		o.consolidator.DefaultEvictionStrategy = &s
	}
	if o.leaderElect && o.leaderElectionNamespace == "" {
		errs = append(errs, errors.New("--leader-election-namespace must not be empty with --leader-elect"))
	}
	for flag, addr := range map[string]string{"--metrics-bind-address": o.metricsAddr, "--health-probe-bind-address": o.probeAddr} {
		if addr == "0" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port, :port or 0 (disabled): %w", flag, addr, err))
		}
	}
	return errors.Join(errs...)
}

func main() {
	o := addFlags(flag.CommandLine)
	flag.Parse()
	if err := o.complete(); err != nil {
		fmt.Fprintf(os.Stderr, "nest-consolidator: invalid flags:\n%v\n", err)
		os.Exit(2)
	}
	ctrl.SetLogger(klog.Background())
	log := ctrl.Log.WithName("setup")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Unable to load the Infra cluster's client config (--kubeconfig, KUBECONFIG or in-cluster)")
		os.Exit(1)
	}
	mgr, err := newManager(cfg, o)
	if err != nil {
		log.Error(err, "Unable to set up the manager")
		os.Exit(1)
	}
	log.Info("Starting manager", "interval", o.consolidator.Interval, "maxInFlight", o.consolidator.MaxInFlight, "failedMoveBackoff", o.consolidator.FailedMoveBackoff, "cordon", o.consolidator.Cordon)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager stopped with an error")
		os.Exit(1)
	}
}

// newManager builds the manager and adds the Consolidator to it, with a client that reads from
// the manager's cache. It does not start it.
func newManager(cfg *rest.Config, o *options) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering Kubernetes' kinds: %w", err)
	}
	if err := kubevirtv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering KubeVirt's kinds: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "nest-consolidator"
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress:    o.metricsAddr,
			SecureServing:  true,
			FilterProvider: filters.WithAuthenticationAndAuthorization,
			// HTTP/1.1 only, as the provider's manager: HTTP/2 brings the stream-reset attacks of
			// CVE-2023-44487 and CVE-2023-39325, and a scrape gains nothing from it.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
		},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        consolidation.LeaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The Consolidator stops with the context, between two rounds: a standby can take over
		// at once instead of waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			// The consolidator reads no managedFields; every pod and node of the Infra cluster is
			// cached, and they are a large part of each.
			DefaultTransform: cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.Add(&consolidation.Consolidator{Client: mgr.GetClient(), Options: o.consolidator}); err != nil {
		return nil, fmt.Errorf("adding the consolidator: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, nil
}
