package v1alpha1

import (
	"slices"
	"testing"
)

func TestProviderID(t *testing.T) {
	id := ProviderID("infra-1", "nest-default-t", "t-md-0-abc")
	if id != "nest://infra-1/nest-default-t/t-md-0-abc" {
		t.Fatalf("ProviderID = %q", id)
	}
	i, ns, name, err := ParseProviderID(id)
	if err != nil || !slices.Equal([]string{i, ns, name}, []string{"infra-1", "nest-default-t", "t-md-0-abc"}) {
		t.Fatalf("ParseProviderID(%q) = %q, %q, %q, %v", id, i, ns, name, err)
	}
	for _, bad := range []string{"", "kubevirt://a/b/c", "nest://a/b", "nest://a//c", "nest://a/b/c/d"} {
		if _, _, _, err := ParseProviderID(bad); err == nil {
			t.Errorf("ParseProviderID(%q) accepted it", bad)
		}
	}
}
