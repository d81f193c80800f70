package metal3

import (
	"fmt"
	"testing"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
)

func TestUnclaimable(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		host bmov1alpha1.BareMetalHost
		want string
	}{
		{"available", host("h"), ""},
		{"ready is the older name of available", host("h", inState(bmov1alpha1.StateReady)), ""},
		{"provisioned", host("h", inState(bmov1alpha1.StateProvisioned)), `in state "provisioned"`},
		{"inspecting", host("h", inState(bmov1alpha1.StateInspecting)), `in state "inspecting"`},
		{"deprovisioning", host("h", inState(bmov1alpha1.StateDeprovisioning)), `in state "deprovisioning"`},
		{"no state yet", host("h", inState(bmov1alpha1.StateNone)), `in state ""`},
		{"deleting", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.DeletionTimestamp = &now
			h.Finalizers = []string{bmov1alpha1.BareMetalHostFinalizer}
		}), "being deleted"},
		{"consumed", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Spec.ConsumerRef = &corev1.ObjectReference{Kind: "Metal3Machine", Namespace: "x", Name: "y"}
		}), "consumed by Metal3Machine x/y"},
		{"operational status error", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Status.OperationalStatus = bmov1alpha1.OperationalStatusError
		}), "in error"},
		{"error type", host("h", func(h *bmov1alpha1.BareMetalHost) { h.Status.ErrorType = bmov1alpha1.InspectionError }), "in error"},
		{"error message only", host("h", func(h *bmov1alpha1.BareMetalHost) { h.Status.ErrorMessage = "BMC unreachable" }), "in error"},
		{"paused", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Annotations = map[string]string{bmov1alpha1.PausedAnnotation: ""}
		}), "paused"},
		{"detached annotation", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Annotations = map[string]string{bmov1alpha1.DetachedAnnotation: ""}
		}), "detached"},
		{"detached status", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Status.OperationalStatus = bmov1alpha1.OperationalStatusDetached
		}), "detached"},
		{"someone else's image", host("h", func(h *bmov1alpha1.BareMetalHost) { h.Spec.Image = &bmov1alpha1.Image{URL: "http://x"} }), "has an image"},
		{"custom deploy", host("h", func(h *bmov1alpha1.BareMetalHost) {
			h.Spec.CustomDeploy = &bmov1alpha1.CustomDeploy{Method: "install_coreos"}
		}), "has an image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Unclaimable(&tc.host)).To(Equal(tc.want))
			g.Expect(Claimable(&tc.host)).To(Equal(tc.want == ""))
		})
	}
}

func TestCandidatesMatchTheSelectorAndAreSortedWithACensus(t *testing.T) {
	g := NewWithT(t)
	hosts := []bmov1alpha1.BareMetalHost{
		host("c", withLabels("pool", "workers", "gpu", "true")),
		host("a", withLabels("pool", "workers")),
		host("b", withLabels("pool", "workers"), inState(bmov1alpha1.StateProvisioned)),
		host("d", withLabels("pool", "storage")),
		host("e", withLabels("pool", "workers"), func(h *bmov1alpha1.BareMetalHost) { h.Status.ErrorType = bmov1alpha1.RegistrationError }),
	}
	sel, err := Selector(metav1.LabelSelector{MatchLabels: map[string]string{"pool": "workers"}})
	g.Expect(err).NotTo(HaveOccurred())
	got, census := Candidates(hosts, sel)
	g.Expect(names(got)).To(Equal([]string{"a", "c"}))
	g.Expect(census).To(Equal(Census{Hosts: 5, Matching: 4, Claimable: 2}))

	sel, err = Selector(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "gpu", Operator: metav1.LabelSelectorOpExists}}})
	g.Expect(err).NotTo(HaveOccurred())
	got, _ = Candidates(hosts, sel)
	g.Expect(names(got)).To(Equal([]string{"c"}))

	sel, err = Selector(metav1.LabelSelector{})
	g.Expect(err).NotTo(HaveOccurred())
	got, census = Candidates(hosts, sel)
	g.Expect(names(got)).To(Equal([]string{"a", "c", "d"}), "an empty selector matches every host")
	g.Expect(census.Matching).To(Equal(5))

	_, err = Selector(metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "gpu", Operator: "Near"}}})
	g.Expect(err).To(MatchError(ContainSubstring("hostSelector")))
}

