package simkit

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
)

func TestIPAMHandsOutUniqueAddressesSkippingTakenOnes(t *testing.T) {
	g := NewWithT(t)
	taken := map[string]bool{"10.7.0.2": true}
	a := NewIPAM(10, 7, func(_ context.Context, ip string) (bool, error) { return taken[ip], nil })
	seen := map[string]bool{}
	for range 600 {
		ip, err := a.Allocate(context.Background())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(seen).NotTo(HaveKey(ip))
		g.Expect(ip).NotTo(Or(Equal("10.7.0.2"), HaveSuffix(".0"), HaveSuffix(".255")))
		seen[ip] = true
	}
	g.Expect(seen).To(HaveKey("10.7.0.1"))
	g.Expect(seen).To(HaveKey("10.7.1.1"), "addresses roll over into the next /24")
}
