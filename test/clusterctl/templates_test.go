package clusterctl_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	controlplanev1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// testValues are the values the tests give the templates' required variables.
var testValues = map[string]string{
	"NEST_INFRA_CLUSTER":               "infra-a",
	"NEST_INFRA_CLUSTER_1":             "infra-a",
	"NEST_INFRA_CLUSTER_2":             "infra-b",
	"NEST_INFRA_CLUSTER_3":             "infra-c",
	"NEST_CONTROL_PLANE_ENDPOINT_HOST": "10.0.0.10",
	"NEST_CONTROL_PLANE_VIP":           "10.0.0.20",
	"NEST_VM_NETWORK":                  "default/tenant-net",
	"NEST_VM_IMAGE":                    "quay.io/example/flatcar-container-disk:v1.34.1",
	"NEST_BAREMETAL_IMAGE_URL":         "https://images.example.com/ubuntu-2404.qcow2",
	"NEST_BAREMETAL_IMAGE_CHECKSUM":    "https://images.example.com/ubuntu-2404.qcow2.sha256sum",
	"NEST_OPENSHIFT_VERSION":           "4.20.0",
	"NEST_OPENSHIFT_BASE_DOMAIN":       "tenants.example.com",
}

// requiredValues gives a value to every required variable of a template, from testValues.
func requiredValues(t *testing.T, file string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for name, v := range listVariables(t, file) {
		if !v.required || name == "KUBERNETES_VERSION" {
			continue
		}
		value, ok := testValues[name]
		if !ok {
			t.Fatalf("%s needs %s, which the test gives no value: add one to testValues", file, name)
		}
		env[name] = value
	}
	return env
}

// generate runs `clusterctl generate cluster` on a template with its required variables.
func generate(t *testing.T, name, file string, extra ...string) []unstructured.Unstructured {
	t.Helper()
	args := append([]string{"generate", "cluster", name, "--from", file, "--target-namespace", tenantNamespace,
		"--kubernetes-version", kubernetesVersion, "--worker-machine-count", "2"}, extra...)
	return objects(t, clusterctl(t, requiredValues(t, file), args...))
}

