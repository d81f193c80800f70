package nestpacking

import (
	"math"

	fwk "k8s.io/kube-scheduler/framework"
)

// Raw scores are fixed-point so that small differences between nearly full nodes survive until
// NormalizeScore; the framework's [0, 100] range would round most of them into ties.
const (
	// qualityScale is the raw score of a placement that leaves a node exactly full.
	qualityScale int64 = 10000
	// maxHostable caps how many copies of the pod a node without VMs is credited with holding;
	// beyond it a bigger node is not worth more.
	maxHostable = 64
	// hostableStep is what each copy of the pod a node without VMs could hold adds to its raw
	// score: one more than the whole range of PackingQuality, so that the node's size decides
	// first and packing quality only breaks ties between nodes of the same size.
	hostableStep = qualityScale + 1
	// vmHostBonus lifts every node that already runs a VM above every node that runs none, so a
	// new node is opened only when no occupied node fits the pod (the "any fit" rule that keeps
	// online bin packing close to the optimum when VMs are small next to nodes).
	vmHostBonus = (maxHostable + 1) * hostableStep
	// normalizeStep is how many raw points one normalized point is worth: 0.2% of packing
	// quality. 100 points then grade the candidates within 20% of the best one, which is where
	// the choice is made, and leave everything worse at 0.
	normalizeStep int64 = 20

	// meanShare is the weight of the mean leftover in a node's waste, next to the largest one.
	// Measured with cmd/nest-bench: the largest leftover alone packs as well as MostAllocated
	// with BalancedAllocation (which add up to it for two resources), the mean alone or a root
	// mean square leave up to one node more in churn; a small mean share keeps the first and
	// breaks its ties toward fuller nodes.
	meanShare = 0.2
)

// ResourceFit is what the score knows about one resource on one node.
type ResourceFit struct {
	// Allocatable is the node's allocatable amount; a resource the node lacks has 0 and is ignored.
	Allocatable int64
	// Requested is the sum of the requests of the pods already on the node.
	Requested int64
	// Request is the request of the pod being placed.
	Request int64
	// Weight is the resource's weight in the score.
	Weight int64
}

// PackingQuality rates how well placing the pod fills the node, in [0, qualityScale]: one minus
// the node's waste after placement, where waste blends the largest weighted fraction of a
// resource left free (weight 1-meanShare) with the weighted mean of the free fractions (meanShare).
//
// The mean alone is NodeResourcesFit's MostAllocated. The largest leftover is what stranding
// costs: once one resource of a node is exhausted, whatever is left of the others cannot host a
// VM, and the largest of them is the most that is lost. Ranking nodes by it sends a VM where its
// shape matches what is free, so a node runs out of all its resources at about the same time;
// the mean share then prefers the fuller of two nodes with the same largest leftover.
func PackingQuality(resources []ResourceFit) int64 {
	var sumFree, maxWeightedFree float64
	var sumWeights, maxWeight int64
	for _, r := range resources {
		if r.Allocatable <= 0 {
			continue
		}
		free := float64(r.Allocatable-r.Requested-r.Request) / float64(r.Allocatable)
		// Out of range only when the node is already overcommitted (requests raised in place,
		// preemption dry runs); clamping keeps the score in range without changing the order.
		free = min(max(free, 0), 1)
		sumFree += float64(r.Weight) * free
		sumWeights += r.Weight
		maxWeightedFree = max(maxWeightedFree, float64(r.Weight)*free)
		maxWeight = max(maxWeight, r.Weight)
	}
	if sumWeights == 0 {
		return 0
	}
	waste := (1-meanShare)*maxWeightedFree/float64(maxWeight) + meanShare*sumFree/float64(sumWeights)
	return int64(math.Round((1 - waste) * float64(qualityScale)))
}

// hostable is how many copies of the pod the node's allocatable holds, counted on the resources
// the pod requests, capped at maxHostable. It sizes a node relative to the VM being placed.
func hostable(resources []ResourceFit) int64 {
	count := int64(maxHostable)
	for _, r := range resources {
		if r.Allocatable <= 0 || r.Request <= 0 {
			continue
		}
		count = min(count, r.Allocatable/r.Request)
	}
	return count
}

// rawScore is the score of placing the pod on a node before normalization, lexicographic in
// three keys: whether the node already runs a VM (vmHostBonus), then, for a node that runs none,
// how many such VMs it could hold (hostable), then the packing quality.
//
// The second key decides which node to open when no VM host fits: the biggest. Best fit alone
// (and NodeResourcesFit MostAllocated) would open the smallest, since the pod fills more of it;
// with nodes of different sizes that spends a whole small node where a big one would have gone
// on taking VMs, and uses more nodes in the end. Among nodes of one size nothing changes.
func rawScore(resources []ResourceFit, hostsVMs bool) int64 {
	score := PackingQuality(resources)
	if hostsVMs {
		return score + vmHostBonus
	}
	return score + hostable(resources)*hostableStep
}

// normalizeScores maps raw scores to [0, MaxScore] by their distance from the best one: the best
// node gets MaxScore and each normalizeStep below it one point less. Scaling by the range instead
// would let a single empty node squeeze the differences between the occupied ones into a few
// points.
func normalizeScores(scores fwk.NodeScoreList) {
	if len(scores) == 0 {
		return
	}
	best := scores[0].Score
	for _, s := range scores[1:] {
		best = max(best, s.Score)
	}
	for i := range scores {
		scores[i].Score = max(fwk.MinScore, fwk.MaxScore-(best-scores[i].Score)/normalizeStep)
	}
}
