package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
	kvsim "github.com/nestcapi/cluster-api-provider-nest/test/sim/kubevirt"
	metal3sim "github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// Infra is one simulated Infra cluster: a real API server with KubeVirt, CDI and Metal3 CRDs, fake
// KubeVirt-capable nodes, the KubeVirt simulator and a real nest-scheduler process placing the
// virt-launcher pods.
type Infra struct {
	// Name of the InfraCluster and failure domain.
	Name string
	// Env is the Infra cluster's API server.
	Env *envtest.Environment
	// Kubeconfig is the path of its admin kubeconfig.
	Kubeconfig string

	dir       string
	sim       *kvsim.Simulator
	metal3    *metal3sim.Simulator
	nsDone    chan error
	scheduler *process
	// consolidator is its nest-consolidator, with Options.Consolidate.
	consolidator *process
	// cancel stops the simulators and the namespace controller.
	cancel context.CancelFunc

	mu   sync.Mutex
	lost bool
}

// Lost reports whether the Infra cluster's API server is stopped by LoseInfra.
func (in *Infra) Lost() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lost
}

// startInfra starts what runs against an Infra API server env: nodes, simulators, scheduler.
func (s *Sandbox) startInfra(ctx context.Context, i int, env *envtest.Environment) (*Infra, error) {
	in := &Infra{Name: InfraName(i), Env: env, dir: filepath.Join(s.tmp, InfraName(i))}
	if err := os.MkdirAll(in.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", in.Name, err)
	}
	in.Kubeconfig = filepath.Join(s.opts.Dir, in.Name+".kubeconfig")
	if err := s.writeFile(in.Kubeconfig, env.KubeConfig); err != nil {
		return nil, err
	}
	if _, err := nodes.Create(ctx, env.Client, nodes.Options{
		Prefix:   in.Name + "-node",
		Count:    s.opts.NodesPerInfra,
		KubeVirt: true,
		// Distinct node addresses per Infra cluster, as on distinct networks.
		Address: func(n int) string { return fmt.Sprintf("192.168.%d.%d", i+1, n+10) },
	}); err != nil {
		return nil, fmt.Errorf("creating the nodes of %s: %w", in.Name, err)
	}
	simCtx, cancel := context.WithCancel(ctx)
	in.cancel = cancel
	var err error
	in.sim, err = kvsim.Run(simCtx, env.Config, kvsim.Options{
		ID:        uint8(i + 1),
		BootDelay: s.opts.BootDelay,
		OnRunning: func(ctx context.Context, vmi *vmi) error { return s.guest.vmiBooted(ctx, in, vmi) },
		OnDeleted: func(ctx context.Context, vmi *vmi) error { return s.guest.shutdown(ctx, in, vmi) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting the KubeVirt simulator of %s: %w", in.Name, err)
	}
	in.nsDone = make(chan error, 1)
	if err := runInfraControllers(simCtx, env.Config, i, in.nsDone); err != nil {
		cancel()
		return nil, err
	}
	if err := s.startMetal3(simCtx, i, in); err != nil {
		cancel()
		return nil, err
	}
	in.scheduler, err = startScheduler(s.opts.NestScheduler, in.dir, in.Kubeconfig, prefixWriter(s.opts.SchedulerLog, in.Name+" nest-scheduler: "))
	if err != nil {
		cancel()
		return nil, err
	}
	if s.opts.Consolidate != nil {
		in.consolidator, err = startConsolidator(in.Kubeconfig, *s.opts.Consolidate, prefixWriter(s.opts.SchedulerLog, in.Name+" nest-consolidator: "))
		if err != nil {
			_ = in.scheduler.stop()
			cancel()
			return nil, err
		}
	}
	return in, nil
}

// stop stops the scheduler and the simulators; the API server is stopped with the others.
func (in *Infra) stop() error {
	var errs []error
	if in.consolidator != nil {
		errs = append(errs, in.consolidator.stop())
	}
	if in.scheduler != nil {
		errs = append(errs, in.scheduler.stop())
	}
	if in.cancel != nil {
		in.cancel()
	}
	if in.sim != nil {
		<-in.sim.Done()
		if err := in.sim.Err(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("the KubeVirt simulator of %s: %w", in.Name, err))
		}
	}
	if in.nsDone != nil {
		if err := <-in.nsDone; err != nil {
			errs = append(errs, fmt.Errorf("the namespace controller of %s: %w", in.Name, err))
		}
	}
	if in.metal3 != nil {
		<-in.metal3.Done()
		if err := in.metal3.Err(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("the Metal3 simulator of %s: %w", in.Name, err))
		}
	}
	return errors.Join(errs...)
}
