package sandbox

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// cloudConfig is the shape of the init cloud-config CABPK writes (bootstrap/kubeadm/pkg/cloudinit).
const cloudConfig = `## template: jinja
#cloud-config

write_files:
-   path: /etc/kubernetes/pki/ca.crt
    owner: root:root
    permissions: '0640'
    content: |
      -----BEGIN CERTIFICATE-----
-   path: /run/kubeadm/kubeadm.yaml
    owner: root:root
    permissions: '0640'
    content: |
      ---
      apiVersion: kubeadm.k8s.io/v1beta4
      kind: ClusterConfiguration
      clusterName: ha
      controlPlaneEndpoint: 127.0.0.1:6443
      kubernetesVersion: v1.34.1
      ---
      apiVersion: kubeadm.k8s.io/v1beta4
      kind: InitConfiguration
      nodeRegistration:
        name: '{{ local_hostname }}'
runcmd:
  - 'kubeadm init --config /run/kubeadm/kubeadm.yaml  && echo success > /run/cluster-api/bootstrap-success.complete'
`

func TestKubeadmInitStoresTheClusterConfigurationOfTheBootstrapData(t *testing.T) {
	init, cc := kubeadmInit([]byte(cloudConfig))
	if !init {
		t.Fatal("an init cloud-config runs kubeadm init")
	}
	for _, want := range []string{"kind: ClusterConfiguration", "kubernetesVersion: v1.34.1", "clusterName: ha"} {
		if !strings.Contains(cc, want) {
			t.Errorf("ClusterConfiguration %q lacks %q", cc, want)
		}
	}
	if strings.Contains(cc, "InitConfiguration") {
		t.Errorf("only the ClusterConfiguration document is kept, got %q", cc)
	}

	join := strings.ReplaceAll(cloudConfig, "kubeadm init --config /run/kubeadm/kubeadm.yaml", "kubeadm join --config /run/kubeadm/kubeadm-join-config.yaml")
	if init, _ := kubeadmInit([]byte(join)); init {
		t.Error("a join cloud-config does not initialise the cluster")
	}
}

func TestSchedulerConfigIsTheShippedProfileWithoutLeaderElection(t *testing.T) {
	raw, err := schedulerConfig("/tmp/infra-1.kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Kind           string `json:"kind"`
		LeaderElection struct {
			LeaderElect bool `json:"leaderElect"`
		} `json:"leaderElection"`
		ClientConnection struct {
			Kubeconfig string `json:"kubeconfig"`
		} `json:"clientConnection"`
		Profiles []struct {
			SchedulerName string `json:"schedulerName"`
		} `json:"profiles"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != "KubeSchedulerConfiguration" || cfg.LeaderElection.LeaderElect || cfg.ClientConnection.Kubeconfig != "/tmp/infra-1.kubeconfig" {
		t.Errorf("got %+v", cfg)
	}
	if len(cfg.Profiles) != 1 || cfg.Profiles[0].SchedulerName != SchedulerName {
		t.Errorf("the shipped profile %s is kept, got %+v", SchedulerName, cfg.Profiles)
	}
	if !strings.Contains(string(raw), "NestPacking") {
		t.Error("the NestPacking plugin stays enabled")
	}
}

func TestAdaptGivesTheControlPlaneAnExternalEtcdAndSpreadsTheWorkers(t *testing.T) {
	kcp := &unstructured.Unstructured{Object: map[string]any{"kind": "KubeadmControlPlane", "metadata": map[string]any{"name": "ha-control-plane"}}}
	var objs []*unstructured.Unstructured
	objs = append(objs, kcp)
	for _, name := range []string{"ha-md-0", "ha-md-1", "ha-md-2"} {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"kind": "MachineDeployment", "metadata": map[string]any{"name": name}}})
	}
	tenant := &Tenant{TenantOptions: TenantOptions{Name: "ha", Flavor: FlavorHA, Workers: 4}}
	if err := tenant.adapt(objs); err != nil {
		t.Fatal(err)
	}
	endpoints, found, err := unstructured.NestedStringSlice(kcp.Object, "spec", "kubeadmConfigSpec", "clusterConfiguration", "etcd", "external", "endpoints")
	if err != nil || !found || len(endpoints) != 1 {
		t.Errorf("external etcd endpoints: %v %v %v", endpoints, found, err)
	}
	var replicas []int64
	for _, md := range objs[1:] {
		n, _, _ := unstructured.NestedInt64(md.Object, "spec", "replicas")
		replicas = append(replicas, n)
	}
	if got := replicas; got[0] != 2 || got[1] != 1 || got[2] != 1 {
		t.Errorf("4 workers over three MachineDeployments: want [2 1 1], got %v", got)
	}
}
