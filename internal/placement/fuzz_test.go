package placement_test

import (
	"slices"
	"testing"

	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// FuzzPlacement checks the rule's promises on arbitrary control planes: the default is always
// admitted, every allowed choice is admitted and nothing else is, and a control plane with a healthy
// Infra cluster always has somewhere to go.
func FuzzPlacement(f *testing.F) {
	f.Add([]byte{0b111, 0b111}, []byte{0, 0, 1, 2}, byte(0))
	f.Add([]byte{0b011, 0b111}, []byte{0, 0, 0}, byte(2))
	f.Add([]byte{0b110, 0b101}, []byte{1, 2, 3, 4, 5}, byte(4))
	f.Add([]byte{}, []byte{}, byte(0))
	names := []string{"infra-a", "infra-b", "infra-c", "infra-d", "infra-e"}
	f.Fuzz(func(t *testing.T, flags, placed []byte, requested byte) {
		var in placement.Input
		for i, name := range names {
			if len(flags) < 2 || flags[0]&(1<<i) == 0 {
				continue // not one of the tenant's Infra clusters
			}
			in.Domains = append(in.Domains, placement.Domain{Name: name, ControlPlane: flags[1]&(1<<i) != 0 || i%2 == 0, Healthy: flags[1]&(1<<i) != 0})
		}
		for _, p := range placed {
			// Indices past the names stand for machines without, or in an unknown, failure domain.
			if int(p)%7 < len(names) {
				in.Placed = append(in.Placed, names[int(p)%7])
			} else {
				in.Placed = append(in.Placed, "")
			}
		}
		allowed := placement.Allowed(in)
		healthy := in.Healthy()
		if (len(healthy) > 0) != (len(allowed) > 0) {
			t.Fatalf("healthy %v but allowed %v", healthy, allowed)
		}
		if chosen, err := placement.Choose(in); err == nil {
			in.Requested = chosen
			if err := placement.Check(in); err != nil {
				t.Fatalf("the default %q is rejected: %v", chosen, err)
			}
		} else if len(healthy) > 0 {
			t.Fatalf("no default with healthy %v: %v", healthy, err)
		}
		in.Requested = names[int(requested)%len(names)]
		err := placement.Check(in)
		if (err == nil) != slices.Contains(allowed, in.Requested) {
			t.Fatalf("Check(%q) = %v, but allowed = %v", in.Requested, err, allowed)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("a rejection must explain itself")
		}
		maxCount, minCount, most, least := placement.Imbalance(placement.Counts(in.Placed, healthy), healthy)
		if maxCount < minCount || (len(healthy) > 0 && (len(most) == 0 || len(least) == 0)) {
			t.Fatalf("Imbalance = %d, %d, %v, %v for healthy %v", maxCount, minCount, most, least, healthy)
		}
	})
}
