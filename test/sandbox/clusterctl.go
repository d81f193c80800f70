package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// fieldOwner is the field manager of what the sandbox applies.
const fieldOwner = client.FieldOwner("nest-sandbox")

// generate runs the real `clusterctl generate cluster` on the tenant's flavor and returns the objects.
func (s *Sandbox) generate(ctx context.Context, t *Tenant) ([]*unstructured.Unstructured, error) {
	if _, err := os.Stat(s.opts.Clusterctl); err != nil {
		return nil, fmt.Errorf("no clusterctl at %s: run 'make clusterctl': %w", s.opts.Clusterctl, err)
	}
	template, err := t.Flavor.TemplateFile()
	if err != nil {
		return nil, err
	}
	host, port, err := t.endpoint()
	if err != nil {
		return nil, err
	}
	workers := t.Workers
	if t.Flavor.spreadsWorkers() {
		// One MachineDeployment per Infra cluster, each with --worker-machine-count replicas: the
		// total is spread over them after generation.
		workers = 0
	}
	infra := t.Infra
	if infra == "" {
		infra = InfraName(0)
	}
	home, err := os.MkdirTemp(s.tmp, "clusterctl-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, s.opts.Clusterctl, "generate", "cluster", t.Name,
		"--from", filepath.Join(envtest.RepoRoot(), template),
		"--kubernetes-version", t.KubernetesVersion,
		"--control-plane-machine-count", strconv.Itoa(t.ControlPlanes),
		"--worker-machine-count", strconv.Itoa(workers),
		"--target-namespace", t.Namespace,
	)
	cmd.Env = append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"CLUSTERCTL_DISABLE_VERSIONCHECK=true",
		"NEST_INFRA_CLUSTER="+infra,
		"NEST_CONTROL_PLANE_MACHINE_COUNT="+strconv.Itoa(t.ControlPlanes),
		"NEST_CONTROL_PLANE_ENDPOINT_HOST="+host,
		"NEST_CONTROL_PLANE_ENDPOINT_PORT="+port,
		"NEST_VM_NETWORK=tenant-network",
		// Flavors with MachineHealthChecks: the sandbox's timeouts (its Infra clusters are lost in seconds).
		fmt.Sprintf("NEST_CONTROL_PLANE_UNHEALTHY_SECONDS=%d", int(t.HealthCheckTimeout/time.Second)),
		// No load balancer in the sandbox's Infra clusters: the control-plane Service is a NodePort.
		"NEST_CONTROL_PLANE_SERVICE_TYPE=NodePort",
		"NEST_BAREMETAL_IMAGE_URL=http://images.sandbox.invalid/ubuntu-2404-kube-"+t.KubernetesVersion+".qcow2",
		"NEST_BAREMETAL_IMAGE_CHECKSUM=http://images.sandbox.invalid/ubuntu-2404-kube-"+t.KubernetesVersion+".qcow2.sha256sum",
	)
	for i := range s.Infras {
		cmd.Env = append(cmd.Env, fmt.Sprintf("NEST_INFRA_CLUSTER_%d=%s", i+1, s.Infras[i].Name))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("clusterctl generate cluster %s --from %s: %w: %s", t.Name, template, err, stderr.String())
	}
	objs, err := decodeObjects(out)
	if err != nil {
		return nil, fmt.Errorf("reading what clusterctl generated: %w", err)
	}
	return objs, t.adapt(objs)
}

// adapt makes the sandbox's changes to the generated objects: the KubeadmControlPlane uses the
// tenant API server's etcd as an external etcd, and the HA flavors' workers are spread over their
// MachineDeployments.
func (t *Tenant) adapt(objs []*unstructured.Unstructured) error {
	var mds []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "KubeadmControlPlane":
			if err := unstructured.SetNestedMap(o.Object, t.externalEtcd(), "spec", "kubeadmConfigSpec", "clusterConfiguration", "etcd", "external"); err != nil {
				return fmt.Errorf("setting the external etcd of %s: %w", o.GetName(), err)
			}
		case "MachineDeployment":
			mds = append(mds, o)
		}
	}
	if !t.Flavor.spreadsWorkers() {
		return nil
	}
	if len(mds) == 0 {
		return fmt.Errorf("the %s flavor generated no MachineDeployment", t.Flavor)
	}
	for i, md := range mds {
		replicas := t.Workers / len(mds)
		if i < t.Workers%len(mds) {
			replicas++
		}
		if err := unstructured.SetNestedField(md.Object, int64(replicas), "spec", "replicas"); err != nil {
			return fmt.Errorf("setting the replicas of %s: %w", md.GetName(), err)
		}
	}
	return nil
}

// decodeObjects reads a multi-document YAML stream.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// apply server-side applies objects in order.
func apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), fieldOwner, client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}
