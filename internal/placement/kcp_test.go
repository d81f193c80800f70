package placement_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/cluster-api/util/collections"
	"sigs.k8s.io/cluster-api/util/failuredomains"

	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// kcp models how KubeadmControlPlane v1.14 places and removes control-plane machines, with CAPI's own
// failure-domain pickers: scale up into the failure domain with the fewest up-to-date machines (ties:
// fewest machines), scale down from machines outside the failure domains first, then from the one
// with the most machines that holds an eligible one. It waits for each deletion before the next step.
type kcp struct {
	t        *testing.T
	replicas int
	version  string
	seq      int
	machines collections.Machines
	healthy  map[string]bool
}

func newKCP(t *testing.T, replicas int) *kcp {
	return &kcp{t: t, replicas: replicas, version: "v1", machines: collections.New(),
		healthy: map[string]bool{"infra-a": true, "infra-b": true, "infra-c": true}}
}

func (k *kcp) failureDomains() []clusterv1.FailureDomain {
	var fds []clusterv1.FailureDomain
	for _, name := range []string{"infra-a", "infra-b", "infra-c"} {
		if k.healthy[name] {
			fds = append(fds, clusterv1.FailureDomain{Name: name, ControlPlane: ptr.To(true)})
		}
	}
	return fds
}

func (k *kcp) input(requested string) placement.Input {
	in := placement.Input{Requested: requested}
	for _, name := range []string{"infra-a", "infra-b", "infra-c"} {
		in.Domains = append(in.Domains, placement.Domain{Name: name, ControlPlane: true, Healthy: k.healthy[name]})
	}
	for _, m := range k.machines {
		in.Placed = append(in.Placed, m.Spec.FailureDomain)
	}
	return in
}

func (k *kcp) upToDate() collections.Machines {
	return k.machines.Filter(func(m *clusterv1.Machine) bool { return m.Spec.Version == k.version })
}

// scaleUp creates one machine where KCP would, and fails the test if the admission rule rejects it.
func (k *kcp) scaleUp(ctx context.Context) {
	k.t.Helper()
	fd := failuredomains.PickFewest(ctx, k.failureDomains(), k.machines, k.upToDate())
	if err := placement.Check(k.input(fd)); err != nil {
		k.t.Fatalf("KCP's choice %q with %s is rejected: %v", fd, k, err)
	}
	k.seq++
	m := &clusterv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("m%d", k.seq), CreationTimestamp: metav1.NewTime(time.Unix(int64(k.seq), 0))},
		Spec:       clusterv1.MachineSpec{FailureDomain: fd, Version: k.version},
	}
	k.machines.Insert(m)
}

// scaleDown deletes the machine KCP would among eligible ones.
func (k *kcp) scaleDown(ctx context.Context, eligible collections.Machines) {
	k.t.Helper()
	names := make([]string, 0, len(k.failureDomains()))
	for _, fd := range k.failureDomains() {
		names = append(names, fd.Name)
	}
	outside := eligible.Filter(collections.Not(collections.InFailureDomains(names...)))
	var fd string
	if len(outside) > 0 {
		fd = outside.Oldest().Spec.FailureDomain
	} else {
		fd = failuredomains.PickMost(ctx, k.failureDomains(), k.machines, eligible)
	}
	victim := eligible.Filter(collections.InFailureDomains(fd)).Oldest()
	if victim == nil {
		k.t.Fatalf("no machine to delete in %q with %s", fd, k)
	}
	delete(k.machines, victim.Name)
}

// rollout replaces every machine that is not up to date, one surge machine at a time.
func (k *kcp) rollout(ctx context.Context, version string) {
	k.version = version
	for i := 0; ; i++ {
		if i > 20 {
			k.t.Fatalf("rollout does not converge: %s", k)
		}
		outdated := k.machines.Filter(func(m *clusterv1.Machine) bool { return m.Spec.Version != k.version })
		if len(outdated) == 0 && len(k.machines) == k.replicas {
			return
		}
		if len(k.machines) < k.replicas+1 && len(outdated) > 0 || len(k.machines) < k.replicas {
			k.scaleUp(ctx)
			continue
		}
		k.scaleDown(ctx, outdated)
	}
}

// remediate deletes a machine and creates its replacement.
func (k *kcp) remediate(ctx context.Context, inFailureDomain string) {
	k.t.Helper()
	victim := k.machines.Filter(collections.InFailureDomains(inFailureDomain)).Oldest()
	if victim == nil {
		k.t.Fatalf("no machine in %s to remediate: %s", inFailureDomain, k)
	}
	delete(k.machines, victim.Name)
	k.scaleUp(ctx)
}

func (k *kcp) imbalance() int {
	in := k.input("")
	maxCount, minCount, _, _ := placement.Imbalance(placement.Counts(in.Placed, in.Healthy()), in.Healthy())
	return maxCount - minCount
}

func (k *kcp) String() string {
	var parts []string
	for _, m := range k.machines {
		parts = append(parts, fmt.Sprintf("%s:%s/%s", m.Name, m.Spec.FailureDomain, m.Spec.Version))
	}
	slices.Sort(parts)
	return fmt.Sprintf("machines %v, healthy %v", parts, k.healthy)
}

// TestKubeadmControlPlanePlacementsAreAdmitted drives KCP's own failure-domain pickers through scale
// up, upgrades, remediation, the loss of an Infra cluster and its return with the restore rollout,
// many times because KCP breaks ties in map order, and checks the rule admits every step KCP takes
// and ends balanced.
func TestKubeadmControlPlanePlacementsAreAdmitted(t *testing.T) {
	ctx := context.Background()
	for round := range 50 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			k := newKCP(t, 3)
			for range 3 {
				k.scaleUp(ctx)
			}
			if k.imbalance() != 0 {
				t.Fatalf("scale up is unbalanced: %s", k)
			}
			k.rollout(ctx, "v2")
			if k.imbalance() != 0 {
				t.Fatalf("rollout ends unbalanced: %s", k)
			}
			k.remediate(ctx, "infra-b")
			if k.imbalance() != 0 {
				t.Fatalf("remediation ends unbalanced: %s", k)
			}

			k.healthy["infra-c"] = false
			k.remediate(ctx, "infra-c") // MachineHealthCheck flags the lost machine; KCP replaces it
			if k.imbalance() > 1 {
				t.Fatalf("replacement after a loss is unbalanced: %s", k)
			}
			k.rollout(ctx, "v3") // an upgrade while the Infra cluster is away
			k.healthy["infra-c"] = true
			if k.imbalance() != 2 {
				t.Fatalf("a recovered, empty Infra cluster should leave max - min = 2: %s", k)
			}
			k.rollout(ctx, "v4") // the restore the NestCluster controller asks for
			if k.imbalance() != 0 {
				t.Fatalf("the restore rollout ends unbalanced: %s", k)
			}
		})
	}
}
