// Command nest-consolidator empties nodes of an Infra cluster by live migration: every interval it
// plans with pkg/consolidation and creates VirtualMachineInstanceMigrations for the VMs that
// nest-scheduler places. It is not deployed by default (and not yet in the nest-scheduler image);
// run one replica per Infra cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/consolidation"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

func main() {
	o := consolidation.ConsolidatorOptions{
		Labels: consolidation.Labels{
			ClusterName:      nestpacking.DefaultClusterNameLabelKey,
			Role:             nestpacking.DefaultRoleLabelKey,
			ControlPlaneRole: nestpacking.DefaultControlPlaneRoleValue,
		},
	}
	var evictionStrategy string
	flag.DurationVar(&o.Interval, "interval", 5*time.Minute, "time between two plans")
	flag.IntVar(&o.MaxInFlight, "max-in-flight", 2, "most live migrations running at once in the cluster")
	flag.StringVar(&o.SchedulerName, "scheduler-name", "nest-scheduler", "consolidate the VMs whose virt-launcher pods this scheduler places")
	flag.StringVar(&evictionStrategy, "default-eviction-strategy", "", "KubeVirt's cluster-wide evictionStrategy, for VMs that set none (empty: None)")
	klog.InitFlags(nil)
	flag.Parse()
	if evictionStrategy != "" {
		s := kubevirtv1.EvictionStrategy(evictionStrategy)
		o.DefaultEvictionStrategy = &s
	}
	if o.Interval <= 0 || o.MaxInFlight < 1 {
		fmt.Fprintln(os.Stderr, "nest-consolidator: --interval must be positive and --max-in-flight at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "nest-consolidator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o consolidation.ConsolidatorOptions) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := kubevirtv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the Infra cluster's client config: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	return (&consolidation.Consolidator{Client: c, Options: o}).Start(klog.NewContext(ctx, klog.Background()))
}
