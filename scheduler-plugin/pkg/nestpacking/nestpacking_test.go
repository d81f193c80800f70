package nestpacking

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

const extendedGPU = "nvidia.com/gpu"

func node(name, cpu, memory string) *v1.Node {
	return st.MakeNode().Name(name).Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory}).Obj()
}

// vm is a virt-launcher pod with the given requests.
func vm(name, nodeName, cpu, memory string) *st.PodWrapper {
	return st.MakePod().Namespace("tenant-a").Name(name).Node(nodeName).
		Label(DefaultVMLabelKey, DefaultVMLabelValue).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: memory})
}

// newPlugin builds the plugin with default args behind a framework whose snapshot holds pods and
// nodes, the way the scheduler hands it out.
func newPlugin(ctx context.Context, t *testing.T, pods []*v1.Pod, nodes []*v1.Node) (*NestPacking, *cache.Snapshot) {
	t.Helper()
	snapshot := cache.NewSnapshot(pods, nodes)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithSnapshotSharedLister(snapshot))
	if err != nil {
		t.Fatalf("creating framework: %v", err)
	}
	p, err := New(ctx, nil, fh)
	if err != nil {
		t.Fatalf("creating plugin: %v", err)
	}
	return p.(*NestPacking), snapshot
}

// scoreNodes runs PreScore, Score and NormalizeScore for pod over every node of the snapshot.
func scoreNodes(ctx context.Context, t *testing.T, pl *NestPacking, snapshot *cache.Snapshot, pod *v1.Pod) map[string]int64 {
	t.Helper()
	nodeInfos, err := snapshot.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	state := framework.NewCycleState()
	if s := pl.PreScore(ctx, state, pod, nodeInfos); !s.IsSuccess() {
		t.Fatalf("PreScore: %v", s)
	}
	var scores fwk.NodeScoreList
	for _, ni := range nodeInfos {
		score, s := pl.Score(ctx, state, pod, ni)
		if !s.IsSuccess() {
			t.Fatalf("Score(%s): %v", ni.Node().Name, s)
		}
		scores = append(scores, fwk.NodeScore{Name: ni.Node().Name, Score: score})
	}
	if s := pl.ScoreExtensions().NormalizeScore(ctx, state, pod, scores); !s.IsSuccess() {
		t.Fatalf("NormalizeScore: %v", s)
	}
	out := map[string]int64{}
	for _, s := range scores {
		out[s.Name] = s.Score
	}
	return out
}