// TestEveryFlavorGeneratesObjectsTheManagementClusterAccepts runs `clusterctl generate cluster` on each
// flavor and server-side dry-runs every object into a management cluster with the provider's and
// CAPI's webhooks: schemas (with strict field validation, as kubectl applies: an unknown field is an
// error), CEL rules, defaulting and admission all accept them. A flavor with plain control-plane
// Machines gets its Cluster and NestCluster created for real first, with the NestCluster's failure
// domains as the provider reports them: the spread webhook admits such a Machine only against them.
func TestEveryFlavorGeneratesObjectsTheManagementClusterAccepts(t *testing.T) {
	t.Parallel()
	m := managementCluster(t)
	ctx := context.Background()

	checks := map[string]func(t *testing.T, objs map[string]*unstructured.Unstructured){
		"": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectField(t, objs["NestCluster/t-default"], "infra-a", "spec", "controlPlaneService", "infraCluster")
			expectField(t, objs["NestCluster/t-default"], "ClusterIP", "spec", "controlPlaneService", "type")
			expectField(t, objs["MachineDeployment/t-default-md-0"], "infra-a", "spec", "template", "spec", "failureDomain")
		},
		"baremetal-workers": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectField(t, objs["NestMachineTemplate/t-baremetal-workers-md-0"], testValues["NEST_BAREMETAL_IMAGE_URL"], "spec", "template", "spec", "baremetal", "image", "url")
			expectField(t, objs["NestMachineTemplate/t-baremetal-workers-md-0"], "worker", "spec", "template", "spec", "baremetal", "hostSelector", "matchLabels", "role")
			expectField(t, objs["NestMachineTemplate/t-baremetal-workers-control-plane"], "quay.io/capk/ubuntu-2404-container-disk:v1.34.1", "spec", "template", "spec", "kubevirt", "bootImage", "containerDisk", "image")
		},
		"ha": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectField(t, objs["KubeadmControlPlane/t-ha-control-plane"], 3, "spec", "replicas")
			expectField(t, objs["NestCluster/t-ha"], "10.0.0.10", "spec", "controlPlaneEndpoint", "host")
			for i, infra := range infraClusterNames {
				expectField(t, objs[fmt.Sprintf("MachineDeployment/t-ha-md-%d", i)], infra, "spec", "template", "spec", "failureDomain")
			}
			expectHealthChecks(t, objs, "t-ha")
			if files, _, _ := unstructured.NestedSlice(objs["KubeadmControlPlane/t-ha-control-plane"].Object, "spec", "kubeadmConfigSpec", "files"); len(files) != 0 {
				t.Errorf("the ha flavor writes files %v on the control plane: the endpoint is the user's load balancer, no kube-vip", files)
			}
		},
		"ha-kube-vip": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			vip := testValues["NEST_CONTROL_PLANE_VIP"]
			expectField(t, objs["KubeadmControlPlane/t-ha-kube-vip-control-plane"], 3, "spec", "replicas")
			expectField(t, objs["NestCluster/t-ha-kube-vip"], vip, "spec", "controlPlaneEndpoint", "host")
			expectField(t, objs["NestCluster/t-ha-kube-vip"], 6443, "spec", "controlPlaneEndpoint", "port")
			for i, infra := range infraClusterNames {
				expectField(t, objs[fmt.Sprintf("MachineDeployment/t-ha-kube-vip-md-%d", i)], infra, "spec", "template", "spec", "failureDomain")
			}
			expectHealthChecks(t, objs, "t-ha-kube-vip")
			expectKubeVIP(t, objs["KubeadmControlPlane/t-ha-kube-vip-control-plane"], vip, "enp1s0")
		},
		"ignition": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectField(t, objs["KubeadmControlPlane/t-ignition-control-plane"], "ignition", "spec", "kubeadmConfigSpec", "format")
			expectField(t, objs["KubeadmConfigTemplate/t-ignition-md-0"], "ignition", "spec", "template", "spec", "format")
		},
		"openshift": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectInstallerIgnition(t, objs, installerFlavor{
				cluster: "t-openshift", controlPlane: []string{"infra-a", "infra-a", "infra-a"}, bootstrap: "infra-a",
				workers: map[string]string{"md-0": "infra-a"}, podBridge: true, ingress: true,
			})
		},
		"openshift-baremetal-workers": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectInstallerIgnition(t, objs, installerFlavor{
				cluster: "t-openshift-baremetal-workers", controlPlane: []string{"infra-a", "infra-a", "infra-a"}, bootstrap: "infra-a",
				workers: map[string]string{"md-0": "infra-a"}, multus: true, bareMetalWorkers: true,
			})
		},
		"openshift-ha": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectInstallerIgnition(t, objs, installerFlavor{
				cluster: "t-openshift-ha", controlPlane: infraClusterNames, endpoint: testValues["NEST_CONTROL_PLANE_ENDPOINT_HOST"],
				workers: map[string]string{"md-0": "infra-a", "md-1": "infra-b", "md-2": "infra-c"}, multus: true, ingress: true,
			})
		},
		"openshift-assisted": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectAssisted(t, objs, assistedFlavor{cluster: "t-openshift-assisted", infraClusters: []string{"infra-a"}, workers: map[string]string{"md-0": "infra-a"}, podBridge: true})
		},
		"openshift-assisted-ha": func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			expectAssisted(t, objs, assistedFlavor{
				cluster: "t-openshift-assisted-ha", infraClusters: infraClusterNames, endpoint: testValues["NEST_CONTROL_PLANE_ENDPOINT_HOST"],
				workers: map[string]string{"md-0": "infra-a", "md-1": "infra-b", "md-2": "infra-c"}, multus: true,
			})
		},
	}
	for flavor, file := range flavors(t) {
		if flavor == "topology" {
			continue // TestTopologyFlavorBuildsTheClusterFromClusterClassNest: the Cluster needs its ClusterClass.
		}
		t.Run("flavor="+flavor, func(t *testing.T) {
			name := "t-" + flavor
			if flavor == "" {
				name = "t-default"
			}
			objs := generate(t, name, file, "--control-plane-machine-count", "3")
			byName := map[string]*unstructured.Unstructured{}
			for i := range objs {
				obj := &objs[i]
				byName[obj.GetKind()+"/"+obj.GetName()] = obj
				if obj.GetNamespace() != tenantNamespace {
					t.Errorf("%s/%s is in namespace %q, not the target namespace", obj.GetKind(), obj.GetName(), obj.GetNamespace())
				}
			}
			created := map[string]bool{}
			if slices.ContainsFunc(objs, isControlPlaneMachine) {
				createInfrastructure(t, m, byName["Cluster/"+name], byName["NestCluster/"+name])
				created["Cluster/"+name], created["NestCluster/"+name] = true, true
			}
			for i := range objs {
				obj := &objs[i]
				if created[obj.GetKind()+"/"+obj.GetName()] {
					continue
				}
				admitted := obj.DeepCopy()
				if err := m.Client.Create(ctx, admitted, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
					t.Errorf("the management cluster rejects %s %s: %v", obj.GetKind(), obj.GetName(), err)
					continue
				}
				if fd, _, _ := unstructured.NestedString(admitted.Object, "spec", "failureDomain"); isControlPlaneMachine(*obj) && fd == "" {
					t.Errorf("control-plane Machine %s was admitted without a failure domain: the spread webhook did not place it", obj.GetName())
				}
			}
			for _, kind := range flavorKinds(flavor) {
				if !slices.ContainsFunc(slices.Collect(maps.Keys(byName)), func(k string) bool { return strings.HasPrefix(k, kind+"/") }) {
					t.Errorf("the flavor makes no %s", kind)
				}
			}
			if check, ok := checks[flavor]; ok {
				check(t, byName)
			} else {
				t.Errorf("no check of what flavor %q generates: add one to checks", flavor)
			}
		})
	}
}

