package sandbox

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// Flavor names a clusterctl flavor of templates/: the tenant cluster design to build.
type Flavor string

// The flavors the sandbox can build.
const (
	// FlavorHA is cluster-template-ha.yaml: one control-plane VM per Infra cluster, one
	// MachineDeployment of worker VMs per Infra cluster.
	FlavorHA Flavor = "ha"
	// FlavorDefault is cluster-template.yaml: control plane and workers are VMs in one Infra cluster.
	FlavorDefault Flavor = "default"
	// FlavorBareMetalWorkers is cluster-template-baremetal-workers.yaml: control-plane VMs and Metal3
	// bare-metal workers in one Infra cluster.
	FlavorBareMetalWorkers Flavor = "baremetal-workers"
	// FlavorOpenShift is cluster-template-openshift.yaml: an OpenShift tenant from installer ignition,
	// three control-plane VMs (and the temporary bootstrap VM) and worker VMs in one Infra cluster.
	FlavorOpenShift Flavor = "openshift"
	// FlavorOpenShiftHA is cluster-template-openshift-ha.yaml: an OpenShift tenant from installer
	// ignition, one control-plane VM per Infra cluster, one MachineDeployment of worker VMs per Infra
	// cluster.
	FlavorOpenShiftHA Flavor = "openshift-ha"
	// FlavorOpenShiftBareMetalWorkers is cluster-template-openshift-baremetal-workers.yaml: an
	// OpenShift tenant from installer ignition, control-plane VMs and Metal3 bare-metal workers in one
	// Infra cluster.
	FlavorOpenShiftBareMetalWorkers Flavor = "openshift-baremetal-workers"
)

// Flavors lists every flavor, for flag help.
var Flavors = []Flavor{FlavorHA, FlavorDefault, FlavorBareMetalWorkers, FlavorOpenShift, FlavorOpenShiftHA, FlavorOpenShiftBareMetalWorkers}

// spreadsWorkers reports whether the flavor has one MachineDeployment per Infra cluster, over which
// the sandbox spreads the tenant's workers.
func (f Flavor) spreadsWorkers() bool { return f == FlavorHA || f == FlavorOpenShiftHA }

// TemplateFile is the clusterctl template of the flavor, relative to the repository root.
func (f Flavor) TemplateFile() (string, error) {
	switch f {
	case FlavorHA:
		return filepath.Join("templates", "cluster-template-ha.yaml"), nil
	case FlavorDefault:
		return filepath.Join("templates", "cluster-template.yaml"), nil
	case FlavorBareMetalWorkers:
		return filepath.Join("templates", "cluster-template-baremetal-workers.yaml"), nil
	case FlavorOpenShift, FlavorOpenShiftHA, FlavorOpenShiftBareMetalWorkers:
		return filepath.Join("templates", "cluster-template-"+string(f)+".yaml"), nil
	}
	return "", fmt.Errorf("unknown flavor %q: want one of %v", f, Flavors)
}

// Options configure a sandbox. The zero value starts three empty Infra clusters and no tenant.
type Options struct {
	// InfraClusters is the number of Infra clusters (failure domains); default 3.
	InfraClusters int
	// NodesPerInfra is the number of fake KubeVirt-capable nodes of each Infra cluster; default 4.
	NodesPerInfra int
	// HostsPerInfra is the number of Metal3 BareMetalHosts of each Infra cluster (labelled
	// role=worker); default 0. Needed by FlavorBareMetalWorkers.
	HostsPerInfra int
	// BootDelay is how long a simulated VM takes from its launcher pod being bound to running.
	BootDelay time.Duration
	// OrphanGracePeriod is how long a NestMachine being deleted waits for an unreachable Infra
	// cluster before it is released (InfraCluster spec.orphanGracePeriodSeconds); default 10s.
	OrphanGracePeriod time.Duration
	// Tenants are created by Start, one after the other, each with its own tenant API server.
	Tenants []TenantOptions
	// Dir receives the kubeconfig files of every cluster; default <repo>/.sandbox. Stop removes the
	// files it wrote.
	Dir string
	// Progress receives one line per change (machine, Infra cluster, node, phase); nil prints nothing.
	Progress io.Writer
	// Log receives the controllers' and simulators' logs; the zero logger discards them.
	Log logr.Logger
	// SchedulerLog receives the output of the nest-scheduler processes; nil discards it.
	SchedulerLog io.Writer
	// NestScheduler is the nest-scheduler binary; default <repo>/bin/nest-scheduler.
	NestScheduler string
	// Consolidate, when set, runs a nest-consolidator beside nest-scheduler in every Infra cluster
	// (its output goes to SchedulerLog); nil runs none, as a default installation does.
	Consolidate *ConsolidatorOptions
	// Clusterctl is the clusterctl binary; default <repo>/bin/clusterctl.
	Clusterctl string
}