func TestScore(t *testing.T) {
	tests := []struct {
		name     string
		pod      *v1.Pod
		nodes    []*v1.Node
		existing []*v1.Pod
		want     map[string]int64
	}{
		{
			name:  "the fullest node that runs VMs wins; empty nodes stay empty",
			pod:   vm("new", "", "2", "8Gi").Obj(),
			nodes: []*v1.Node{node("empty", "32", "128Gi"), node("half", "32", "128Gi"), node("nine-sixteenths", "32", "128Gi")},
			existing: []*v1.Pod{
				vm("h", "half", "16", "64Gi").Obj(),
				vm("n", "nine-sixteenths", "18", "72Gi").Obj(),
			},
			// Free after placement: .4375 and .375 of both resources, 625 raw points apart.
			want: map[string]int64{"empty": 0, "half": 69, "nine-sixteenths": 100},
		},
		{
			name:  "a node with only non-VM pods is not preferred over an empty one for being used",
			pod:   vm("new", "", "2", "8Gi").Obj(),
			nodes: []*v1.Node{node("empty", "32", "128Gi"), node("daemons", "32", "128Gi")},
			existing: []*v1.Pod{
				st.MakePod().Namespace("kube-system").Name("agent").Node("daemons").Req(map[v1.ResourceName]string{v1.ResourceCPU: "1", v1.ResourceMemory: "4Gi"}).Obj(),
			},
			// Only packing quality separates them (3% of a node): a VM host would have won by far.
			want: map[string]int64{"empty": 85, "daemons": 100},
		},
		{
			name:  "the node whose free shape matches the pod wins over one that is fuller in the mean",
			pod:   vm("new", "", "8", "8Gi").Obj(), // CPU-heavy
			nodes: []*v1.Node{node("cpu-left", "32", "128Gi"), node("memory-left", "32", "128Gi")},
			existing: []*v1.Pod{
				vm("a", "cpu-left", "8", "88Gi").Obj(),     // free before: cpu .75, memory .3125
				vm("b", "memory-left", "24", "32Gi").Obj(), // free before: cpu .25, memory .75
			},
			// MostAllocated picks memory-left (mean free .34 against .375), which fills its CPU
			// and strands 88Gi of memory; cpu-left ends with .5 and .25 free.
			want: map[string]int64{"cpu-left": 100, "memory-left": 29},
		},
		{
			name:  "when no node runs a VM, the biggest is opened",
			pod:   vm("new", "", "16", "64Gi").Obj(),
			nodes: []*v1.Node{node("small", "32", "128Gi"), node("big", "64", "256Gi"), node("medium", "48", "192Gi")},
			// MostAllocated would open small, which the VM fills the most.
			want: map[string]int64{"small": 0, "big": 100, "medium": 0},
		},
		{
			name: "an extended resource the pod asks for is packed on too",
			pod: st.MakePod().Namespace("tenant-a").Name("gpu-vm").Label(DefaultVMLabelKey, DefaultVMLabelValue).
				Req(map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "16Gi", extendedGPU: "1"}).Obj(),
			nodes: []*v1.Node{
				st.MakeNode().Name("gpus-used").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "32", v1.ResourceMemory: "128Gi", extendedGPU: "4"}).Obj(),
				st.MakeNode().Name("gpus-free").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "32", v1.ResourceMemory: "128Gi", extendedGPU: "4"}).Obj(),
			},
			existing: []*v1.Pod{
				st.MakePod().Namespace("tenant-a").Name("g").Node("gpus-used").Label(DefaultVMLabelKey, DefaultVMLabelValue).
					Req(map[v1.ResourceName]string{v1.ResourceCPU: "4", v1.ResourceMemory: "16Gi", extendedGPU: "2"}).Obj(),
				vm("plain", "gpus-free", "4", "16Gi").Obj(),
			},
			// Same CPU and memory use; gpus-used ends with one GPU free instead of three.
			want: map[string]int64{"gpus-used": 100, "gpus-free": 84},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, snapshot := newPlugin(ctx, t, tt.existing, tt.nodes)
			got := scoreNodes(ctx, t, pl, snapshot, tt.pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("scores (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestKeepsBatchingOff protects the choice explained on NestPacking: a SignPod would let the
// scheduler batch VMs on a ranking that is arbitrary beyond its first node.
func TestKeepsBatchingOff(t *testing.T) {
	var pl fwk.Plugin = &NestPacking{}
	if _, ok := pl.(fwk.SignPlugin); ok {
		t.Error("NestPacking implements SignPlugin: opportunistic batching would place VMs on the runner-up of a ranking that NormalizeScore truncates")
	}
}

func TestNewArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    runtime.Object
		wantErr string
	}{
		{name: "no args: defaults", args: nil},
		{name: "JSON args", args: &runtime.Unknown{Raw: []byte(`{"resources":[{"name":"cpu","weight":2},{"name":"memory"}]}`), ContentType: runtime.ContentTypeJSON}},
		{name: "YAML args", args: &runtime.Unknown{Raw: []byte("vmLabelKey: example.com/vm\n"), ContentType: runtime.ContentTypeYAML}},
		{
			// ConfigMaps written for the control-plane filter NestPacking had still load.
			name: "args of the removed control-plane filter are ignored",
			args: &runtime.Unknown{Raw: []byte(`{"clusterNameLabelKey":"cluster.x-k8s.io/cluster-name","roleLabelKey":"cluster.x-k8s.io/role","controlPlaneRoleValue":"control-plane"}`), ContentType: runtime.ContentTypeJSON},
		},
		{
			name:    "invalid args are rejected with their path",
			args:    &runtime.Unknown{Raw: []byte(`{"resources":[{"name":"cpu","weight":101}]}`), ContentType: runtime.ContentTypeJSON},
			wantErr: "invalid NestPacking args: args.resources[0].weight: Invalid value: 101: must be in the range [1, 100]",
		},
		{
			name:    "args of another type are rejected",
			args:    &v1.Pod{},
			wantErr: "decoding NestPacking args: want args of type runtime.Unknown, got *v1.Pod",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			_, err := New(ctx, tt.args, nil)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("New() error = %q, want %q", gotErr, tt.wantErr)
			}
		})
	}
}