// expectField fails the test when obj is missing or its field at path is not want.
func expectField(t *testing.T, obj *unstructured.Unstructured, want any, path ...string) {
	t.Helper()
	if obj == nil {
		t.Errorf("the object whose %s should be %v was not generated", strings.Join(path, "."), want)
		return
	}
	got, found, err := unstructured.NestedFieldNoCopy(obj.Object, path...)
	if err != nil || !found || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s %s: %s is %v (found %v), want %v", obj.GetKind(), obj.GetName(), strings.Join(path, "."), got, found, want)
	}
}

// TestTopologyFlavorBuildsTheClusterFromClusterClassNest generates the topology flavor from a
// clusterctl repository of this release (so clusterctl adds ClusterClass "nest" and its templates),
// creates everything in a management cluster running CAPI's ClusterClass and Cluster topology
// controllers, and checks what the class's patches make: the NestCluster, the control plane and the
// workers. A second Cluster uses the class for the HA design with a bare-metal MachineDeployment.
func TestTopologyFlavorBuildsTheClusterFromClusterClassNest(t *testing.T) {
	t.Parallel()
	m := managementCluster(t)
	repo := localRepository(t, false)
	ctx := context.Background()

	file := flavors(t)["topology"]
	out := clusterctl(t, requiredValues(t, file), "generate", "cluster", "t-topology", "--config", repo.config,
		"--infrastructure", "nest:"+providerVersion, "--flavor", "topology", "--target-namespace", tenantNamespace,
		"--kubernetes-version", kubernetesVersion, "--worker-machine-count", "2")
	objs := objects(t, out)
	var clusters []unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "Cluster" {
			clusters = append(clusters, obj)
			continue
		}
		if err := m.Client.Create(ctx, obj.DeepCopy()); err != nil {
			t.Fatalf("creating %s %s of ClusterClass nest: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	if len(clusters) != 1 || len(objs) < 7 {
		t.Fatalf("clusterctl generated %d objects with %d Clusters: want ClusterClass nest, its templates and one Cluster", len(objs), len(clusters))
	}
	waitClusterClassReconciled(t, m, "nest")
	if err := m.Client.Create(ctx, clusters[0].DeepCopy()); err != nil {
		t.Fatalf("creating the topology Cluster: %v", err)
	}

	t.Run("fully virtualized from the flavor", func(t *testing.T) {
		nc := waitForInfrastructure(t, m, "t-topology")
		if got := nc.Spec.InfraClusters; len(got) != 1 || got[0].Name != "infra-a" {
			t.Errorf("NestCluster infraClusters = %v, want [infra-a] from the infraClusters variable", got)
		}
		if s := nc.Spec.ControlPlaneService; s == nil || s.InfraCluster != "infra-a" || s.Type != "ClusterIP" {
			t.Errorf("NestCluster controlPlaneService = %+v, want a ClusterIP Service in infra-a", s)
		}
		kcp := waitForControlPlane(t, m, "t-topology")
		cp := get(t, m, kcp.Spec.MachineTemplate.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		if img := cp.Spec.Template.Spec.KubeVirt.BootImage.ContainerDisk.Image; img != "quay.io/capk/ubuntu-2404-container-disk:"+kubernetesVersion {
			t.Errorf("control-plane image = %s, want the default image of the Kubernetes version", img)
		}
		md := waitForMachineDeployment(t, m, "t-topology", "md-0")
		if md.Spec.Template.Spec.FailureDomain != "infra-a" || ptrValue(md.Spec.Replicas) != 2 {
			t.Errorf("MachineDeployment md-0: failureDomain %q replicas %d, want infra-a and 2", md.Spec.Template.Spec.FailureDomain, ptrValue(md.Spec.Replicas))
		}
		worker := get(t, m, md.Spec.Template.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		if kv := worker.Spec.Template.Spec.KubeVirt; kv == nil || kv.CPU.Cores != 2 || kv.Memory.String() != "4Gi" {
			t.Errorf("vm-worker template kubevirt = %+v, want 2 cores and 4Gi", kv)
		}
		// The topology controller names each MachineHealthCheck after its target.
		checks := waitForHealthChecks(t, m, "t-topology", 2)
		for _, target := range []struct {
			name             string
			startup, timeout int32
			limit            string
		}{
			{name: kcp.Name, startup: 600, timeout: 300},
			{name: md.Name, startup: 600, timeout: 300, limit: "50%"},
		} {
			i := slices.IndexFunc(checks, func(mhc clusterv1.MachineHealthCheck) bool { return mhc.Name == target.name })
			if i < 0 {
				t.Errorf("ClusterClass nest made no MachineHealthCheck for %s", target.name)
				continue
			}
			c := checks[i].Spec.Checks
			if ptrValue(c.NodeStartupTimeoutSeconds) != target.startup || len(c.UnhealthyNodeConditions) != 2 || ptrValue(c.UnhealthyNodeConditions[0].TimeoutSeconds) != target.timeout {
				t.Errorf("MachineHealthCheck %s of %s: checks %+v, want startup %d s and Ready Unknown/False for %d s", checks[i].Name, target.name, c, target.startup, target.timeout)
			}
			if limit := checks[i].Spec.Remediation.TriggerIf.UnhealthyLessThanOrEqualTo; target.limit != "" && (limit == nil || limit.String() != target.limit) {
				t.Errorf("MachineHealthCheck %s of %s: unhealthyLessThanOrEqualTo %v, want %s", checks[i].Name, target.name, limit, target.limit)
			}
		}
	})

	t.Run("HA with bare-metal workers from the class", func(t *testing.T) {
		cluster := haTopologyCluster(t)
		if err := m.Client.Create(ctx, cluster); err != nil {
			t.Fatalf("creating an HA topology Cluster: %v", err)
		}
		nc := waitForInfrastructure(t, m, cluster.Name)
		if len(nc.Spec.InfraClusters) != 3 || nc.Spec.ControlPlaneService != nil || nc.Spec.ControlPlaneEndpoint.Host != "10.0.0.10" || nc.Spec.ControlPlaneEndpoint.Port != 6443 {
			t.Errorf("NestCluster spec = %+v, want three Infra clusters and the endpoint 10.0.0.10:6443, no Service", nc.Spec)
		}
		kcp := waitForControlPlane(t, m, cluster.Name)
		cp := get(t, m, kcp.Spec.MachineTemplate.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		if n := cp.Spec.Template.Spec.KubeVirt.Networks; len(n) != 1 || n[0].Multus == nil || n[0].Multus.NetworkName != "default/tenant-net" {
			t.Errorf("control-plane networks = %+v, want the vmNetwork Multus network", n)
		}
		if cores := cp.Spec.Template.Spec.KubeVirt.CPU.Cores; cores != 4 {
			t.Errorf("control-plane cores = %d, want 4 from controlPlaneCPUCores", cores)
		}
		vms := waitForMachineDeployment(t, m, cluster.Name, "vms-b")
		vmTemplate := get(t, m, vms.Spec.Template.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{})
		if kv := vmTemplate.Spec.Template.Spec.KubeVirt; kv == nil || len(kv.Networks) != 1 || kv.Memory.String() != "8Gi" {
			t.Errorf("vm-worker template kubevirt = %+v, want the Multus network and 8Gi from the MachineDeployment's override", kv)
		}
		metal := waitForMachineDeployment(t, m, cluster.Name, "metal-c")
		if metal.Spec.Template.Spec.FailureDomain != "infra-c" {
			t.Errorf("bare-metal MachineDeployment failureDomain = %q, want infra-c", metal.Spec.Template.Spec.FailureDomain)
		}
		bm := get(t, m, metal.Spec.Template.Spec.InfrastructureRef.Name, &infrav1.NestMachineTemplate{}).Spec.Template.Spec.BareMetal
		if bm == nil || bm.Image.URL != testValues["NEST_BAREMETAL_IMAGE_URL"] || bm.Image.ChecksumType != "sha256" || bm.Image.DiskFormat != "qcow2" || bm.HostSelector.MatchLabels["role"] != "storage" {
			t.Errorf("baremetal-worker template = %+v, want the baremetalImage and baremetalHostRole variables", bm)
		}
	})
}

// haTopologyCluster is the HA design as a Cluster of ClusterClass nest: three Infra clusters, a
// user-provided endpoint, a shared Multus network, VM workers in one Infra cluster and bare-metal
// workers in another.
func haTopologyCluster(t *testing.T) *clusterv1.Cluster {
	t.Helper()
	variable := func(name, value string) clusterv1.ClusterVariable {
		return clusterv1.ClusterVariable{Name: name, Value: jsonValue(value)}
	}
	replicas := int32(3)
	workers := int32(1)
	return &clusterv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace, Name: "t-ha-topology"},
		Spec: clusterv1.ClusterSpec{
			Topology: clusterv1.Topology{
				ClassRef:     clusterv1.ClusterClassRef{Name: "nest"},
				Version:      kubernetesVersion,
				ControlPlane: clusterv1.ControlPlaneTopology{Replicas: &replicas},
				Variables: []clusterv1.ClusterVariable{
					variable("infraClusters", `["infra-a", "infra-b", "infra-c"]`),
					variable("controlPlaneEndpointHost", `"10.0.0.10"`),
					variable("vmNetwork", `"default/tenant-net"`),
					variable("controlPlaneCPUCores", `4`),
					variable("baremetalHostRole", `"storage"`),
					variable("baremetalImage", fmt.Sprintf(`{"url": %q, "checksum": %q, "checksumType": "sha256"}`,
						testValues["NEST_BAREMETAL_IMAGE_URL"], testValues["NEST_BAREMETAL_IMAGE_CHECKSUM"])),
				},
				Workers: clusterv1.WorkersTopology{MachineDeployments: []clusterv1.MachineDeploymentTopology{
					{
						Class: "vm-worker", Name: "vms-b", Replicas: &workers, FailureDomain: "infra-b",
						Variables: clusterv1.MachineDeploymentVariables{Overrides: []clusterv1.ClusterVariable{variable("workerMemory", `"8Gi"`)}},
					},
					{Class: "baremetal-worker", Name: "metal-c", Replicas: &workers, FailureDomain: "infra-c"},
				}},
			},
		},
	}
}

// waitClusterClassReconciled waits until CAPI's ClusterClass controller has reconciled the class: the
// Cluster webhook admits topology Clusters of reconciled classes only.
func waitClusterClassReconciled(t *testing.T, m *management, name string) {
	t.Helper()
	cc := &clusterv1.ClusterClass{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := m.Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace, Name: name}, cc); err != nil {
			return false, nil
		}
		return cc.Status.ObservedGeneration == cc.Generation && meta.IsStatusConditionTrue(cc.Status.Conditions, clusterv1.ClusterClassVariablesReadyCondition), nil
	})
	if err != nil {
		t.Fatalf("ClusterClass %s was not reconciled: conditions %+v", name, cc.Status.Conditions)
	}
}

