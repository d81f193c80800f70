// Package placement decides where control-plane machines of a tenant cluster may go: which Infra
// cluster (CAPI failure domain) a new control-plane machine may use, which one to give it when it
// names none, and how unbalanced a control plane is. It also answers whether an InfraCluster admits a
// namespace. Everything here is a pure function over plain values, so the admission webhook that
// enforces the rule and the NestCluster controller that restores balance after an Infra cluster
// returns make the same decision, and a table test can drive it without an API server.
//
// The rule: count the control-plane machines that are not being deleted in each healthy Infra
// cluster (one published in the NestCluster's status.failureDomains with controlPlane true). A
// machine in an Infra cluster that is not healthy is counted nowhere — it is lost, and its
// replacement must go to a healthy one. A new control-plane machine may go to a healthy Infra cluster
// when, after it, max − min machines per healthy Infra cluster is at most 1; or, when the control
// plane is already further out of balance than that (an Infra cluster came back empty), to one of
// the least-loaded Infra clusters, which is the only kind of step that brings it back.
// The OpenShift installer's bootstrap machine is not counted (see Spread). This admits
// KubeadmControlPlane's maxSurge=1 rollouts (2/1/1 for a moment), remediation (delete, then create)
// and the restore after a recovery, and rejects, say, a third machine in one Infra cluster while
// another has none.
package placement

