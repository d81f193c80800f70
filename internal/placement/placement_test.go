package placement_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// domains builds three healthy Infra clusters that take control-plane machines, then applies edits.
func domains(edits ...func(map[string]*placement.Domain)) []placement.Domain {
	byName := map[string]*placement.Domain{
		"infra-a": {Name: "infra-a", ControlPlane: true, Healthy: true},
		"infra-b": {Name: "infra-b", ControlPlane: true, Healthy: true},
		"infra-c": {Name: "infra-c", ControlPlane: true, Healthy: true},
	}
	for _, edit := range edits {
		edit(byName)
	}
	var out []placement.Domain
	for _, name := range []string{"infra-c", "infra-a", "infra-b"} { // not sorted on purpose
		if d, ok := byName[name]; ok {
			out = append(out, *d)
		}
	}
	return out
}

func lost(name string) func(map[string]*placement.Domain) {
	return func(m map[string]*placement.Domain) { m[name].Healthy = false }
}

func workersOnly(name string) func(map[string]*placement.Domain) {
	return func(m map[string]*placement.Domain) { m[name].ControlPlane = false }
}

func removed(name string) func(map[string]*placement.Domain) {
	return func(m map[string]*placement.Domain) { delete(m, name) }
}

func reasonOf(err error) placement.Reason {
	var r *placement.Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func TestCheckAdmitsOnlyBalancedHealthyKnownPlacements(t *testing.T) {
	cases := []struct {
		name      string
		domains   []placement.Domain
		placed    []string
		requested string
		want      placement.Reason // "" = admitted
		allowed   []string
	}{
		{"first machine anywhere", domains(), nil, "infra-b", "", []string{"infra-a", "infra-b", "infra-c"}},
		{"second machine in an empty Infra cluster", domains(), []string{"infra-a"}, "infra-b", "", []string{"infra-b", "infra-c"}},
		{"second machine next to the first", domains(), []string{"infra-a"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b", "infra-c"}},
		{"third machine in the last empty one", domains(), []string{"infra-a", "infra-b"}, "infra-c", "", []string{"infra-c"}},
		{"surge machine 2/1/1", domains(), []string{"infra-a", "infra-b", "infra-c"}, "infra-a", "", []string{"infra-a", "infra-b", "infra-c"}},
		{"third machine in one while another has none", domains(), []string{"infra-a", "infra-a", "infra-c"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b"}},
		{"second surge on top of 2/1/1 into a 1", domains(), []string{"infra-a", "infra-a", "infra-b", "infra-c"}, "infra-b", "", []string{"infra-b", "infra-c"}},
		{"second surge on top of 2/1/1 into the 2", domains(), []string{"infra-a", "infra-a", "infra-b", "infra-c"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b", "infra-c"}},
		{"remediation replaces into the emptied one", domains(), []string{"infra-a", "infra-c"}, "infra-b", "", []string{"infra-b"}},
		{"remediation elsewhere is rejected", domains(), []string{"infra-a", "infra-c"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b"}},
		{"unknown Infra cluster", domains(), nil, "infra-z", placement.ReasonUnknown, []string{"infra-a", "infra-b", "infra-c"}},
		{"Infra cluster removed from the spec", domains(removed("infra-c")), []string{"infra-a"}, "infra-c", placement.ReasonUnknown, []string{"infra-b"}},
		{"Infra cluster for workers only", domains(workersOnly("infra-c")), []string{"infra-a", "infra-b"}, "infra-c", placement.ReasonNotControlPlane, []string{"infra-a", "infra-b"}},
		{"lost Infra cluster", domains(lost("infra-c")), []string{"infra-a", "infra-b"}, "infra-c", placement.ReasonUnhealthy, []string{"infra-a", "infra-b"}},
		{"machines in a lost Infra cluster count nowhere", domains(lost("infra-c")), []string{"infra-a", "infra-b", "infra-c", "infra-c"}, "infra-a", "", []string{"infra-a", "infra-b"}},
		{"replacement after a loss goes to a healthy one", domains(lost("infra-c")), []string{"infra-a", "infra-a", "infra-b", "infra-c"}, "infra-b", "", []string{"infra-b"}},
		{"two healthy, 3/1 is rejected", domains(lost("infra-c")), []string{"infra-a", "infra-a", "infra-b"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b"}},
		{"recovered Infra cluster is the only choice", domains(), []string{"infra-a", "infra-a", "infra-b"}, "infra-c", "", []string{"infra-c"}},
		{"recovered Infra cluster: 2/2/0 is rejected", domains(), []string{"infra-a", "infra-a", "infra-b"}, "infra-b", placement.ReasonUnbalanced, []string{"infra-c"}},
		{"far out of balance, a least-loaded one is admitted", domains(), []string{"infra-a", "infra-a", "infra-a"}, "infra-b", "", []string{"infra-b", "infra-c"}},
		{"far out of balance, the full one is rejected", domains(), []string{"infra-a", "infra-a", "infra-a"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b", "infra-c"}},
		{"machines without or with an unknown failure domain count nowhere", domains(), []string{"", "infra-z", "infra-a"}, "infra-b", "", []string{"infra-b", "infra-c"}},
		{"single Infra cluster takes every machine", domains(removed("infra-b"), removed("infra-c")), []string{"infra-a", "infra-a", "infra-a"}, "infra-a", "", []string{"infra-a"}},
		{"only one healthy takes every machine", domains(lost("infra-b"), lost("infra-c")), []string{"infra-a", "infra-a"}, "infra-a", "", []string{"infra-a"}},
		{"nothing healthy", domains(lost("infra-a"), lost("infra-b"), lost("infra-c")), nil, "infra-a", placement.ReasonNoHealthyDomain, nil},
		{"no Infra cluster takes control planes", domains(workersOnly("infra-a"), workersOnly("infra-b"), workersOnly("infra-c")), nil, "infra-a", placement.ReasonNoHealthyDomain, nil},
		{"empty request to Check", domains(), nil, "", placement.ReasonRequired, []string{"infra-a", "infra-b", "infra-c"}},
		{"two Infra clusters, 2/1 after three", domains(removed("infra-c")), []string{"infra-a", "infra-b"}, "infra-a", "", []string{"infra-a", "infra-b"}},
		{"two Infra clusters, rollout surge 2/2", domains(removed("infra-c")), []string{"infra-a", "infra-a", "infra-b"}, "infra-b", "", []string{"infra-b"}},
		// KubeadmControlPlane asks for the Infra cluster with the fewest up-to-date machines. After two
		// losses and one recovery a rollout reaches 2 (old) / 1 (new) and asks for the overloaded one:
		// that stays rejected until the third Infra cluster is back (see the package documentation).
		{"two healthy after double loss, KCP's ask for 3/1 is rejected", domains(lost("infra-c")), []string{"infra-a", "infra-a", "infra-b"}, "infra-a", placement.ReasonUnbalanced, []string{"infra-b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := placement.Input{Domains: tc.domains, Placed: tc.placed, Requested: tc.requested}
			err := placement.Check(in)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(reasonOf(err)).To(Equal(tc.want), "error: %v", err)
			}
			g.Expect(placement.Allowed(in)).To(Equal(tc.allowed))
			for _, choice := range placement.Allowed(in) {
				in.Requested = choice
				g.Expect(placement.Check(in)).To(Succeed(), "every allowed choice is admitted")
			}
		})
	}
}

// TestTheBootstrapMachineIsNotSpread: the OpenShift installer's bootstrap machine is admitted in any
// healthy Infra cluster that takes control planes, whatever the masters' counts, and is not counted.
func TestTheBootstrapMachineIsNotSpread(t *testing.T) {
	g := NewWithT(t)
	g.Expect(placement.Spread(map[string]string{"cluster.x-k8s.io/control-plane": ""})).To(BeTrue())
	g.Expect(placement.Spread(nil)).To(BeTrue())
	g.Expect(placement.Spread(map[string]string{"cluster.x-k8s.io/control-plane": "", "install.openshift.io/bootstrap": ""})).To(BeFalse())
	g.Expect(placement.Spread(map[string]string{"install.openshift.io/bootstrap": "true"})).To(BeFalse())

	cases := []struct {
		name      string
		domains   []placement.Domain
		placed    []string
		requested string
		want      placement.Reason
		allowed   []string
	}{
		{"beside the only master", domains(), []string{"infra-a"}, "infra-a", "", []string{"infra-a", "infra-b", "infra-c"}},
		{"beside two masters", domains(), []string{"infra-a", "infra-a", "infra-b"}, "infra-a", "", []string{"infra-a", "infra-b", "infra-c"}},
		{"not in a lost Infra cluster", domains(lost("infra-c")), []string{"infra-a"}, "infra-c", placement.ReasonUnhealthy, []string{"infra-a", "infra-b"}},
		{"not in one for workers only", domains(workersOnly("infra-c")), nil, "infra-c", placement.ReasonNotControlPlane, []string{"infra-a", "infra-b"}},
		{"not in an unknown one", domains(), nil, "infra-z", placement.ReasonUnknown, []string{"infra-a", "infra-b", "infra-c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := placement.Input{Domains: tc.domains, Placed: tc.placed, Requested: tc.requested, Bootstrap: true}
			err := placement.Check(in)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(reasonOf(err)).To(Equal(tc.want), "error: %v", err)
			}
			g.Expect(placement.Allowed(in)).To(Equal(tc.allowed))
		})
	}
	chosen, err := placement.Choose(placement.Input{Domains: domains(), Placed: []string{"infra-a", "infra-b"}, Bootstrap: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chosen).To(Equal("infra-c"), "defaulted, it goes where the masters are fewest")
}

func TestRejectionMessagesNameCountsAndChoices(t *testing.T) {
	cases := []struct {
		name string
		in   placement.Input
		want []string
	}{
		{"unbalanced", placement.Input{Domains: domains(), Placed: []string{"infra-a", "infra-a", "infra-c"}, Requested: "infra-a"},
			[]string{`"infra-a" would unbalance`, "infra-a=2, infra-b=0, infra-c=1", "max - min must be at most 1", "allowed: infra-b"}},
		{"unknown", placement.Input{Domains: domains(), Requested: "infra-z"},
			[]string{`"infra-z" is not one of the tenant's Infra clusters`, "spec.infraClusters: infra-a, infra-b, infra-c", "allowed: infra-a, infra-b, infra-c"}},
		{"not for control planes", placement.Input{Domains: domains(workersOnly("infra-c")), Requested: "infra-c"},
			[]string{`"infra-c" does not take control-plane machines`, "controlPlane is false", "allowed: infra-a, infra-b"}},
		{"unhealthy", placement.Input{Domains: domains(lost("infra-b")), Requested: "infra-b"},
			[]string{`"infra-b" is not healthy now`, "status.failureDomains", "allowed: infra-a, infra-c"}},
		{"nothing healthy", placement.Input{Domains: domains(lost("infra-a"), lost("infra-b"), lost("infra-c")), Requested: "infra-a"},
			[]string{"no healthy Infra cluster takes control-plane machines", "infra-a, infra-b, infra-c"}},
		{"required", placement.Input{Domains: domains()},
			[]string{"must name its Infra cluster", "allowed: infra-a, infra-b, infra-c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := placement.Check(tc.in)
			g.Expect(err).To(HaveOccurred())
			for _, want := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

func TestChoosePicksTheLeastLoadedHealthyInfraClusterByName(t *testing.T) {
	cases := []struct {
		name    string
		domains []placement.Domain
		placed  []string
		want    string
		reason  placement.Reason
	}{
		{"empty control plane: first by name", domains(), nil, "infra-a", ""},
		{"after one", domains(), []string{"infra-a"}, "infra-b", ""},
		{"after two", domains(), []string{"infra-a", "infra-b"}, "infra-c", ""},
		{"after three", domains(), []string{"infra-c", "infra-b", "infra-a"}, "infra-a", ""},
		{"refills the emptied one", domains(), []string{"infra-a", "infra-c"}, "infra-b", ""},
		{"skips a lost one", domains(lost("infra-a")), []string{"infra-b", "infra-c"}, "infra-b", ""},
		{"skips a workers-only one", domains(workersOnly("infra-a")), nil, "infra-b", ""},
		{"ignores machines in a lost one", domains(lost("infra-c")), []string{"infra-a", "infra-c", "infra-c"}, "infra-b", ""},
		{"recovered one first", domains(), []string{"infra-a", "infra-a", "infra-b"}, "infra-c", ""},
		{"nothing healthy", domains(lost("infra-a"), lost("infra-b"), lost("infra-c")), nil, "", placement.ReasonNoHealthyDomain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := placement.Input{Domains: tc.domains, Placed: tc.placed}
			got, err := placement.Choose(in)
			if tc.reason != "" {
				g.Expect(reasonOf(err)).To(Equal(tc.reason))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
			in.Requested = got
			g.Expect(placement.Check(in)).To(Succeed(), "a chosen failure domain is always admitted")
		})
	}
}

func TestImbalance(t *testing.T) {
	cases := []struct {
		name               string
		counts             map[string]int
		healthy            []string
		maxCount, minCount int
		most, least        []string
	}{
		{"balanced", map[string]int{"a": 1, "b": 1, "c": 1}, []string{"a", "b", "c"}, 1, 1, []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"surge", map[string]int{"a": 2, "b": 1, "c": 1}, []string{"c", "b", "a"}, 2, 1, []string{"a"}, []string{"b", "c"}},
		{"after recovery", map[string]int{"a": 2, "b": 1}, []string{"a", "b", "c"}, 2, 0, []string{"a"}, []string{"c"}},
		{"unhealthy entries are ignored", map[string]int{"a": 1, "b": 1, "lost": 5}, []string{"a", "b"}, 1, 1, []string{"a", "b"}, []string{"a", "b"}},
		{"one healthy", map[string]int{"a": 3}, []string{"a"}, 3, 3, []string{"a"}, []string{"a"}},
		{"none healthy", map[string]int{"a": 3}, nil, 0, 0, nil, nil},
		{"duplicates in healthy count once", map[string]int{"a": 1}, []string{"a", "a", "b"}, 1, 0, []string{"a"}, []string{"b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			maxCount, minCount, most, least := placement.Imbalance(tc.counts, tc.healthy)
			g.Expect([]int{maxCount, minCount}).To(Equal([]int{tc.maxCount, tc.minCount}))
			g.Expect(most).To(Equal(tc.most))
			g.Expect(least).To(Equal(tc.least))
		})
	}
}

// controlPlane is a scripted tenant control plane: machines by name with their failure domain, the
// ones being deleted, and the Infra clusters' health.
type controlPlane struct {
	domains  map[string]*placement.Domain
	machines map[string]string
	deleting map[string]bool
}

func newControlPlane() *controlPlane {
	cp := &controlPlane{domains: map[string]*placement.Domain{}, machines: map[string]string{}, deleting: map[string]bool{}}
	for _, d := range domains() {
		cp.domains[d.Name] = &d
	}
	return cp
}

func (cp *controlPlane) input(requested string) placement.Input {
	in := placement.Input{Requested: requested}
	for _, name := range []string{"infra-a", "infra-b", "infra-c"} {
		in.Domains = append(in.Domains, *cp.domains[name])
	}
	names := make([]string, 0, len(cp.machines))
	for name := range cp.machines {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !cp.deleting[name] {
			in.Placed = append(in.Placed, cp.machines[name])
		}
	}
	return in
}

// step is one action of a script and what the admission must answer.
type step struct {
	op     string // create, startDelete, delete, lose, recover
	name   string // machine or Infra cluster
	fd     string // requested failure domain of a create ("" = default)
	want   string // create: the failure domain it lands in, or "reject"
	reason placement.Reason
	// imbalance, when set, is the max - min the NestCluster controller sees after the step.
	imbalance *int
}

func spread(n int) *int { return &n }

func (cp *controlPlane) run(t *testing.T, script []step) {
	t.Helper()
	for i, s := range script {
		desc := fmt.Sprintf("step %d: %s %s %s", i, s.op, s.name, s.fd)
		switch s.op {
		case "create":
			in := cp.input(s.fd)
			fd := s.fd
			if fd == "" {
				chosen, err := placement.Choose(in)
				if s.want == "reject" {
					if err == nil {
						t.Fatalf("%s: defaulted to %s, want a rejection", desc, chosen)
					}
					if got := reasonOf(err); got != s.reason {
						t.Fatalf("%s: rejected with %q (%v), want %q", desc, got, err, s.reason)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", desc, err)
				}
				fd, in.Requested = chosen, chosen
			}
			err := placement.Check(in)
			if s.want == "reject" {
				if got := reasonOf(err); got != s.reason {
					t.Fatalf("%s: got %v, want a %q rejection", desc, err, s.reason)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: rejected: %v", desc, err)
			}
			if fd != s.want {
				t.Fatalf("%s: landed in %s, want %s", desc, fd, s.want)
			}
			cp.machines[s.name] = fd
		case "startDelete":
			cp.deleting[s.name] = true
		case "delete":
			delete(cp.machines, s.name)
			delete(cp.deleting, s.name)
		case "lose":
			cp.domains[s.name].Healthy = false
		case "recover":
			cp.domains[s.name].Healthy = true
		default:
			t.Fatalf("%s: unknown op", desc)
		}
		if s.imbalance != nil {
			in := cp.input("")
			maxCount, minCount, _, _ := placement.Imbalance(placement.Counts(in.Placed, in.Healthy()), in.Healthy())
			if got := maxCount - minCount; got != *s.imbalance {
				t.Fatalf("%s: imbalance %d, want %d", desc, got, *s.imbalance)
			}
		}
	}
}

func TestScriptedControlPlaneSequences(t *testing.T) {
	initial := []step{
		{op: "create", name: "m1", want: "infra-a"},
		{op: "create", name: "m2", want: "infra-b"},
		{op: "create", name: "m3", want: "infra-c", imbalance: spread(0)},
	}
	scripts := map[string][]step{
		"scale up with defaults": initial,
		"scale up with explicit domains": {
			{op: "create", name: "m1", fd: "infra-c", want: "infra-c"},
			{op: "create", name: "m2", fd: "infra-c", want: "reject", reason: placement.ReasonUnbalanced},
			{op: "create", name: "m2", fd: "infra-a", want: "infra-a"},
			{op: "create", name: "m3", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			{op: "create", name: "m3", fd: "infra-b", want: "infra-b", imbalance: spread(0)},
		},
		"rollout with maxSurge 1": append(slices.Clone(initial),
			step{op: "create", name: "m4", fd: "infra-a", want: "infra-a", imbalance: spread(1)},
			step{op: "create", name: "extra", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "startDelete", name: "m1"},
			step{op: "delete", name: "m1", imbalance: spread(0)},
			step{op: "create", name: "m5", fd: "infra-b", want: "infra-b", imbalance: spread(1)},
			step{op: "startDelete", name: "m2"},
			step{op: "delete", name: "m2"},
			step{op: "create", name: "m6", fd: "infra-c", want: "infra-c"},
			step{op: "startDelete", name: "m3"},
			step{op: "delete", name: "m3", imbalance: spread(0)},
		),
		"remediation": append(slices.Clone(initial),
			step{op: "startDelete", name: "m2", imbalance: spread(1)},
			step{op: "create", name: "m4", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "create", name: "m4", fd: "infra-c", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "create", name: "m4", want: "infra-b", imbalance: spread(0)},
			step{op: "delete", name: "m2", imbalance: spread(0)},
		),
		"Infra cluster lost, replaced, recovered and restored": append(slices.Clone(initial),
			step{op: "lose", name: "infra-c", imbalance: spread(0)},
			step{op: "create", name: "m4", fd: "infra-c", want: "reject", reason: placement.ReasonUnhealthy},
			step{op: "startDelete", name: "m3"},
			step{op: "create", name: "m4", want: "infra-a", imbalance: spread(1)},
			step{op: "delete", name: "m3"},
			step{op: "create", name: "extra", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "recover", name: "infra-c", imbalance: spread(2)},
			// The NestCluster controller sees max - min = 2 and asks for a rollout; it goes back to infra-c.
			step{op: "create", name: "m5", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "create", name: "m5", fd: "infra-b", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "create", name: "m5", fd: "infra-c", want: "infra-c", imbalance: spread(1)},
			step{op: "startDelete", name: "m1"},
			step{op: "delete", name: "m1", imbalance: spread(0)},
		),
		"two Infra clusters lost one after the other, then both back": append(slices.Clone(initial),
			step{op: "lose", name: "infra-c"},
			step{op: "startDelete", name: "m3"},
			step{op: "create", name: "m4", want: "infra-a"},
			step{op: "delete", name: "m3"},
			step{op: "lose", name: "infra-b"},
			step{op: "startDelete", name: "m2"},
			step{op: "create", name: "m5", fd: "infra-a", want: "infra-a", imbalance: spread(0)},
			step{op: "delete", name: "m2"},
			step{op: "recover", name: "infra-b"},
			step{op: "recover", name: "infra-c", imbalance: spread(3)},
			step{op: "create", name: "m6", fd: "infra-a", want: "reject", reason: placement.ReasonUnbalanced},
			step{op: "create", name: "m6", fd: "infra-c", want: "infra-c"},
			step{op: "startDelete", name: "m1"},
			step{op: "delete", name: "m1", imbalance: spread(2)},
			step{op: "create", name: "m7", want: "infra-b", imbalance: spread(1)},
			step{op: "startDelete", name: "m4"},
			step{op: "delete", name: "m4", imbalance: spread(0)},
		),
		"every Infra cluster lost": append(slices.Clone(initial),
			step{op: "lose", name: "infra-a"},
			step{op: "lose", name: "infra-b"},
			step{op: "lose", name: "infra-c", imbalance: spread(0)},
			step{op: "create", name: "m4", want: "reject", reason: placement.ReasonNoHealthyDomain},
			step{op: "create", name: "m4", fd: "infra-a", want: "reject", reason: placement.ReasonNoHealthyDomain},
			step{op: "recover", name: "infra-b"},
			step{op: "create", name: "m4", want: "infra-b"},
		),
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			newControlPlane().run(t, script)
		})
	}
}
