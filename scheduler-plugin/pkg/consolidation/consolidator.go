package consolidation

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/klog/v2"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Consolidator runs PlanMigrations against an Infra cluster: every Interval it lists what the
// planner needs, plans, and creates the VirtualMachineInstanceMigrations. KubeVirt carries them
// out; the next round starts from whatever they achieved.
type Consolidator struct {
	Client  client.Client
	Options ConsolidatorOptions
}

// ConsolidatorOptions configure a Consolidator.
type ConsolidatorOptions struct {
	// Interval separates two plans; with MaxInFlight it is the rate limit.
	Interval time.Duration
	// MaxInFlight is the most migrations running at once, all of the cluster's counted.
	MaxInFlight int
	// SchedulerName keeps to the VMs nest-scheduler places (see Observed).
	SchedulerName string
	// Labels mark tenants' control-plane VMs.
	Labels Labels
	// DefaultEvictionStrategy is KubeVirt's cluster-wide evictionStrategy (see Observed).
	DefaultEvictionStrategy *kubevirtv1.EvictionStrategy
}

// Start plans every Interval until ctx is done; it matches controller-runtime's
// manager.Runnable. A failed round is logged and the next one tries again.
func (c *Consolidator) Start(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(c.Options.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		plan, err := c.RunOnce(ctx)
		if err != nil {
			logger.Error(err, "Consolidation round failed")
			continue
		}
		if len(plan.Migrations) > 0 {
			logger.Info("Migrating VMs to empty nodes", "nodes", plan.Emptied, "migrations", len(plan.Migrations))
		}
	}
}

// RunOnce lists the cluster, plans, and creates the plan's migrations.
func (c *Consolidator) RunOnce(ctx context.Context) (Plan, error) {
	o, err := c.observe(ctx)
	if err != nil {
		return Plan{}, err
	}
	plan := PlanMigrations(StateOf(o, c.Options.Labels), Options{MaxInFlight: c.Options.MaxInFlight})
	hostnames := map[string]string{}
	for _, n := range o.Nodes {
		hostnames[n.Name] = n.Labels[corev1.LabelHostname]
	}
	var errs []error
	for _, m := range plan.Migrations {
		if hostnames[m.To] == "" {
			errs = append(errs, fmt.Errorf("cannot pin the migration of %s to %s: the node has no %s label", m.VM, m.To, corev1.LabelHostname))
			continue
		}
		if err := c.Client.Create(ctx, MigrationFor(m, hostnames[m.To])); err != nil {
			errs = append(errs, fmt.Errorf("creating the migration of %s from %s to %s: %w", m.VM, m.From, m.To, err))
		}
	}
	return plan, errors.Join(errs...)
}

func (c *Consolidator) observe(ctx context.Context) (Observed, error) {
	var (
		nodes      corev1.NodeList
		vmis       kubevirtv1.VirtualMachineInstanceList
		pods       corev1.PodList
		pdbs       policyv1.PodDisruptionBudgetList
		migrations kubevirtv1.VirtualMachineInstanceMigrationList
	)
	for _, l := range []struct {
		what string
		list client.ObjectList
	}{
		{"nodes", &nodes}, {"VirtualMachineInstances", &vmis}, {"pods", &pods},
		{"PodDisruptionBudgets", &pdbs}, {"VirtualMachineInstanceMigrations", &migrations},
	} {
		if err := c.Client.List(ctx, l.list); err != nil {
			return Observed{}, fmt.Errorf("listing %s: %w", l.what, err)
		}
	}
	return Observed{
		Nodes:                   nodes.Items,
		VMIs:                    vmis.Items,
		Pods:                    pods.Items,
		PDBs:                    pdbs.Items,
		Migrations:              migrations.Items,
		SchedulerName:           c.Options.SchedulerName,
		DefaultEvictionStrategy: c.Options.DefaultEvictionStrategy,
	}, nil
}
