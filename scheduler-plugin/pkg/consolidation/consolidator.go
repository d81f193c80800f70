package consolidation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/klog/v2"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LeaderElectionID names the Lease the consolidators of an Infra cluster elect their leader with;
// config/consolidator's Role grants that one Lease.
const LeaderElectionID = "nest-consolidator"

// Consolidator runs PlanMigrations against an Infra cluster: every Interval it lists what the
// planner needs, plans, and creates the VirtualMachineInstanceMigrations. KubeVirt carries them
// out; the next round starts from whatever they achieved. It is a manager.Runnable that runs on
// the leader only: two consolidators would plan the same moves twice.
type Consolidator struct {
	// Client reads the cluster (cmd/nest-consolidator: the manager's cache) and writes migrations
	// and, with Cordon, nodes.
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
	// Cordon cordons the nodes a plan empties before their migrations are created, and gives
	// them back (and plans nothing) while VMs of SchedulerName wait for room. Without it, the
	// consolidator never touches a node.
	Cordon bool
	// FailedMoveBackoff is how long a VM is not moved again to a node one of its consolidation
	// migrations failed to reach (see Observed); zero replans failed moves at once.
	FailedMoveBackoff time.Duration
}

// NeedLeaderElection makes the manager run the Consolidator on the leader only.
func (c *Consolidator) NeedLeaderElection() bool { return true }

// Start plans every Interval until ctx is done; it is controller-runtime's manager.Runnable. A
// failed round is logged and the next one tries again.
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
		}
		if len(plan.Migrations) > 0 {
			logger.Info("Migrating VMs to empty nodes", "nodes", plan.Emptied, "migrations", len(plan.Migrations))
		}
	}
}

// RunOnce lists the cluster, plans, and creates the plan's migrations. With Cordon, it first
// drops the marks of nodes someone else uncordoned; then, if VMs wait for room, it uncordons the
// nodes it cordoned and plans nothing; otherwise it gives back the nodes it cordoned but could not
// empty (CordonsToRelease), cordons the nodes the plan empties before creating their migrations,
// and a node it could not cordon keeps its VMs this round. It returns
// the plan and every error met, joined: one failed write does not stop the others.
func (c *Consolidator) RunOnce(ctx context.Context) (Plan, error) {
	plan, result, err := c.runOnce(ctx)
	if err != nil {
		result = RoundFailed
	}
	roundsTotal.WithLabelValues(result).Inc()
	return plan, err
}

