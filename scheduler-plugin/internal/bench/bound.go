package bench

import (
	"cmp"
	"slices"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

// item is a VM reduced to what packing reads: its requests and, for a control-plane VM, its
// tenant (two of one tenant never share a node).
type item struct {
	request      []int64
	controlPlane string
}

// bin is a node reduced to its allocatable and what is placed on it.
type bin struct {
	allocatable  []int64
	used         []int64
	count        int
	controlPlane map[string]bool
}

// packedResources are the resources the bounds and the offline packing count: CPU in
// millicores, memory in bytes, and pods.
var packedResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods}

// items reads the pods' requests in the units the plugin scores them in.
func items(pods []*v1.Pod) []item {
	out := make([]item, len(pods))
	for i, p := range pods {
		requests := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		it := item{request: make([]int64, len(packedResources))}
		for r, name := range packedResources {
			it.request[r] = nestpacking.RequestValue(name, requests)
		}
		it.request[2] = 1 // one pod
		if p.Labels[roleLabel] == controlPlaneRole {
			it.controlPlane = p.Labels[clusterNameLabel]
		}
		out[i] = it
	}
	return out
}

func bins(nodes []*v1.Node) []bin {
	out := make([]bin, len(nodes))
	for i, n := range nodes {
		b := bin{allocatable: make([]int64, len(packedResources)), used: make([]int64, len(packedResources)), controlPlane: map[string]bool{}}
		for r, name := range packedResources {
			b.allocatable[r] = nestpacking.RequestValue(name, n.Status.Allocatable)
		}
		out[i] = b
	}
	return out
}

// shape is one distinct request vector among the VMs, and how many VMs have it.
type shape struct {
	request []int64
	count   int
}

func shapes(its []item) []shape {
	var out []shape
	for _, it := range its {
		i := slices.IndexFunc(out, func(s shape) bool { return slices.Equal(s.request, it.request) })
		if i < 0 {
			out = append(out, shape{request: it.request})
			i = len(out) - 1
		}
		out[i].count++
	}
	return out
}

// LowerBound is a lower bound on the nodes that can hold pods, valid for nodes of different
// sizes. It rests on one argument applied to several weightings of the VMs: whatever weight w
// each VM is given, a node can carry at most the heaviest set of VMs that fits on it (its
// best fill, a small knapsack over the VM shapes), so the nodes used must have best fills that
// add up to the total weight. The weightings:
//   - Volume, per resource: a VM weighs its request. The best fill is what a node can really
//     take of that resource in these VM sizes — five 32Gi VMs plus overhead fill 162Gi of a
//     192Gi node and no mix of the other sizes does better — which is tighter than dividing by
//     the allocatable.
//   - Blends of CPU and memory (normalized), for mixes where neither alone binds.
//   - Large items, per resource and request size s: a VM weighs 1 if it requests at least s.
//
// Control-plane spread is left out, so the bound holds with it too. It is not always reachable;
// OfflineFFD is a packing that is.
func LowerBound(pods []*v1.Pod, nodes []*v1.Node) int {
	its := items(pods)
	if len(its) == 0 {
		return 0
	}
	shs := shapes(its)
	capacities := bins(nodes)
	bound := 0
	for _, weight := range weightings(shs, capacities[0].allocatable) {
		var total float64
		for i, s := range shs {
			total += weight[i] * float64(s.count)
		}
		if total == 0 {
			continue
		}
		fills := make([]float64, len(capacities))
		byAllocatable := map[[3]int64]float64{}
		for n, c := range capacities {
			key := [3]int64(c.allocatable)
			fill, ok := byAllocatable[key]
			if !ok {
				fill = bestFill(shs, weight, c.allocatable)
				byAllocatable[key] = fill
			}
			fills[n] = fill
		}
		bound = max(bound, fewestCovering(fills, total))
	}
	return bound
}

// weightings lists the weights LowerBound tries, one weight per shape; reference normalizes CPU
// against memory in the blends.
func weightings(shs []shape, reference []int64) [][]float64 {
	var out [][]float64
	weigh := func(f func(request []int64) float64) {
		w := make([]float64, len(shs))
		for i, s := range shs {
			w[i] = f(s.request)
		}
		out = append(out, w)
	}
	for r := range packedResources {
		weigh(func(request []int64) float64 { return float64(request[r]) })
		for _, s := range shs {
			size := s.request[r]
			weigh(func(request []int64) float64 {
				if size > 0 && request[r] >= size {
					return 1
				}
				return 0
			})
		}
	}
	for _, memoryShare := range []float64{0.2, 1.0 / 3, 0.5, 2.0 / 3, 0.8} {
		weigh(func(request []int64) float64 {
			return (1-memoryShare)*float64(request[0])/float64(reference[0]) + memoryShare*float64(request[1])/float64(reference[1])
		})
	}
	return out
}

// bestFillBudget caps the search of one best fill; past it, bestFill returns the fractional
// bound, which is larger than the best fill and so keeps LowerBound valid, only weaker. Nested
// OpenShift nodes hold a handful of VMs and never reach it.
const bestFillBudget = 200000

