// Package integration runs nest-scheduler for real — scheduler.New and Run with the shipped
// profile, informers and a clientset — against a real kube-apiserver and etcd, over fake Nodes.
package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/internal/bench"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/internal/schedconfig"
	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

const (
	// configMap is the shipped scheduler configuration; the tests run its profile unchanged.
	configMap     = "../../../config/scheduler/configmap.yaml"
	schedulerName = "nest-scheduler"
	// suiteLabel keeps each test's pods on that test's nodes, whatever another test left behind.
	suiteLabel = "nest.test/suite"
	timeout    = 30 * time.Second
)

var (
	startOnce sync.Once
	env       *envtest.Environment
	envConfig *rest.Config
	startErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping kube-apiserver and etcd: %v\n", err)
		}
	}
	os.Exit(code)
}

// apiServer starts kube-apiserver and etcd on first use and returns a client config for them.
// A missing KUBEBUILDER_ASSETS fails the test: skipping would pass a run that tested nothing.
func apiServer(t *testing.T) *rest.Config {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set. These tests need a real kube-apiserver and etcd: " +
			"set KUBEBUILDER_ASSETS to the directory holding both binaries (the repository's bin/k8s).")
	}
	startOnce.Do(func() {
		env = &envtest.Environment{BinaryAssetsDirectory: assets}
		envConfig, startErr = env.Start()
	})
	if startErr != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, startErr)
	}
	return envConfig
}

// startScheduler runs the shipped nest-scheduler profile in-process until the test ends, wired
// the way kube-scheduler's app.Run wires it (minus leader election and the HTTP endpoints). It
// returns once the scheduler's informers have synced and its handlers have seen what is already
// in the API server, so that its first decision is made on the state the test set up.
func startScheduler(t *testing.T, restConfig *rest.Config) {
	t.Helper()
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2)))
	ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), logger))

	cfg, err := schedconfig.LoadConfigMap(configMap)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(restConfig)
	informerFactory := scheduler.NewInformerFactory(client, 0, nil)
	dynInformerFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(restConfig), 0, v1.NamespaceAll, nil)
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	sched, err := scheduler.New(ctx, client, informerFactory, dynInformerFactory, profile.NewRecorderFactory(broadcaster),
		scheduler.WithProfiles(cfg.Profiles...),
		scheduler.WithFrameworkOutOfTreeRegistry(frameworkruntime.Registry{nestpacking.Name: nestpacking.New}),
		scheduler.WithPercentageOfNodesToScore(cfg.PercentageOfNodesToScore),
		scheduler.WithPodInitialBackoffSeconds(cfg.PodInitialBackoffSeconds),
		scheduler.WithPodMaxBackoffSeconds(cfg.PodMaxBackoffSeconds),
	)
	if err != nil {
		cancel()
		t.Fatalf("creating scheduler: %v", err)
	}
	broadcaster.StartRecordingToSink(ctx.Done())
	informerFactory.Start(ctx.Done())
	dynInformerFactory.Start(ctx.Done())
	informerFactory.WaitForCacheSync(ctx.Done())
	dynInformerFactory.WaitForCacheSync(ctx.Done())
	if err := sched.WaitForHandlersSync(ctx); err != nil {
		cancel()
		t.Fatalf("waiting for the scheduler's event handlers: %v", err)
	}
	done := make(chan struct{})
	go func() {
		sched.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		broadcaster.Shutdown()
	})
}