// waitFor waits until the object of name exists in the tenant namespace and ok accepts it.
func waitFor[T client.Object](t *testing.T, m *management, name string, obj T, ok func(T) bool) T {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := m.Client.Get(ctx, client.ObjectKey{Namespace: tenantNamespace, Name: name}, obj); err != nil {
			return false, nil
		}
		return ok(obj), nil
	})
	if err != nil {
		t.Fatalf("waiting for %T %s from the topology controller: %v%s", obj, name, err, clusterConditions(m, name))
	}
	return obj
}

func get[T client.Object](t *testing.T, m *management, name string, obj T) T {
	t.Helper()
	if err := m.Client.Get(context.Background(), client.ObjectKey{Namespace: tenantNamespace, Name: name}, obj); err != nil {
		t.Fatalf("getting %T %s: %v", obj, name, err)
	}
	return obj
}

// waitForInfrastructure waits for the NestCluster the topology controller creates for a Cluster.
func waitForInfrastructure(t *testing.T, m *management, cluster string) *infrav1.NestCluster {
	t.Helper()
	c := waitFor(t, m, cluster, &clusterv1.Cluster{}, func(c *clusterv1.Cluster) bool { return c.Spec.InfrastructureRef.Name != "" })
	return waitFor(t, m, c.Spec.InfrastructureRef.Name, &infrav1.NestCluster{}, func(*infrav1.NestCluster) bool { return true })
}

