// Package schedconfig reads the KubeSchedulerConfiguration that ships in the nest-scheduler
// ConfigMap manifest, so that tests and benchmarks run the very profile that gets deployed.
package schedconfig

import (
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	"k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"sigs.k8s.io/yaml"
)

// ConfigKey is the ConfigMap key that holds the scheduler configuration file.
const ConfigKey = "scheduler-config.yaml"

// LoadConfigMap reads the ConfigMap manifest at path and returns its scheduler configuration,
// defaulted and validated the way kube-scheduler does with --config.
func LoadConfigMap(path string) (*config.KubeSchedulerConfiguration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scheduler ConfigMap: %w", err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return nil, fmt.Errorf("parsing %s as a ConfigMap: %w", path, err)
	}
	data, ok := cm.Data[ConfigKey]
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s has no key %q", path, ConfigKey)
	}
	return Decode([]byte(data))
}

// Decode decodes a KubeSchedulerConfiguration file into the internal type, with defaults
// applied, and validates it.
func Decode(data []byte) (*config.KubeSchedulerConfiguration, error) {
	obj, gvk, err := scheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding scheduler configuration: %w", err)
	}
	cfg, ok := obj.(*config.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("decoding scheduler configuration: got %s, want KubeSchedulerConfiguration", gvk)
	}
	if err := validation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		return nil, fmt.Errorf("validating scheduler configuration: %w", err)
	}
	return cfg, nil
}