// createNodes registers Ready, untainted nodes of 64 CPUs and 256Gi, labelled for suite.
func createNodes(ctx context.Context, t *testing.T, client kubernetes.Interface, suite string, names ...string) {
	t.Helper()
	allocatable := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse("64"),
		v1.ResourceMemory: resource.MustParse("256Gi"),
		v1.ResourcePods:   resource.MustParse("110"),
	}
	for _, name := range names {
		node := &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{suiteLabel: suite, v1.LabelHostname: name}},
			Status: v1.NodeStatus{
				Capacity:    allocatable,
				Allocatable: allocatable,
				Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
			},
		}
		created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating node %s: %v", name, err)
		}
		// Admission taints every new node not-ready until its kubelet reports; there is none.
		created.Spec.Taints = nil
		if _, err := client.CoreV1().Nodes().Update(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("removing the not-ready taint of node %s: %v", name, err)
		}
		t.Cleanup(func() {
			if err := client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting node %s: %v", name, err)
			}
		})
	}
}

func createNamespace(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// vmPod is a virt-launcher pod asking for cpu and memory, for nest-scheduler, on suite's nodes.
// A non-empty nodeName places it directly, as a VM already running there.
func vmPod(namespace, name, suite, nodeName, cpu, memory string, labels map[string]string) *v1.Pod {
	l := map[string]string{"kubevirt.io": "virt-launcher"}
	for k, v := range labels {
		l[k] = v
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: l},
		Spec: v1.PodSpec{
			SchedulerName: schedulerName,
			NodeName:      nodeName,
			NodeSelector:  map[string]string{suiteLabel: suite},
			Containers: []v1.Container{{
				Name:  "compute",
				Image: "quay.io/kubevirt/virt-launcher",
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{
					v1.ResourceCPU:    resource.MustParse(cpu),
					v1.ResourceMemory: resource.MustParse(memory),
				}},
			}},
		},
	}
}

func createPod(ctx context.Context, t *testing.T, client kubernetes.Interface, pod *v1.Pod) {
	t.Helper()
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// waitForNode waits until the scheduler has bound the pod and returns its node.
func waitForNode(ctx context.Context, t *testing.T, client kubernetes.Interface, namespace, name string) string {
	t.Helper()
	var nodeName string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		nodeName = pod.Spec.NodeName
		return nodeName != "", nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s was not bound to a node within %v: %v", namespace, name, timeout, err)
	}
	return nodeName
}

// waitForUnschedulable waits until the scheduler has marked the pod unschedulable and returns
// the condition's message, which names the plugins that rejected it.
func waitForUnschedulable(ctx context.Context, t *testing.T, client kubernetes.Interface, namespace, name string) string {
	t.Helper()
	var message string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pod.Spec.NodeName != "" {
			return false, fmt.Errorf("pod was bound to %s", pod.Spec.NodeName)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
				message = c.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s was not reported unschedulable within %v: %v", namespace, name, timeout, err)
	}
	return message
}

// TestPackingFillsTheFullestFittingNode places VMs one at a time next to VMs already running:
// each goes to the fullest node it fits on, and nodes without VMs stay empty.
func TestPackingFillsTheFullestFittingNode(t *testing.T) {
	ctx := t.Context()
	restConfig := apiServer(t)
	client := kubernetes.NewForConfigOrDie(restConfig)
	const suite, ns = "packing", "packing"
	createNamespace(ctx, t, client, ns)
	createNodes(ctx, t, client, suite, "pack-empty-1", "pack-half", "pack-quarter", "pack-empty-2")
	createPod(ctx, t, client, vmPod(ns, "running-half", suite, "pack-half", "32", "128Gi", nil))
	createPod(ctx, t, client, vmPod(ns, "running-quarter", suite, "pack-quarter", "16", "64Gi", nil))
	startScheduler(t, restConfig)

	steps := []struct {
		name, cpu, memory string
		want              string
		why               string
	}{
		{"vm-1", "4", "16Gi", "pack-half", "the fullest node"},
		{"vm-2", "28", "112Gi", "pack-half", "fills pack-half exactly"},
		{"vm-3", "8", "32Gi", "pack-quarter", "pack-half is full; pack-quarter is the fullest that fits"},
		{"vm-4", "40", "160Gi", "pack-quarter", "fills pack-quarter exactly"},
		{"vm-5", "2", "8Gi", "", "every VM host is full: an empty node must be opened"},
	}
	for _, s := range steps {
		createPod(ctx, t, client, vmPod(ns, s.name, suite, "", s.cpu, s.memory, nil))
		got := waitForNode(ctx, t, client, ns, s.name)
		if s.want != "" && got != s.want {
			t.Fatalf("%s (%s CPU, %s) went to %s, want %s: %s", s.name, s.cpu, s.memory, got, s.want, s.why)
		}
		if s.want == "" && got != "pack-empty-1" && got != "pack-empty-2" {
			t.Fatalf("%s went to %s, want one of the empty nodes: %s", s.name, got, s.why)
		}
	}

	opened := waitForNode(ctx, t, client, ns, "vm-5")
	createPod(ctx, t, client, vmPod(ns, "vm-6", suite, "", "2", "8Gi", nil))
	if got := waitForNode(ctx, t, client, ns, "vm-6"); got != opened {
		t.Errorf("vm-6 went to %s, want %s: the node opened for vm-5 is the only VM host with room; the other empty node must stay empty", got, opened)
	}
}