// waitForControlPlane waits for the KubeadmControlPlane the topology controller creates for a Cluster.
func waitForControlPlane(t *testing.T, m *management, cluster string) *controlplanev1.KubeadmControlPlane {
	t.Helper()
	c := waitFor(t, m, cluster, &clusterv1.Cluster{}, func(c *clusterv1.Cluster) bool { return c.Spec.ControlPlaneRef.Name != "" })
	return waitFor(t, m, c.Spec.ControlPlaneRef.Name, &controlplanev1.KubeadmControlPlane{}, func(*controlplanev1.KubeadmControlPlane) bool { return true })
}

// waitForMachineDeployment waits for the MachineDeployment of a topology Cluster's machineDeployments
// entry.
func waitForMachineDeployment(t *testing.T, m *management, cluster, topologyName string) *clusterv1.MachineDeployment {
	t.Helper()
	var md *clusterv1.MachineDeployment
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list := &clusterv1.MachineDeploymentList{}
		if err := m.Client.List(ctx, list, client.InNamespace(tenantNamespace), client.MatchingLabels{
			clusterv1.ClusterNameLabel:                          cluster,
			clusterv1.ClusterTopologyMachineDeploymentNameLabel: topologyName,
		}); err != nil || len(list.Items) != 1 {
			return false, nil
		}
		md = &list.Items[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for MachineDeployment %s of Cluster %s: %v%s", topologyName, cluster, err, clusterConditions(m, cluster))
	}
	return md
}