// TenantOptions describe one tenant cluster.
type TenantOptions struct {
	// Name of the CAPI Cluster; required.
	Name string
	// Namespace of the tenant's objects in the management cluster; default "default".
	Namespace string
	// Flavor of the template; default FlavorHA.
	Flavor Flavor
	// ControlPlanes is the number of control-plane machines; default 3 for FlavorHA, else 1. The
	// OpenShift flavors always have three (and the bootstrap machine).
	ControlPlanes int
	// Workers is the number of worker machines in all; FlavorHA spreads them over its three
	// MachineDeployments (one per Infra cluster).
	Workers int
	// KubernetesVersion of the machines; default DefaultKubernetesVersion.
	KubernetesVersion string
	// Infra is the Infra cluster of the single-Infra flavors; default the first one.
	Infra string
	// HealthCheck gives the control plane a MachineHealthCheck — the flavor's own (the HA flavors ship
	// them) with HealthCheckTimeout, or else one the sandbox adds — so that a
	// control-plane Node whose Ready condition is Unknown or False for HealthCheckTimeout is
	// remediated by KubeadmControlPlane.
	HealthCheck bool
	// HealthCheckTimeout; default 5s.
	HealthCheckTimeout time.Duration
}

// DefaultKubernetesVersion is the version of the templates' default VM image.
const DefaultKubernetesVersion = "v1.34.1"

func (o Options) withDefaults() (Options, error) {
	if o.InfraClusters <= 0 {
		o.InfraClusters = 3
	}
	if o.InfraClusters > 100 {
		return o, fmt.Errorf("at most 100 Infra clusters, got %d", o.InfraClusters)
	}
	if o.NodesPerInfra <= 0 {
		o.NodesPerInfra = 4
	}
	if o.OrphanGracePeriod <= 0 {
		o.OrphanGracePeriod = 10 * time.Second
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(envtest.RepoRoot(), ".sandbox")
	}
	if o.NestScheduler == "" {
		o.NestScheduler = filepath.Join(envtest.RepoRoot(), "bin", "nest-scheduler")
	}
	if o.Consolidate != nil {
		c := o.Consolidate.withDefaults()
		o.Consolidate = &c
	}
	if o.Clusterctl == "" {
		o.Clusterctl = filepath.Join(envtest.RepoRoot(), "bin", "clusterctl")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.SchedulerLog == nil {
		o.SchedulerLog = io.Discard
	}
	for i := range o.Tenants {
		t, err := o.Tenants[i].withDefaults()
		if err != nil {
			return o, err
		}
		o.Tenants[i] = t
	}
	return o, nil
}

func (t TenantOptions) withDefaults() (TenantOptions, error) {
	if t.Name == "" {
		return t, fmt.Errorf("a tenant needs a name")
	}
	if t.Namespace == "" {
		t.Namespace = "default"
	}
	if t.Flavor == "" {
		t.Flavor = FlavorHA
	}
	if _, err := t.Flavor.TemplateFile(); err != nil {
		return t, err
	}
	if t.ControlPlanes <= 0 {
		t.ControlPlanes = 1
		if t.Flavor == FlavorHA {
			t.ControlPlanes = 3
		}
	}
	if t.Workers < 0 {
		return t, fmt.Errorf("tenant %s: negative worker count %d", t.Name, t.Workers)
	}
	if t.KubernetesVersion == "" {
		t.KubernetesVersion = DefaultKubernetesVersion
	}
	if t.HealthCheckTimeout <= 0 {
		t.HealthCheckTimeout = 5 * time.Second
	}
	return t, nil
}

// InfraName is the name of the i-th (0-based) Infra cluster: its InfraCluster and failure domain.
func InfraName(i int) string { return fmt.Sprintf("infra-%d", i+1) }