// TestControlPlaneVMsOfOneClusterSpread schedules the control plane of a tenant cluster onto three
// nodes: packing alone would stack the three VMs on one node. The VMs carry the required pod
// anti-affinity the provider renders, and nothing else keeps them apart: the shipped profile must
// keep InterPodAffinity, and NestPacking must not score a VM onto a node the rule excludes.
func TestControlPlaneVMsOfOneClusterSpread(t *testing.T) {
	ctx := t.Context()
	restConfig := apiServer(t)
	client := kubernetes.NewForConfigOrDie(restConfig)
	const suite, ns = "spread", "tenant-a"
	createNamespace(ctx, t, client, ns)
	createNamespace(ctx, t, client, "tenant-b")
	createNodes(ctx, t, client, suite, "spread-1", "spread-2", "spread-3")
	startScheduler(t, restConfig)
	cp := func(namespace, name string) *v1.Pod {
		pod := vmPod(namespace, name, suite, "", "4", "16Gi", map[string]string{
			"cluster.x-k8s.io/cluster-name": "prod",
			"cluster.x-k8s.io/role":         "control-plane",
		})
		pod.Spec.Affinity = bench.ControlPlaneAntiAffinity("prod")
		return pod
	}

	nodeOf := map[string]string{}
	for _, name := range []string{"cp-0", "cp-1", "cp-2"} {
		createPod(ctx, t, client, cp(ns, name))
		node := waitForNode(ctx, t, client, ns, name)
		if other, taken := nodeOf[node]; taken {
			t.Fatalf("%s went to %s, which already runs %s of the same cluster", name, node, other)
		}
		nodeOf[node] = name
	}

	createPod(ctx, t, client, cp(ns, "cp-3"))
	msg := waitForUnschedulable(ctx, t, client, ns, "cp-3")
	if !strings.Contains(msg, "3 node(s) didn't match pod anti-affinity rules") {
		t.Errorf("cp-3 is unschedulable for another reason than the spread rule: %q", msg)
	}

	// Another namespace's cluster of the same name is another tenant: the rule does not apply.
	createPod(ctx, t, client, cp("tenant-b", "cp-0"))
	waitForNode(ctx, t, client, "tenant-b", "cp-0")

	// Deleting a control-plane VM frees its node; InterPodAffinity's queueing hint requeues cp-3.
	if err := client.CoreV1().Pods(ns).Delete(ctx, "cp-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatalf("deleting cp-1: %v", err)
	}
	freed := ""
	for node, name := range nodeOf {
		if name == "cp-1" {
			freed = node
		}
	}
	if got := waitForNode(ctx, t, client, ns, "cp-3"); got != freed {
		t.Errorf("cp-3 went to %s after cp-1 left %s, want %s", got, freed, freed)
	}
}
