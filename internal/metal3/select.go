package metal3

import (
	"fmt"
	"hash/fnv"
	"sort"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// ConsumerKind is the kind this provider writes into a host's consumerRef.
const ConsumerKind = "NestMachine"

// ConsumerRef is the consumerRef that claims a host for nm. The baremetal-operator treats it as an
// opaque "in use" marker, so it may name an object of another cluster: the namespace is the
// NestMachine's in the management cluster. The UID tells a NestMachine recreated under the same
// name from the one that claimed the host.
func ConsumerRef(nm *infrav1.NestMachine) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion: infrav1.GroupVersion.String(),
		Kind:       ConsumerKind,
		Namespace:  nm.Namespace,
		Name:       nm.Name,
		UID:        nm.UID,
	}
}

// IsConsumer reports whether host is claimed by nm. The API version is compared by group only, so
// a claim survives a version bump of this API.
func IsConsumer(host *bmov1alpha1.BareMetalHost, nm *infrav1.NestMachine) bool {
	ref := host.Spec.ConsumerRef
	if ref == nil || ref.Kind != ConsumerKind || ref.Namespace != nm.Namespace || ref.Name != nm.Name {
		return false
	}
	if ref.UID != "" && ref.UID != nm.UID {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == infrav1.GroupVersion.Group
}

// IsNestConsumer reports whether host is claimed by any NestMachine.
func IsNestConsumer(host *bmov1alpha1.BareMetalHost) bool {
	ref := host.Spec.ConsumerRef
	if ref == nil || ref.Kind != ConsumerKind {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == infrav1.GroupVersion.Group
}

// FindClaimed returns the host claimed by nm, or nil. A controller looks here before claiming, so a
// claim written just before a restart (or before its status was recorded) is found again rather
// than a second host claimed.
func FindClaimed(hosts []bmov1alpha1.BareMetalHost, nm *infrav1.NestMachine) *bmov1alpha1.BareMetalHost {
	for i := range hosts {
		if IsConsumer(&hosts[i], nm) {
			return &hosts[i]
		}
	}
	return nil
}

// Selector converts a NestMachine's hostSelector. An empty selector matches every host.
func Selector(s metav1.LabelSelector) (labels.Selector, error) {
	sel, err := metav1.LabelSelectorAsSelector(&s)
	if err != nil {
		return nil, fmt.Errorf("spec.baremetal.hostSelector: %w", err)
	}
	return sel, nil
}

// Unclaimable says why a host may not be claimed, or "" when it may. The reasons are short phrases
// for log lines and tests.
func Unclaimable(host *bmov1alpha1.BareMetalHost) string {
	switch {
	case !host.DeletionTimestamp.IsZero():
		return "being deleted"
	case host.Spec.ConsumerRef != nil:
		return "consumed by " + host.Spec.ConsumerRef.Kind + " " + host.Spec.ConsumerRef.Namespace + "/" + host.Spec.ConsumerRef.Name
	case host.Status.OperationalStatus == bmov1alpha1.OperationalStatusError || host.Status.ErrorType != "" || host.Status.ErrorMessage != "":
		return "in error"
	case host.Status.OperationalStatus == bmov1alpha1.OperationalStatusDetached:
		return "detached"
	case hasAnnotation(host, bmov1alpha1.PausedAnnotation):
		return "paused"
	case hasAnnotation(host, bmov1alpha1.DetachedAnnotation):
		return "detached"
	case host.Spec.Image != nil || host.Spec.CustomDeploy != nil:
		// Someone else's provisioning request: provisioning it again would overwrite theirs.
		return "has an image"
	case host.Status.Provisioning.State != bmov1alpha1.StateAvailable && host.Status.Provisioning.State != bmov1alpha1.StateReady:
		return fmt.Sprintf("in state %q", host.Status.Provisioning.State)
	}
	return ""
}

// Claimable reports whether a host may be claimed: see Unclaimable.
func Claimable(host *bmov1alpha1.BareMetalHost) bool { return Unclaimable(host) == "" }

func hasAnnotation(host *bmov1alpha1.BareMetalHost, key string) bool {
	_, ok := host.Annotations[key]
	return ok
}

// Census counts the hosts a selection looked at, for a message that tells a person what to fix.
type Census struct {
	// Hosts is how many hosts there were.
	Hosts int
	// Matching is how many of them match the selector.
	Matching int
	// Claimable is how many of those may be claimed.
	Claimable int
}

// Candidates returns the hosts that match sel and may be claimed, sorted by namespace/name.
func Candidates(hosts []bmov1alpha1.BareMetalHost, sel labels.Selector) ([]*bmov1alpha1.BareMetalHost, Census) {
	c := Census{Hosts: len(hosts)}
	var out []*bmov1alpha1.BareMetalHost
	for i := range hosts {
		h := &hosts[i]
		if !sel.Matches(labels.Set(h.Labels)) {
			continue
		}
		c.Matching++
		if Claimable(h) {
			out = append(out, h)
		}
	}
	c.Claimable = len(out)
	sort.Slice(out, func(i, j int) bool { return HostKey(out[i]) < HostKey(out[j]) })
	return out, c
}

// Choose picks the candidate a claimer with this key (the NestMachine's UID) prefers, skipping the
// hosts named in exclude (namespace/name: hosts it already lost a race for). It is rendezvous
// hashing: every claimer ranks every host by a hash of (key, host) and takes its best, so the choice
// is deterministic for one claimer, spread evenly across claimers, and stable when other hosts come
// and go. Nil when nothing is left.
func Choose(candidates []*bmov1alpha1.BareMetalHost, key string, exclude sets.Set[string]) *bmov1alpha1.BareMetalHost {
	var best *bmov1alpha1.BareMetalHost
	var bestScore uint64
	for _, h := range candidates {
		k := HostKey(h)
		if exclude.Has(k) {
			continue
		}
		s := score(key, k)
		if best == nil || s > bestScore || (s == bestScore && k < HostKey(best)) {
			best, bestScore = h, s
		}
	}
	return best
}

// HostKey is the namespace/name of a host, the form Choose's exclude set takes.
func HostKey(host *bmov1alpha1.BareMetalHost) string { return host.Namespace + "/" + host.Name }

func score(key, host string) uint64 {
	f := fnv.New64a()
	_, _ = f.Write([]byte(key))
	_, _ = f.Write([]byte{0})
	_, _ = f.Write([]byte(host))
	// FNV's low bits mix poorly for inputs that share a long prefix; a final avalanche step
	// (SplitMix64's) spreads them so the ranking is close to uniform.
	x := f.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
