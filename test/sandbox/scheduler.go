package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// SchedulerName is the scheduler profile of config/scheduler/configmap.yaml that places VMs; every
// InfraCluster of the sandbox puts it on its VMs.
const SchedulerName = "nest-scheduler"

// schedulerConfigMap is the shipped configuration of nest-scheduler.
func schedulerConfigMap() string {
	return filepath.Join(envtest.RepoRoot(), "config", "scheduler", "configmap.yaml")
}

// schedulerConfig is the shipped KubeSchedulerConfiguration, changed only where one process per
// Infra cluster on one machine needs it: no leader election (one replica), the kubeconfig of its
// Infra cluster.
func schedulerConfig(kubeconfig string) ([]byte, error) {
	raw, err := os.ReadFile(schedulerConfigMap())
	if err != nil {
		return nil, fmt.Errorf("reading the scheduler configuration: %w", err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.Unmarshal(raw, cm); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", schedulerConfigMap(), err)
	}
	data, ok := cm.Data["scheduler-config.yaml"]
	if !ok {
		return nil, fmt.Errorf("%s has no scheduler-config.yaml", schedulerConfigMap())
	}
	cfg := map[string]any{}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		return nil, fmt.Errorf("decoding the KubeSchedulerConfiguration of %s: %w", schedulerConfigMap(), err)
	}
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	conn, _ := cfg["clientConnection"].(map[string]any)
	if conn == nil {
		conn = map[string]any{}
	}
	conn["kubeconfig"] = kubeconfig
	// The simulators and the provider create VMs in bursts; the default 50 QPS would be the
	// bottleneck of the benchmark, not the scheduler.
	conn["qps"] = 500
	conn["burst"] = 1000
	cfg["clientConnection"] = conn
	return yaml.Marshal(cfg)
}

// startScheduler runs bin/nest-scheduler against the Infra cluster whose kubeconfig is at
// kubeconfig, writing its configuration into dir.
func startScheduler(binary, dir, kubeconfig string, out io.Writer) (*process, error) {
	cfg, err := schedulerConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "scheduler-config.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("writing the scheduler configuration: %w", err)
	}
	return startProcess("nest-scheduler", binary, "make -C scheduler-plugin build", []string{
		"--config=" + path,
		// No serving: three schedulers share this machine's ports, and nothing probes them.
		"--secure-port=0",
		"--v=1",
	}, out)
}