// waitForHealthChecks waits until the topology controller has created n MachineHealthChecks for a
// Cluster: one for the control plane and one per MachineDeployment whose class has a healthCheck.
func waitForHealthChecks(t *testing.T, m *management, cluster string, n int) []clusterv1.MachineHealthCheck {
	t.Helper()
	list := &clusterv1.MachineHealthCheckList{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := m.Client.List(ctx, list, client.InNamespace(tenantNamespace), client.MatchingLabels{clusterv1.ClusterNameLabel: cluster}); err != nil {
			return false, nil
		}
		return len(list.Items) == n, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d MachineHealthChecks of Cluster %s from the topology controller: have %d: %v%s", n, cluster, len(list.Items), err, clusterConditions(m, cluster))
	}
	return list.Items
}

// clusterConditions describes a Cluster's conditions for a failure message: TopologyReconciled says
// why the topology controller is stuck.
func clusterConditions(m *management, name string) string {
	c := &clusterv1.Cluster{}
	if err := m.Client.Get(context.Background(), client.ObjectKey{Namespace: tenantNamespace, Name: name}, c); err != nil {
		return ""
	}
	var b strings.Builder
	for _, cond := range c.Status.Conditions {
		fmt.Fprintf(&b, "\n  Cluster %s: %s=%s %s: %s", name, cond.Type, cond.Status, cond.Reason, cond.Message)
	}
	return b.String()
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return -1
	}
	return *p
}

