package bench

import (
	"cmp"
	"slices"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
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

func amount(name v1.ResourceName, list v1.ResourceList) int64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

func items(pods []*v1.Pod) []item {
	out := make([]item, len(pods))
	for i, p := range pods {
		requests := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		it := item{request: make([]int64, len(packedResources))}
		for r, name := range packedResources {
			it.request[r] = amount(name, requests)
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
			b.allocatable[r] = amount(name, n.Status.Allocatable)
		}
		out[i] = b
	}
	return out
}

// LowerBound is a lower bound on the nodes that can hold pods, valid for nodes of different
// sizes: the largest over resources of two counts.
//   - Volume: the fewest nodes, biggest first, whose allocatable adds up to the pods' requests.
//   - Large items: for every request size s, the pods requesting at least s, against how many
//     such pods each node can hold at most (its allocatable divided by s); with VMs that are
//     large next to nodes this is what binds (five 32Gi VMs plus their overhead do not fit
//     twice in 192Gi, whatever the volume says).
//
// It is not always reachable; OfflineFFD is a packing that is.
func LowerBound(pods []*v1.Pod, nodes []*v1.Node) int {
	its, bs := items(pods), bins(nodes)
	bound := 0
	for r := range packedResources {
		capacities := make([]int64, len(bs))
		for i, b := range bs {
			capacities[i] = b.allocatable[r]
		}
		sizes := make([]int64, len(its))
		var total int64
		for i, it := range its {
			sizes[i] = it.request[r]
			total += it.request[r]
		}
		bound = max(bound, fewestCovering(capacities, total))
		slices.SortFunc(sizes, func(a, b int64) int { return cmp.Compare(b, a) })
		for i, s := range sizes {
			if s <= 0 || (i+1 < len(sizes) && sizes[i+1] == s) {
				continue
			}
			holds := make([]int64, len(capacities))
			for n, c := range capacities {
				holds[n] = c / s
			}
			bound = max(bound, fewestCovering(holds, int64(i+1)))
		}
	}
	return bound
}

// fewestCovering is the fewest of the amounts, largest first, that add up to total; one more
// than there are when they all fall short.
func fewestCovering(amounts []int64, total int64) int {
	sorted := slices.Clone(amounts)
	slices.SortFunc(sorted, func(a, b int64) int { return cmp.Compare(b, a) })
	var sum int64
	for i, a := range sorted {
		if sum >= total {
			return i
		}
		sum += a
	}
	if sum >= total {
		return len(sorted)
	}
	return len(sorted) + 1
}

// OfflineFFD packs pods onto nodes offline, knowing them all in advance: first-fit decreasing
// under several orders (by normalized sum, by largest normalized request, by memory, by CPU)
// and two fits (first fit, best fit on the largest free share left; both open the biggest node
// when no open node fits), keeping control-plane VMs of one tenant apart. It returns the fewest nodes any of them
// used, a packing that exists: what a clairvoyant scheduler reaches easily.
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
		chosen, empty, chosenWaste := -1, -1, 2.0
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
				if w := largestFreeShare(it, &bs[i]); w < chosenWaste {
					chosen, chosenWaste = i, w
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

// largestFreeShare is the largest share of CPU or memory the node would have left.
func largestFreeShare(it item, b *bin) float64 {
	var largest float64
	for r := range 2 {
		largest = max(largest, float64(b.allocatable[r]-b.used[r]-it.request[r])/float64(b.allocatable[r]))
	}
	return largest
}
