package main

import (
	"flag"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// deployment is the shipped Deployment of the consolidator.
const deployment = "../../../config/consolidator/deployment.yaml"

func parse(t *testing.T, args ...string) (*options, error) {
	t.Helper()
	fs := flag.NewFlagSet("nest-consolidator", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return o, o.complete()
}

// TestTheShippedDeploymentRunsTheDefaults parses the command of config/consolidator's Deployment:
// its flags are valid, they are the defaults (so that the manifest documents them), and its
// probes and ports are those the flags serve.
func TestTheShippedDeploymentRunsTheDefaults(t *testing.T) {
	data, err := os.ReadFile(deployment)
	if err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := yaml.UnmarshalStrict(data, d); err != nil {
		t.Fatalf("%s: %v", deployment, err)
	}
	containers := d.Spec.Template.Spec.Containers
	if len(containers) != 1 || len(containers[0].Command) == 0 || containers[0].Command[0] != "/nest-consolidator" {
		t.Fatalf("%s: want one container running /nest-consolidator, got %+v", deployment, containers)
	}
	c := containers[0]
	shipped, err := parse(t, c.Command[1:]...)
	if err != nil {
		t.Fatalf("the Deployment's flags %q: %v", c.Command[1:], err)
	}
	defaults, err := parse(t)
	if err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	if diff := cmp.Diff(defaults, shipped, cmp.AllowUnexported(options{})); diff != "" {
		t.Errorf("the Deployment's flags are not the defaults (-defaults +deployment):\n%s", diff)
	}
	if !shipped.leaderElect || shipped.consolidator.Cordon {
		t.Errorf("the Deployment runs with --leader-elect=%t --cordon=%t, want leader election on and cordoning off", shipped.leaderElect, shipped.consolidator.Cordon)
	}

	port := func(addr string) int32 {
		_, p, _ := strings.Cut(addr, ":")
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			t.Fatalf("address %q: %v", addr, err)
		}
		return int32(n)
	}
	named := func(name string) int32 {
		i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == name })
		if i < 0 {
			t.Fatalf("the container has no port named %s: %+v", name, c.Ports)
		}
		return c.Ports[i].ContainerPort
	}
	if got, want := named("metrics"), port(shipped.metricsAddr); got != want {
		t.Errorf("the metrics port is %d, --metrics-bind-address %s", got, shipped.metricsAddr)
	}
	if got, want := named("healthz"), port(shipped.probeAddr); got != want {
		t.Errorf("the healthz port is %d, --health-probe-bind-address %s", got, shipped.probeAddr)
	}
	for path, probe := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "healthz" {
			t.Errorf("want a probe of %s on the healthz port, got %+v", path, probe)
		}
	}
}

// TestInvalidFlagsAreRejectedByName checks that each invalid flag is refused with an error that
// names it, and that "0" disables the endpoints.
func TestInvalidFlagsAreRejectedByName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args: []string{"--interval", "0s"}, want: "--interval must be positive"},
		{args: []string{"--interval=-1m"}, want: "--interval must be positive"},
		{args: []string{"--max-in-flight", "0"}, want: "--max-in-flight must be at least 1"},
		{args: []string{"--failed-move-backoff", "0s"}, want: "--failed-move-backoff must be positive"},
		{args: []string{"--failed-move-backoff=-1h"}, want: "--failed-move-backoff must be positive"},
		{args: []string{"--scheduler-name="}, want: "--scheduler-name must not be empty"},
		{args: []string{"--default-eviction-strategy", "Migrate"}, want: `--default-eviction-strategy "Migrate" is not a KubeVirt evictionStrategy`},
		{args: []string{"--leader-election-namespace="}, want: "--leader-election-namespace must not be empty"},
		{args: []string{"--metrics-bind-address", "8443"}, want: `--metrics-bind-address "8443"`},
		{args: []string{"--health-probe-bind-address", "localhost"}, want: `--health-probe-bind-address "localhost"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parse(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %s", err, tc.want)
			}
		})
	}

	// What the integration test of the binary runs.
	o, err := parse(t, "--kubeconfig", "/dev/null", "--interval", "2s", "--max-in-flight", "2", "--leader-elect=false",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--cordon", "--default-eviction-strategy", "LiveMigrate")
	if err != nil {
		t.Fatalf("valid flags refused: %v", err)
	}
	if o.leaderElect || !o.consolidator.Cordon || o.consolidator.DefaultEvictionStrategy == nil || *o.consolidator.DefaultEvictionStrategy != "LiveMigrate" {
		t.Errorf("parsed %+v", o)
	}
	if _, err := parse(t, "--leader-elect=false", "--leader-election-namespace="); err != nil {
		t.Errorf("no lease namespace is needed without leader election: %v", err)
	}
}