func jsonValue(raw string) apiextensionsv1.JSON {
	return apiextensionsv1.JSON{Raw: []byte(raw)}
}

// expectHealthChecks checks the MachineHealthChecks of a generated HA cluster: exactly one selects
// the control-plane Machines and exactly one the Machines of each MachineDeployment (CAPI requires
// that they do not overlap), each with Node conditions and a startup timeout; the workers' stop
// remediating when more than half of their MachineDeployment is unhealthy.
func expectHealthChecks(t *testing.T, objs map[string]*unstructured.Unstructured, cluster string) {
	t.Helper()
	var checks []*clusterv1.MachineHealthCheck
	for _, obj := range objs {
		if obj.GetKind() != "MachineHealthCheck" {
			continue
		}
		mhc := &clusterv1.MachineHealthCheck{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, mhc); err != nil {
			t.Fatalf("MachineHealthCheck %s: %v", obj.GetName(), err)
		}
		checks = append(checks, mhc)
	}
	targets := map[string]labels.Set{
		"the control plane": {clusterv1.ClusterNameLabel: cluster, clusterv1.MachineControlPlaneLabel: ""},
	}
	for name, obj := range objs {
		if obj.GetKind() == "MachineDeployment" {
			md := strings.TrimPrefix(name, "MachineDeployment/")
			targets["MachineDeployment "+md] = labels.Set{clusterv1.ClusterNameLabel: cluster, clusterv1.MachineDeploymentNameLabel: md}
		}
	}
	for _, target := range slices.Sorted(maps.Keys(targets)) {
		var matching []*clusterv1.MachineHealthCheck
		for _, mhc := range checks {
			selector, err := metav1.LabelSelectorAsSelector(&mhc.Spec.Selector)
			if err != nil {
				t.Fatalf("MachineHealthCheck %s: selector: %v", mhc.Name, err)
			}
			if mhc.Spec.ClusterName == cluster && selector.Matches(targets[target]) {
				matching = append(matching, mhc)
			}
		}
		if len(matching) != 1 {
			t.Errorf("%d MachineHealthChecks select the Machines of %s, want exactly one", len(matching), target)
			continue
		}
		mhc := matching[0]
		if len(mhc.Spec.Checks.UnhealthyNodeConditions) == 0 || mhc.Spec.Checks.NodeStartupTimeoutSeconds == nil {
			t.Errorf("MachineHealthCheck %s of %s: checks %+v, want Node conditions and a node startup timeout", mhc.Name, target, mhc.Spec.Checks)
		}
		for _, c := range mhc.Spec.Checks.UnhealthyNodeConditions {
			if c.TimeoutSeconds == nil || *c.TimeoutSeconds != 300 {
				t.Errorf("MachineHealthCheck %s: %s=%s after %v s, want 300 s by default", mhc.Name, c.Type, c.Status, c.TimeoutSeconds)
			}
		}
		limit := mhc.Spec.Remediation.TriggerIf.UnhealthyLessThanOrEqualTo
		if strings.HasPrefix(target, "MachineDeployment") && (limit == nil || limit.String() != "50%") {
			t.Errorf("MachineHealthCheck %s of %s: remediation.triggerIf.unhealthyLessThanOrEqualTo = %v, want 50%%", mhc.Name, target, limit)
		}
	}
}