import (
	"fmt"
	"slices"
	"strings"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Domain is one Infra cluster a tenant may use, as its NestCluster describes it.
type Domain struct {
	// Name of the InfraCluster, which is the failure domain's name.
	Name string
	// ControlPlane is spec.infraClusters[].controlPlane (defaulted to true): control-plane machines
	// may be placed here at all.
	ControlPlane bool
	// Healthy is true when the NestCluster's status.failureDomains lists it with controlPlane true:
	// the NestCluster controller publishes only healthy Infra clusters that admit the tenant.
	Healthy bool
}

// Input is everything a placement decision needs.
type Input struct {
	// Domains are the tenant's Infra clusters (NestCluster spec.infraClusters), in any order.
	Domains []Domain
	// Placed holds the failure domain of every other control-plane machine of the cluster that is not
	// being deleted, one entry per machine ("" for a machine without one).
	Placed []string
	// Requested is the failure domain the new machine asks for; empty asks Choose to pick one.
	Requested string
	// Bootstrap is true when the new machine is the OpenShift installer's bootstrap machine (see
	// Spread): it unbalances nothing, so any healthy Infra cluster that takes control-plane
	// machines is allowed, and Choose still gives it the least-loaded one.
	Bootstrap bool
}

// Spread tells whether a control-plane machine with these labels is part of the spread, counted
// in Placed: every one but the OpenShift installer's bootstrap machine
// (infrav1.BootstrapMachineLabel). That machine lives for the installation only and is not a
// member of the control plane that must survive an Infra cluster; counted, it would push a master
// into the Infra cluster of another when the failure domains are defaulted, or refuse a master
// the installer names the bootstrap machine's failure domain for.
func Spread(labels map[string]string) bool {
	_, bootstrap := labels[infrav1.BootstrapMachineLabel]
	return !bootstrap
}

// Reason says why a placement is rejected.
type Reason string

// The reasons of a Rejection.
const (
	// ReasonUnknown: the failure domain is not one of the tenant's Infra clusters.
	ReasonUnknown Reason = "Unknown"
	// ReasonNotControlPlane: the tenant's spec says no control-plane machines in that Infra cluster.
	ReasonNotControlPlane Reason = "NotControlPlane"
	// ReasonUnhealthy: the Infra cluster is known and allowed but not healthy now.
	ReasonUnhealthy Reason = "Unhealthy"
	// ReasonUnbalanced: the machine would leave the control plane unbalanced.
	ReasonUnbalanced Reason = "Unbalanced"
	// ReasonNoHealthyDomain: no Infra cluster can take a control-plane machine now.
	ReasonNoHealthyDomain Reason = "NoHealthyDomain"
	// ReasonRequired: the machine names no failure domain where one is required.
	ReasonRequired Reason = "Required"
)

// Rejection is a refused placement, with what would have been accepted. Its message is written for
// the person or controller that asked, so it lists the counts and the allowed choices.
type Rejection struct {
	// Reason is the kind of refusal.
	Reason Reason
	// Requested is the failure domain that was asked for.
	Requested string
	// Known are the tenant's Infra clusters, sorted.
	Known []string
	// Counts are the control-plane machines per healthy Infra cluster before this one.
	Counts map[string]int
	// Allowed are the failure domains that would have been accepted, sorted.
	Allowed []string
}

// Error describes the rejection.
func (r *Rejection) Error() string {
	allowed := "none"
	if len(r.Allowed) > 0 {
		allowed = strings.Join(r.Allowed, ", ")
	}
	switch r.Reason {
	case ReasonUnknown:
		return fmt.Sprintf("%q is not one of the tenant's Infra clusters (the NestCluster's spec.infraClusters: %s); allowed: %s",
			r.Requested, strings.Join(r.Known, ", "), allowed)
	case ReasonNotControlPlane:
		return fmt.Sprintf("Infra cluster %q does not take control-plane machines (controlPlane is false in the NestCluster's spec.infraClusters); allowed: %s",
			r.Requested, allowed)
	case ReasonUnhealthy:
		return fmt.Sprintf("Infra cluster %q is not healthy now (the NestCluster's status.failureDomains does not list it with controlPlane true); allowed: %s",
			r.Requested, allowed)
	case ReasonUnbalanced:
		return fmt.Sprintf("a control-plane machine in %q would unbalance the control plane: control-plane machines per healthy Infra cluster are %s "+
			"(after this machine max - min must be at most 1, or it must go to a least-loaded Infra cluster); allowed: %s",
			r.Requested, formatCounts(r.Counts), allowed)
	case ReasonNoHealthyDomain:
		return fmt.Sprintf("no healthy Infra cluster takes control-plane machines now (the NestCluster's status.failureDomains lists none with controlPlane true; its spec.infraClusters: %s)",
			strings.Join(r.Known, ", "))
	case ReasonRequired:
		return fmt.Sprintf("a control-plane machine must name its Infra cluster; allowed: %s", allowed)
	}
	return fmt.Sprintf("placement in %q rejected: %s", r.Requested, r.Reason)
}

// Healthy returns the names of the Infra clusters that can take a control-plane machine now, sorted.
func (in Input) Healthy() []string {
	var healthy []string
	for _, d := range in.Domains {
		if d.ControlPlane && d.Healthy {
			healthy = append(healthy, d.Name)
		}
	}
	slices.Sort(healthy)
	return slices.Compact(healthy)
}

// Counts returns the number of control-plane machines in each healthy Infra cluster. Machines
// placed anywhere else (an Infra cluster that is lost, unknown, or none) are counted nowhere.
func Counts(placed, healthy []string) map[string]int {
	counts := make(map[string]int, len(healthy))
	for _, name := range healthy {
		counts[name] = 0
	}
	for _, fd := range placed {
		if _, ok := counts[fd]; ok {
			counts[fd]++
		}
	}
	return counts
}

// Imbalance returns the largest and smallest number of control-plane machines over the healthy
// Infra clusters, and which of them (sorted) hold that many. A healthy Infra cluster missing from
// counts holds none; entries of counts that are not healthy are ignored. max − min > 1 means the
// control plane needs a restore. With no healthy Infra cluster every result is zero.
func Imbalance(counts map[string]int, healthy []string) (maxCount, minCount int, most, least []string) {
	names := slices.Clone(healthy)
	slices.Sort(names)
	names = slices.Compact(names)
	for i, name := range names {
		n := counts[name]
		if i == 0 || n > maxCount {
			maxCount, most = n, nil
		}
		if i == 0 || n < minCount {
			minCount, least = n, nil
		}
		if n == maxCount {
			most = append(most, name)
		}
		if n == minCount {
			least = append(least, name)
		}
	}
	return maxCount, minCount, most, least
}

// Allowed returns the healthy Infra clusters a new control-plane machine may go to, sorted: those
// after which max − min is at most 1, and the least-loaded ones; for the bootstrap machine, all.
func Allowed(in Input) []string {
	healthy := in.Healthy()
	if in.Bootstrap {
		return healthy
	}
	counts := Counts(in.Placed, healthy)
	_, minCount, _, _ := Imbalance(counts, healthy)
	var allowed []string
	for _, name := range healthy {
		if counts[name] == minCount || spreadAfter(counts, healthy, name) <= 1 {
			allowed = append(allowed, name)
		}
	}
	return allowed
}

// Choose returns the failure domain for a machine that names none: the least-loaded healthy Infra
// cluster, the first by name on a tie so that the choice is deterministic. It fails only when no
// Infra cluster is healthy.
func Choose(in Input) (string, error) {
	healthy := in.Healthy()
	if len(healthy) == 0 {
		return "", in.reject(ReasonNoHealthyDomain, nil, nil)
	}
	counts := Counts(in.Placed, healthy)
	_, _, _, least := Imbalance(counts, healthy)
	return least[0], nil
}

// Check accepts or rejects in.Requested. It returns nil or a *Rejection.
func Check(in Input) error {
	healthy := in.Healthy()
	counts := Counts(in.Placed, healthy)
	allowed := Allowed(in)
	if len(healthy) == 0 {
		return in.reject(ReasonNoHealthyDomain, counts, allowed)
	}
	if in.Requested == "" {
		return in.reject(ReasonRequired, counts, allowed)
	}
	i := slices.IndexFunc(in.Domains, func(d Domain) bool { return d.Name == in.Requested })
	switch {
	case i < 0:
		return in.reject(ReasonUnknown, counts, allowed)
	case !in.Domains[i].ControlPlane:
		return in.reject(ReasonNotControlPlane, counts, allowed)
	case !in.Domains[i].Healthy:
		return in.reject(ReasonUnhealthy, counts, allowed)
	case !slices.Contains(allowed, in.Requested):
		return in.reject(ReasonUnbalanced, counts, allowed)
	}
	return nil
}

func (in Input) reject(reason Reason, counts map[string]int, allowed []string) *Rejection {
	known := make([]string, 0, len(in.Domains))
	for _, d := range in.Domains {
		known = append(known, d.Name)
	}
	slices.Sort(known)
	return &Rejection{Reason: reason, Requested: in.Requested, Known: slices.Compact(known), Counts: counts, Allowed: allowed}
}

// spreadAfter is max − min over the healthy Infra clusters after one more machine in name.
func spreadAfter(counts map[string]int, healthy []string, name string) int {
	after := make(map[string]int, len(counts))
	for k, v := range counts {
		after[k] = v
	}
	after[name]++
	maxCount, minCount, _, _ := Imbalance(after, healthy)
	return maxCount - minCount
}

func formatCounts(counts map[string]int) string {
	names := make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", name, counts[name]))
	}
	return strings.Join(parts, ", ")
}
