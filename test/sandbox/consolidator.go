package sandbox

import (
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// ConsolidatorOptions configure the nest-consolidator processes of the sandbox (Options.Consolidate).
type ConsolidatorOptions struct {
	// Binary is the nest-consolidator binary; default <repo>/bin/nest-consolidator.
	Binary string
	// Interval between two plans; default 10s (the shipped 5 minutes is too slow to watch).
	Interval time.Duration
	// MaxInFlight is the most migrations running at once per Infra cluster; default 2.
	MaxInFlight int
	// Cordon cordons the nodes a plan empties.
	Cordon bool
}

func (o ConsolidatorOptions) withDefaults() ConsolidatorOptions {
	if o.Binary == "" {
		o.Binary = filepath.Join(envtest.RepoRoot(), "bin", "nest-consolidator")
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 2
	}
	return o
}

// consolidatorArgs are the flags of a nest-consolidator that plans for the Infra cluster of
// kubeconfig: nest-scheduler's VMs, no leader election (one replica), nothing served (several
// processes share this machine's ports, and nothing scrapes or probes them).
func consolidatorArgs(kubeconfig string, o ConsolidatorOptions) []string {
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--interval=" + o.Interval.String(),
		"--max-in-flight=" + strconv.Itoa(o.MaxInFlight),
		"--scheduler-name=" + SchedulerName,
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
	}
	if o.Cordon {
		args = append(args, "--cordon")
	}
	return args
}

// startConsolidator runs a nest-consolidator against the Infra cluster whose kubeconfig is at
// kubeconfig.
func startConsolidator(kubeconfig string, o ConsolidatorOptions, out io.Writer) (*process, error) {
	return startProcess("nest-consolidator", o.Binary, "make -C scheduler-plugin build", consolidatorArgs(kubeconfig, o), out)
}
