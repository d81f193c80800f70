package infra

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Capacity summarises the Nodes of an Infra cluster from its cache: how many, how many can take VMs
// (Ready and not cordoned), and the sum of their allocatable resources.
func Capacity(ctx context.Context, c client.Reader) (*infrav1.InfraCapacity, error) {
	nodes := &corev1.NodeList{}
	if err := c.List(ctx, nodes); err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	return SummariseNodes(nodes.Items), nil
}

// SummariseNodes is Capacity over a list of Nodes.
func SummariseNodes(nodes []corev1.Node) *infrav1.InfraCapacity {
	out := &infrav1.InfraCapacity{Nodes: int32(len(nodes)), Allocatable: corev1.ResourceList{}}
	for i := range nodes {
		n := &nodes[i]
		if n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		out.SchedulableNodes++
		for name, q := range n.Status.Allocatable {
			sum := out.Allocatable[name]
			if sum.IsZero() {
				sum = resource.Quantity{Format: q.Format}
			}
			sum.Add(q)
			out.Allocatable[name] = sum
		}
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