func names(hosts []*bmov1alpha1.BareMetalHost) []string {
	out := []string{}
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

func pool(n int) []*bmov1alpha1.BareMetalHost {
	out := make([]*bmov1alpha1.BareMetalHost, n)
	for i := range out {
		h := host(fmt.Sprintf("host-%02d", i))
		out[i] = &h
	}
	return out
}

func TestChooseIsDeterministicStableAndSkipsExcluded(t *testing.T) {
	g := NewWithT(t)
	hosts := pool(10)
	first := Choose(hosts, "uid-1", nil)
	g.Expect(first).NotTo(BeNil())
	g.Expect(Choose(hosts, "uid-1", nil)).To(BeIdenticalTo(first), "same claimer, same hosts: same choice")

	// Rendezvous hashing: removing hosts it did not choose does not change a claimer's choice.
	var fewer []*bmov1alpha1.BareMetalHost
	for i, h := range hosts {
		if h == first || i%2 == 0 {
			fewer = append(fewer, h)
		}
	}
	g.Expect(Choose(fewer, "uid-1", nil)).To(BeIdenticalTo(first))

	second := Choose(hosts, "uid-1", sets.New(HostKey(first)))
	g.Expect(second).NotTo(BeNil())
	g.Expect(second).NotTo(BeIdenticalTo(first), "a host lost in a race is not chosen again")

	all := sets.New[string]()
	for _, h := range hosts {
		all.Insert(HostKey(h))
	}
	g.Expect(Choose(hosts, "uid-1", all)).To(BeNil())
	g.Expect(Choose(nil, "uid-1", nil)).To(BeNil())
}

// TestChooseSpreadsConcurrentClaimers plays 20 claimers racing for 20 hosts the way the controller
// does: all pick at once from the same view, one write per host wins, losers exclude that host and
// pick again from what is left. Everyone ends with a distinct host, and first picks are spread.
func TestChooseSpreadsConcurrentClaimers(t *testing.T) {
	g := NewWithT(t)
	hosts := pool(20)
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("6f1c2a4e-%04d-4c7b-9d3e-%012d", i, i*7919)
	}

	firstPicks := map[string]int{}
	for _, k := range keys {
		firstPicks[HostKey(Choose(hosts, k, nil))]++
	}
	g.Expect(len(firstPicks)).To(BeNumerically(">=", 9), "first picks are spread over the hosts: %v", firstPicks)
	for h, n := range firstPicks {
		g.Expect(n).To(BeNumerically("<=", 5), "host %s is everyone's favourite", h)
	}

	claimedBy := map[string]string{}
	lost := map[string]sets.Set[string]{}
	waiting := append([]string{}, keys...)
	for round := 0; len(waiting) > 0; round++ {
		g.Expect(round).To(BeNumerically("<", 20), "claimers converge")
		picks := map[string][]string{}
		for _, k := range waiting {
			var free []*bmov1alpha1.BareMetalHost
			for _, h := range hosts {
				if _, taken := claimedBy[HostKey(h)]; !taken {
					free = append(free, h)
				}
			}
			h := Choose(free, k, lost[k])
			g.Expect(h).NotTo(BeNil(), "claimer %s finds a host", k)
			picks[HostKey(h)] = append(picks[HostKey(h)], k)
		}
		waiting = nil
		for h, ks := range picks {
			claimedBy[h] = ks[0]
			for _, k := range ks[1:] {
				if lost[k] == nil {
					lost[k] = sets.New[string]()
				}
				lost[k].Insert(h)
				waiting = append(waiting, k)
			}
		}
	}
	g.Expect(claimedBy).To(HaveLen(20), "20 claimers, 20 distinct hosts")
}

func TestConsumerRefIdentifiesTheNestMachine(t *testing.T) {
	nm := machine("worker-1", "uid-1")
	ref := ConsumerRef(nm)
	for _, tc := range []struct {
		name string
		ref  *corev1.ObjectReference
		want bool
	}{
		{"ours", ref, true},
		{"another API version of the same group", &corev1.ObjectReference{APIVersion: "infrastructure.cluster.x-k8s.io/v1beta1", Kind: "NestMachine", Namespace: "team-a", Name: "worker-1"}, true},
		{"no UID recorded", &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: "NestMachine", Namespace: "team-a", Name: "worker-1"}, true},
		{"same name, recreated machine", &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: "NestMachine", Namespace: "team-a", Name: "worker-1", UID: "uid-0"}, false},
		{"other namespace", &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: "NestMachine", Namespace: "team-b", Name: "worker-1"}, false},
		{"CAPM3's machine of the same name", &corev1.ObjectReference{APIVersion: "infrastructure.cluster.x-k8s.io/v1beta1", Kind: "Metal3Machine", Namespace: "team-a", Name: "worker-1"}, false},
		{"other group", &corev1.ObjectReference{APIVersion: "example.com/v1", Kind: "NestMachine", Namespace: "team-a", Name: "worker-1"}, false},
		{"unclaimed", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := host("h", func(h *bmov1alpha1.BareMetalHost) { h.Spec.ConsumerRef = tc.ref })
			NewWithT(t).Expect(IsConsumer(&h, nm)).To(Equal(tc.want))
		})
	}
}

func TestFindClaimedFindsTheHostOfAMachineOnly(t *testing.T) {
	g := NewWithT(t)
	nm, other := machine("worker-1", "uid-1"), machine("worker-2", "uid-2")
	hosts := []bmov1alpha1.BareMetalHost{
		host("a", func(h *bmov1alpha1.BareMetalHost) { h.Spec.ConsumerRef = ConsumerRef(other) }),
		host("b", inState(bmov1alpha1.StateProvisioning), func(h *bmov1alpha1.BareMetalHost) { h.Spec.ConsumerRef = ConsumerRef(nm) }),
		host("c"),
	}
	g.Expect(FindClaimed(hosts, nm)).To(HaveField("Name", "b"))
	g.Expect(FindClaimed(hosts, machine("worker-3", "uid-3"))).To(BeNil())
	g.Expect(IsNestConsumer(&hosts[0])).To(BeTrue())
	g.Expect(IsNestConsumer(&hosts[2])).To(BeFalse())
	g.Expect(Unclaimable(ptr.To(hosts[1]))).NotTo(BeEmpty(), "a claimed host is never a candidate")
}