// runOnce is RunOnce, with the round's result for nest_consolidator_rounds_total.
func (c *Consolidator) runOnce(ctx context.Context) (Plan, string, error) {
	logger := klog.FromContext(ctx)
	o, err := c.observe(ctx)
	if err != nil {
		return Plan{}, RoundFailed, err
	}
	var errs []error
	if c.Options.Cordon {
		for _, name := range StaleCordonMarks(o.Nodes) {
			if err := c.patchNode(ctx, o.Nodes, name, func(n *corev1.Node) { delete(n.Annotations, CordonedByAnnotation) }); err != nil {
				errs = append(errs, fmt.Errorf("removing the cordon mark of node %s, which someone uncordoned: %w", name, err))
			}
		}
		if waiting := VMsWaitingForRoom(o); len(waiting) > 0 {
			nodes := NodesToUncordon(o.Nodes)
			if len(nodes) > 0 {
				logger.Info("Uncordoning the nodes the consolidator cordoned: VMs wait for room", "nodes", nodes, "waiting", waiting)
			} else {
				logger.V(2).Info("Not consolidating: VMs wait for room", "waiting", waiting)
			}
			for _, name := range nodes {
				if err := c.patchNode(ctx, o.Nodes, name, uncordon); err != nil {
					errs = append(errs, fmt.Errorf("uncordoning node %s: %w", name, err))
					continue
				}
				cordonChanges.WithLabelValues(CordonUncordoned).Inc()
			}
			return Plan{}, RoundYielded, errors.Join(errs...)
		}
	}

	state := StateOf(o, c.Options.Labels)
	for _, vm := range state.VMs {
		if len(vm.RecentlyFailed) > 0 {
			logger.V(2).Info("Not moving the VM to the nodes a consolidation migration of it recently failed to reach", "vmi", vm.Name, "nodes", vm.RecentlyFailed, "backoff", c.Options.FailedMoveBackoff)
		}
	}
	nodesRunningVMs.Set(float64(len(state.nodesRunningVMs())))
	migrationsInFlight.Set(float64(state.Migrating))
	plan := PlanMigrations(state, Options{MaxInFlight: c.Options.MaxInFlight})
	notCordoned := map[string]bool{}
	if c.Options.Cordon {
		if nodes := CordonsToRelease(o.Nodes, state, plan.Emptied); len(nodes) > 0 {
			logger.Info("Uncordoning the nodes the consolidator cordoned but could not empty", "nodes", nodes)
			for _, name := range nodes {
				if err := c.patchNode(ctx, o.Nodes, name, uncordon); err != nil {
					errs = append(errs, fmt.Errorf("uncordoning node %s, which keeps its VMs: %w", name, err))
					continue
				}
				cordonChanges.WithLabelValues(CordonReleased).Inc()
			}
		}
		for _, name := range NodesToCordon(o.Nodes, plan.Emptied) {
			if err := c.patchNode(ctx, o.Nodes, name, cordon); err != nil {
				notCordoned[name] = true
				errs = append(errs, fmt.Errorf("cordoning node %s before migrating its VMs away: %w", name, err))
				continue
			}
			cordonChanges.WithLabelValues(CordonCordoned).Inc()
			logger.Info("Cordoned node to empty it", "node", klog.KRef("", name))
		}
	}
	hostnames := map[string]string{}
	for _, n := range o.Nodes {
		hostnames[n.Name] = n.Labels[corev1.LabelHostname]
	}
	for _, m := range plan.Migrations {
		if notCordoned[m.From] {
			continue
		}
		if hostnames[m.To] == "" {
			errs = append(errs, fmt.Errorf("cannot pin the migration of %s to %s: the node has no %s label", m.VM, m.To, corev1.LabelHostname))
			continue
		}
		if err := c.Client.Create(ctx, MigrationFor(m, hostnames[m.To])); err != nil {
			errs = append(errs, fmt.Errorf("creating the migration of %s from %s to %s: %w", m.VM, m.From, m.To, err))
			continue
		}
		migrationsCreated.Inc()
	}
	result := RoundIdle
	if len(plan.Migrations) > 0 {
		result = RoundPlanned
	}
	return plan, result, errors.Join(errs...)
}

// cordon makes a node unschedulable and marks it as the consolidator's.
func cordon(n *corev1.Node) {
	n.Spec.Unschedulable = true
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	n.Annotations[CordonedByAnnotation] = CordonedByValue
}

// uncordon gives back a node the consolidator cordoned.
func uncordon(n *corev1.Node) {
	n.Spec.Unschedulable = false
	delete(n.Annotations, CordonedByAnnotation)
}

// patchNode applies change to the node as listed, with the resourceVersion the decision was
// made on: a node someone changed since (cordoned it, uncordoned it) is left for the next round,
// so that a cordon that is not the consolidator's is never marked or lifted as its own. The
// patched node replaces the listed one, for the round's next decision about it.
func (c *Consolidator) patchNode(ctx context.Context, nodes []corev1.Node, name string, change func(*corev1.Node)) error {
	i := slices.IndexFunc(nodes, func(n corev1.Node) bool { return n.Name == name })
	if i < 0 {
		return fmt.Errorf("node %s is not in the listed nodes", name)
	}
	n := nodes[i].DeepCopy()
	change(n)
	if err := c.Client.Patch(ctx, n, client.MergeFromWithOptions(&nodes[i], client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	nodes[i] = *n
	return nil
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
		Now:                     time.Now(),
		FailedMoveBackoff:       c.Options.FailedMoveBackoff,
	}, nil
}