// expectKubeVIP checks that a KubeadmControlPlane writes kube-vip's static pod: ARP for vip on
// iface, on the API server's port, as the control plane's leader-elected VIP.
func expectKubeVIP(t *testing.T, obj *unstructured.Unstructured, vip, iface string) {
	t.Helper()
	kcp := &controlplanev1.KubeadmControlPlane{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, kcp); err != nil {
		t.Fatalf("KubeadmControlPlane %s: %v", obj.GetName(), err)
	}
	files := kcp.Spec.KubeadmConfigSpec.Files
	i := slices.IndexFunc(files, func(f bootstrapv1.File) bool { return f.Path == "/etc/kubernetes/manifests/kube-vip.yaml" })
	if i < 0 {
		t.Fatalf("KubeadmControlPlane %s writes no /etc/kubernetes/manifests/kube-vip.yaml (files %v)", kcp.Name, files)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict([]byte(files[i].Content), pod); err != nil {
		t.Fatalf("kube-vip.yaml is not a Pod: %v\n%s", err, files[i].Content)
	}
	if pod.Kind != "Pod" || pod.Namespace != "kube-system" || !pod.Spec.HostNetwork || len(pod.Spec.Containers) != 1 {
		t.Fatalf("kube-vip.yaml: %s %s/%s hostNetwork %v with %d containers, want one host-network Pod in kube-system", pod.Kind, pod.Namespace, pod.Name, pod.Spec.HostNetwork, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for name, want := range map[string]string{
		"address": vip, "port": "6443", "vip_arp": "true", "vip_interface": iface, "cp_enable": "true", "vip_leaderelection": "true",
	} {
		if env[name] != want {
			t.Errorf("kube-vip env %s = %q, want %q", name, env[name], want)
		}
	}
	if caps := c.SecurityContext; caps == nil || caps.Capabilities == nil || !slices.Contains(caps.Capabilities.Add, "NET_ADMIN") || !slices.Contains(caps.Capabilities.Add, "NET_RAW") {
		t.Errorf("kube-vip security context %+v: ARP needs NET_ADMIN and NET_RAW", c.SecurityContext)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/kube-vip/kube-vip:") {
		t.Errorf("kube-vip image = %s", c.Image)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].HostPath == nil || pod.Spec.Volumes[0].HostPath.Path != "/etc/kubernetes/admin.conf" {
		t.Errorf("kube-vip volumes %+v, want the node's admin.conf", pod.Spec.Volumes)
	}
	// The first machine swaps in super-admin.conf for kubeadm init and back afterwards.
	if pre := strings.Join(kcp.Spec.KubeadmConfigSpec.PreKubeadmCommands, "\n"); !strings.Contains(pre, "super-admin.conf") {
		t.Errorf("preKubeadmCommands %q do not give kube-vip super-admin.conf during kubeadm init", pre)
	}
	if post := strings.Join(kcp.Spec.KubeadmConfigSpec.PostKubeadmCommands, "\n"); !strings.Contains(post, "path: /etc/kubernetes/admin.conf") {
		t.Errorf("postKubeadmCommands %q do not give kube-vip admin.conf back", post)
	}
}
