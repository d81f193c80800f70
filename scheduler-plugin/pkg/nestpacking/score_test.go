package nestpacking

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	fwk "k8s.io/kube-scheduler/framework"
)

// fit is a resource of 1000 units with the given units already requested and requested by the
// pod, weight 1.
func fit(requested, request int64) ResourceFit {
	return ResourceFit{Allocatable: 1000, Requested: requested, Request: request, Weight: 1}
}

func TestPackingQuality(t *testing.T) {
	tests := []struct {
		name      string
		resources []ResourceFit
		want      int64
	}{
		{
			name:      "a pod that fills the node exactly scores the maximum",
			resources: []ResourceFit{fit(600, 400), fit(900, 100)},
			want:      qualityScale,
		},
		{
			name:      "a pod on an empty node scores by what is left: free fractions .9 and .8",
			resources: []ResourceFit{fit(0, 100), fit(0, 200)},
			want:      1100, // 1 - (.8*.9 + .2*.85)
		},
		{
			name:      "even leftovers: free fractions .25 and .25",
			resources: []ResourceFit{fit(500, 250), fit(500, 250)},
			want:      7500,
		},
		{
			name: "uneven leftovers of the same mean rank lower: one resource full strands the other",
			// MostAllocated rates this the same as the even case above (mean free .25).
			resources: []ResourceFit{fit(750, 250), fit(250, 250)},
			want:      5500, // 1 - (.8*.5 + .2*.25)
		},
		{
			name: "weights scale a resource's leftover in both the largest and the mean",
			resources: []ResourceFit{
				{Allocatable: 1000, Requested: 250, Request: 250, Weight: 3},
				{Allocatable: 1000, Requested: 750, Request: 250, Weight: 1},
			},
			want: 5250, // 1 - (.8*(3*.5)/3 + .2*(3*.5)/4)
		},
		{
			name:      "a resource the node does not have is left out",
			resources: []ResourceFit{fit(500, 250), fit(500, 250), {Allocatable: 0, Request: 1, Weight: 5}},
			want:      7500,
		},
		{
			name:      "an overcommitted node counts as full, not beyond",
			resources: []ResourceFit{fit(1200, 100), fit(1000, 0)},
			want:      qualityScale,
		},
		{
			name: "no resource to score on scores zero",
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PackingQuality(tt.resources); got != tt.want {
				t.Errorf("PackingQuality() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRawScorePrefersNodesThatRunVMs(t *testing.T) {
	almostEmptyWithVM := rawScore([]ResourceFit{fit(1, 1), fit(1, 1)}, true)
	for name, withoutVM := range map[string][]ResourceFit{
		"filled exactly":        {fit(0, 1000), fit(0, 1000)},
		"holding the most pods": {fit(0, 1), fit(0, 1)},
		"both":                  {{Allocatable: 1000, Requested: 999, Request: 1, Weight: 1}},
	} {
		if score := rawScore(withoutVM, false); almostEmptyWithVM <= score {
			t.Errorf("a node that runs a VM scores %d, not above a node without VMs %s (%d)", almostEmptyWithVM, name, score)
		}
	}
}

func TestHostable(t *testing.T) {
	tests := []struct {
		name      string
		resources []ResourceFit
		want      int64
	}{
		{name: "the scarcest resource decides", resources: []ResourceFit{fit(0, 100), fit(0, 300)}, want: 3},
		{name: "what runs on the node does not shrink it", resources: []ResourceFit{fit(900, 100), fit(0, 100)}, want: 10},
		{name: "resources the pod does not request are left out", resources: []ResourceFit{fit(0, 250), fit(0, 0)}, want: 4},
		{name: "a tiny pod is capped", resources: []ResourceFit{fit(0, 1)}, want: maxHostable},
		{name: "a resource the node lacks is left out", resources: []ResourceFit{fit(0, 500), {Request: 1, Weight: 1}}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostable(tt.resources); got != tt.want {
				t.Errorf("hostable() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRawScoreOpensTheBiggestNode(t *testing.T) {
	// A 16-CPU, 64Gi VM against empty nodes of 32/128, 48/192 and 64/256 (in CPUs and Gi).
	node := func(cpu, memory int64) []ResourceFit {
		return []ResourceFit{{Allocatable: cpu, Request: 16, Weight: 1}, {Allocatable: memory, Request: 64, Weight: 1}}
	}
	small, medium, big := rawScore(node(32, 128), false), rawScore(node(48, 192), false), rawScore(node(64, 256), false)
	if !(big > medium && medium > small) {
		t.Errorf("raw scores of empty nodes 64/256 %d, 48/192 %d, 32/128 %d: want the biggest first", big, medium, small)
	}
	// Among nodes that hold as many copies, best fit decides: 48/200 holds 3, like 48/192.
	if tighter, looser := rawScore(node(48, 192), false), rawScore(node(48, 200), false); tighter <= looser {
		t.Errorf("raw scores of empty nodes 48/192 %d, 48/200 %d: want the tighter fit first", tighter, looser)
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
				{Name: "best", Score: vmHostBonus + qualityScale},
				{Name: "one-step-worse", Score: vmHostBonus + qualityScale - normalizeStep},
				{Name: "half-way", Score: vmHostBonus + qualityScale - 50*normalizeStep},
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
