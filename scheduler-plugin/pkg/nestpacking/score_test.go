package nestpacking

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	fwk "k8s.io/kube-scheduler/framework"
)

// fit is a resource of 1000 units with the given units already requested and requested by the
// pod, weight 1.
func fit(requested, request int64) resourceFit {
	return resourceFit{Allocatable: 1000, Requested: requested, Request: request, Weight: 1}
}

func TestPackingQuality(t *testing.T) {
	tests := []struct {
		name      string
		resources []resourceFit
		want      int64
	}{
		{
			name:      "a pod that fills the node exactly scores the maximum",
			resources: []resourceFit{fit(600, 400), fit(900, 100)},
			want:      qualityScale,
		},
		{
			name:      "a pod on an empty node scores by what is left: free fractions .9 and .8",
			resources: []resourceFit{fit(0, 100), fit(0, 200)},
			want:      1100, // 1 - (.8*.9 + .2*.85)
		},
		{
			name:      "even leftovers: free fractions .25 and .25",
			resources: []resourceFit{fit(500, 250), fit(500, 250)},
			want:      7500,
		},
		{
			name: "uneven leftovers of the same mean rank lower: one resource full strands the other",
			// MostAllocated rates this the same as the even case above (mean free .25).
			resources: []resourceFit{fit(750, 250), fit(250, 250)},
			want:      5500, // 1 - (.8*.5 + .2*.25)
		},
		{
			name: "weights scale a resource's leftover in both the largest and the mean",
			resources: []resourceFit{
				{Allocatable: 1000, Requested: 250, Request: 250, Weight: 3},
				{Allocatable: 1000, Requested: 750, Request: 250, Weight: 1},
			},
			want: 5250, // 1 - (.8*(3*.5)/3 + .2*(3*.5)/4)
		},
		{
			name:      "a resource the node does not have is left out",
			resources: []resourceFit{fit(500, 250), fit(500, 250), {Allocatable: 0, Request: 1, Weight: 5}},
			want:      7500,
		},
		{
			name:      "an overcommitted node counts as full, not beyond",
			resources: []resourceFit{fit(1200, 100), fit(1000, 0)},
			want:      qualityScale,
		},
		{
			name: "no resource to score on scores zero",
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := packingQuality(tt.resources); got != tt.want {
				t.Errorf("packingQuality() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRawScorePrefersNodesThatRunVMs(t *testing.T) {
	almostEmptyWithVM := rawScore([]resourceFit{fit(1, 1), fit(1, 1)}, true)
	filledExactlyWithoutVM := rawScore([]resourceFit{fit(0, 1000), fit(0, 1000)}, false)
	if almostEmptyWithVM <= filledExactlyWithoutVM {
		t.Errorf("a node that runs a VM scores %d, not above the best node without VMs (%d)", almostEmptyWithVM, filledExactlyWithoutVM)
	}
}

func TestNormalizeScores(t *testing.T) {
	tests := []struct {
		name   string
		scores fwk.NodeScoreList
		want   fwk.NodeScoreList
	}{
		{
			name: "points below the best by distance, floored at zero",
			scores: fwk.NodeScoreList{
				{Name: "best", Score: 2 * qualityScale},
				{Name: "one-step-worse", Score: 2*qualityScale - normalizeStep},
				{Name: "half-way", Score: 2*qualityScale - 50*normalizeStep},
				{Name: "empty", Score: qualityScale / 2},
			},
			want: fwk.NodeScoreList{
				{Name: "best", Score: 100},
				{Name: "one-step-worse", Score: 99},
				{Name: "half-way", Score: 50},
				{Name: "empty", Score: 0},
			},
		},
		{
			name:   "a less-than-a-step difference does not count",
			scores: fwk.NodeScoreList{{Name: "a", Score: 500}, {Name: "b", Score: 500 - normalizeStep + 1}},
			want:   fwk.NodeScoreList{{Name: "a", Score: 100}, {Name: "b", Score: 100}},
		},
		{
			name:   "no nodes",
			scores: fwk.NodeScoreList{},
			want:   fwk.NodeScoreList{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			normalizeScores(tt.scores)
			if diff := cmp.Diff(tt.want, tt.scores); diff != "" {
				t.Errorf("normalizeScores() (-want,+got):\n%s", diff)
			}
		})
	}
}