// bestFill is the largest total weight of VMs (at most count of each shape) that fits within
// allocatable: a bounded multi-dimensional knapsack, searched depth first with a fractional
// bound to prune.
func bestFill(shs []shape, weight []float64, allocatable []int64) float64 {
	type candidate struct {
		shape  shape
		weight float64
	}
	var cands []candidate
	for i, s := range shs {
		if weight[i] > 0 {
			cands = append(cands, candidate{s, weight[i]})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(b.weight, a.weight) })

	// upper is the most weight the candidates from i on could add within free, ignoring
	// integrality: for each resource, free times the best weight per unit of it.
	upper := func(i int, free []int64) float64 {
		var all float64
		for _, c := range cands[i:] {
			all += c.weight * float64(c.shape.count)
		}
		best := all
		for r, f := range free {
			var perUnit float64
			for _, c := range cands[i:] {
				if c.shape.request[r] == 0 {
					perUnit = -1
					break
				}
				perUnit = max(perUnit, c.weight/float64(c.shape.request[r]))
			}
			if perUnit >= 0 {
				best = min(best, perUnit*float64(f))
			}
		}
		return best
	}

	var best float64
	steps := 0
	free := slices.Clone(allocatable)
	var search func(i int, value float64)
	search = func(i int, value float64) {
		steps++
		best = max(best, value)
		if i == len(cands) || steps > bestFillBudget || value+upper(i, free) <= best {
			return
		}
		c := cands[i]
		most := c.shape.count
		for r, req := range c.shape.request {
			if req > 0 {
				most = min(most, int(free[r]/req))
			}
		}
		for n := most; n >= 0; n-- {
			for r, req := range c.shape.request {
				free[r] -= int64(n) * req
			}
			search(i+1, value+float64(n)*c.weight)
			for r, req := range c.shape.request {
				free[r] += int64(n) * req
			}
		}
	}
	search(0, 0)
	if steps > bestFillBudget {
		return upper(0, allocatable)
	}
	return best
}

// fewestCovering is the fewest of the amounts, largest first, that add up to total; one more
// than there are when they all fall short. A hair of tolerance keeps float rounding from
// counting one node too many, which would make the bound wrong.
func fewestCovering(amounts []float64, total float64) int {
	sorted := slices.Clone(amounts)
	slices.SortFunc(sorted, func(a, b float64) int { return cmp.Compare(b, a) })
	need := total * (1 - 1e-9)
	var sum float64
	for i, a := range sorted {
		if sum >= need {
			return i
		}
		sum += a
	}
	if sum >= need {
		return len(sorted)
	}
	return len(sorted) + 1
}

// OfflineFFD packs pods onto nodes offline, knowing them all in advance: first-fit decreasing
// under several orders (by normalized sum, by largest normalized request, by memory, by CPU)
// and two fits (first fit, and best fit by NestPacking's own packing quality; both open the
// biggest node when no open node fits), keeping control-plane VMs of one tenant apart. It
// returns the fewest nodes any of them used, a packing that exists: what a clairvoyant
// scheduler reaches easily.
func OfflineFFD(pods []*v1.Pod, nodes []*v1.Node) int {
	its := items(pods)
	if len(its) == 0 {
		return 0
	}
	reference := bins(nodes)[0].allocatable
	normalized := func(it item, r int) float64 { return float64(it.request[r]) / float64(reference[r]) }
	orders := []func(item) float64{
		func(it item) float64 { return normalized(it, 0) + normalized(it, 1) },
		func(it item) float64 { return max(normalized(it, 0), normalized(it, 1)) },
		func(it item) float64 { return normalized(it, 1) },
		func(it item) float64 { return normalized(it, 0) },
	}
	best := len(nodes) + 1
	for _, key := range orders {
		sorted := slices.Clone(its)
		slices.SortStableFunc(sorted, func(a, b item) int { return cmp.Compare(key(b), key(a)) })
		for _, bestFit := range []bool{false, true} {
			if used, ok := pack(sorted, bins(nodes), bestFit); ok {
				best = min(best, used)
			}
		}
	}
	return best
}

// pack places items in order on the nodes; false if one does not fit anywhere.
func pack(its []item, bs []bin, bestFit bool) (int, bool) {
	// Biggest nodes first: first fit then opens them first, and so does best fit among empty ones.
	slices.SortStableFunc(bs, func(a, b bin) int {
		return cmp.Compare(b.allocatable[0]+b.allocatable[1]/(4<<20), a.allocatable[0]+a.allocatable[1]/(4<<20))
	})
	used := 0
	for _, it := range its {
		chosen, empty, chosenQuality := -1, -1, int64(-1)
		for i := range bs {
			switch {
			case !fits(it, &bs[i]):
			case bs[i].count == 0:
				if empty < 0 {
					empty = i
				}
			case !bestFit:
				chosen = i
			default:
				if q := quality(it, &bs[i]); q > chosenQuality {
					chosen, chosenQuality = i, q
				}
			}
			if chosen >= 0 && !bestFit {
				break
			}
		}
		if chosen < 0 {
			chosen = empty
		}
		if chosen < 0 {
			return 0, false
		}
		b := &bs[chosen]
		if b.count == 0 {
			used++
		}
		place(it, b)
	}
	return used, true
}

func fits(it item, b *bin) bool {
	if it.controlPlane != "" && b.controlPlane[it.controlPlane] {
		return false
	}
	for r, req := range it.request {
		if b.used[r]+req > b.allocatable[r] {
			return false
		}
	}
	return true
}

func place(it item, b *bin) {
	for r, req := range it.request {
		b.used[r] += req
	}
	b.count++
	if it.controlPlane != "" {
		b.controlPlane[it.controlPlane] = true
	}
}

// quality is NestPacking's packing quality of placing it on b, on CPU and memory with weight 1
// as the shipped profile scores them.
func quality(it item, b *bin) int64 {
	fit := make([]nestpacking.ResourceFit, 2)
	for r := range fit {
		fit[r] = nestpacking.ResourceFit{Allocatable: b.allocatable[r], Requested: b.used[r], Request: it.request[r], Weight: 1}
	}
	return nestpacking.PackingQuality(fit)
}
