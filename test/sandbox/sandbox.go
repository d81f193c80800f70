package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	clusterctlclient "sigs.k8s.io/cluster-api/cmd/clusterctl/client"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// Sandbox is the whole system running on this machine: a management API server with CAPI's and the
// provider's CRDs and webhooks, CAPI's controllers and the provider's manager in this process, the
// Infra clusters and the tenant clusters.
type Sandbox struct {
	opts Options
	tmp  string
	// written are the files Stop removes.
	written []string

	// Management is the management cluster's API server (after Move, the one the tenants moved to).
	Management *envtest.Environment
	// previous are the management API servers tenants were moved away from; they keep running.
	previous []*envtest.Environment
	// ManagementKubeconfig is the path of its admin kubeconfig.
	ManagementKubeconfig string
	// Infras are the Infra clusters, in order: infra-1, infra-2, ...
	Infras []*Infra
	// infraEnvs are the Infra API servers while Start has not built their Infra yet.
	infraEnvs []*envtest.Environment

	guest    *guest
	progress *progress

	webhooks []*crenvtest.WebhookInstallOptions
	managers []*runningManager
	runCtx   context.Context
	cancel   context.CancelFunc

	mu      sync.Mutex
	tenants []*Tenant
	stopped bool
}

// Start brings up everything (see Sandbox) and creates opts.Tenants; it returns once the tenants'
// objects are applied, not when they are ready (see WaitReady). On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Sandbox, reterr error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sandbox{opts: opts, guest: newGuest()}
	s.guest.mgmt = s.Client
	defer func() {
		if r := recover(); r != nil {
			_ = s.Stop()
			panic(r)
		}
		if reterr != nil {
			reterr = errors.Join(reterr, s.Stop())
		}
	}()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", opts.Dir, err)
	}
	if s.tmp, err = os.MkdirTemp("", "nest-sandbox-"); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.runCtx, s.cancel = runCtx, cancel

	s.progress = newProgress(s, opts.Progress)
	s.guest.onChange = s.progress.poke
	s.progress.logf("starting the management API server, %d Infra API servers and %d tenant API servers", opts.InfraClusters, len(opts.Tenants))
	tenantEnvs, err := s.startAPIServers(opts.Tenants)
	if err != nil {
		return nil, err
	}
	tenants := make([]*Tenant, len(opts.Tenants))
	for i, o := range opts.Tenants {
		if tenants[i], err = s.newTenant(o, tenantEnvs[i]); err != nil {
			return nil, err
		}
	}
	s.ManagementKubeconfig = filepath.Join(opts.Dir, "management.kubeconfig")
	if err := s.writeFile(s.ManagementKubeconfig, s.Management.KubeConfig); err != nil {
		return nil, err
	}
	for len(s.infraEnvs) > 0 {
		in, err := s.startInfra(runCtx, len(s.Infras), s.infraEnvs[0])
		if err != nil {
			return nil, err
		}
		s.Infras = append(s.Infras, in)
		s.infraEnvs = s.infraEnvs[1:]
	}
	s.progress.logf("API servers up; nest-scheduler and the KubeVirt simulator run in every Infra cluster")

	if err := s.startControllers(runCtx, s.Management, ""); err != nil {
		return nil, err
	}
	if err := s.progress.start(runCtx, s.Management.Config); err != nil {
		return nil, err
	}
	if err := s.registerInfraClusters(ctx); err != nil {
		return nil, err
	}
	for _, t := range tenants {
		if err := s.setupTenant(ctx, t); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startAPIServers starts the management, Infra and tenant API servers at once: on two cores that takes
// about as long as starting one.
func (s *Sandbox) startAPIServers(tenants []TenantOptions) ([]*envtest.Environment, error) {
	n := 1 + s.opts.InfraClusters + len(tenants)
	envs := make([]*envtest.Environment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range envs {
		wg.Go(func() {
			var o envtest.Options
			switch {
			case i == 0:
				o.CRDs = envtest.Management
			case i <= s.opts.InfraClusters:
				o.CRDs = envtest.Infra
			}
			envs[i], errs[i] = envtest.Start(o)
		})
	}
	wg.Wait()
	s.Management = envs[0]
	s.infraEnvs = envs[1 : 1+s.opts.InfraClusters]
	tenantEnvs := envs[1+s.opts.InfraClusters:]
	if err := errors.Join(errs...); err != nil {
		for _, e := range envs {
			if e != nil {
				err = errors.Join(err, e.Stop())
			}
		}
		s.Management, s.infraEnvs = nil, nil
		return nil, err
	}
	return tenantEnvs, nil
}

// startControllers installs the webhook configurations and starts CAPI's and the provider's managers
// against the management API server env, returning once both serve their webhooks and have synced
// their caches. suffix tells the managers of a second management cluster from the first's.
func (s *Sandbox) startControllers(ctx context.Context, env *envtest.Environment, suffix string) error {
	if err := labelCAPIProviderCRDs(ctx, env.Client); err != nil {
		return err
	}
	capiManifests, err := capiWebhookManifests()
	if err != nil {
		return err
	}
	capiWH, err := installWebhooks(env.Config, capiManifests...)
	if err != nil {
		return err
	}
	s.webhooks = append(s.webhooks, capiWH)
	nestWH, err := installWebhooks(env.Config, nestWebhookManifests())
	if err != nil {
		return err
	}
	s.webhooks = append(s.webhooks, nestWH)

	managers, err := newCAPIManagers(ctx, env.Config, capiWH, s.opts, suffix)
	if err != nil {
		return err
	}
	provider, err := newProviderManager(ctx, env.Config, nestWH, s.opts)
	if err != nil {
		return err
	}
	for _, m := range append(managers, namedManager{name: "the provider", mgr: provider, webhooks: true}) {
		if err := s.run(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Move moves the tenants of namespace to a new management cluster with clusterctl move (the
// clusterctl library, as the command calls it), as the bootstrap → management pivot does: a second
// management API server gets CAPI's controllers and this provider, then clusterctl carries the
// Clusters, their machines and the InfraClusters (with their kubeconfig Secrets) over. The previous
// management cluster keeps running, its provider and sweeper included. From then on the sandbox's
// Management, Client, kubeconfig and waits are the new one's.
func (s *Sandbox) Move(ctx context.Context, namespace string) error {
	target, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.previous = append(s.previous, target) // stopped with the others; swapped below
	s.mu.Unlock()
	s.progress.logf("moving namespace %s to a new management API server with clusterctl move", namespace)
	if err := s.startControllers(s.runCtx, target, fmt.Sprintf("-%d", len(s.previous)+1)); err != nil {
		return err
	}
	from, err := s.Management.AsClusterctlInstalled(ctx, ProviderNamespace)
	if err != nil {
		return err
	}
	to, err := target.AsClusterctlInstalled(ctx, ProviderNamespace)
	if err != nil {
		return err
	}
	c, err := clusterctlclient.New(ctx, "")
	if err != nil {
		return err
	}
	if err := c.Move(ctx, clusterctlclient.MoveOptions{
		FromKubeconfig: clusterctlclient.Kubeconfig{Path: from},
		ToKubeconfig:   clusterctlclient.Kubeconfig{Path: to},
		Namespace:      namespace,
	}); err != nil {
		return fmt.Errorf("clusterctl move of namespace %s: %w", namespace, err)
	}

	s.progress.stop()
	s.mu.Lock()
	s.previous[len(s.previous)-1], s.Management = s.Management, target
	s.mu.Unlock()
	s.progress = newProgress(s, s.opts.Progress)
	s.guest.onChange = s.progress.poke
	if err := s.progress.start(s.runCtx, target.Config); err != nil {
		return err
	}
	s.progress.logf("namespace %s moved: the new management API server runs it", namespace)
	return s.writeFile(s.ManagementKubeconfig, target.KubeConfig)
}

// Previous is the management API server the tenants were last moved away from, or nil.
func (s *Sandbox) Previous() *envtest.Environment {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.previous) == 0 {
		return nil
	}
	return s.previous[len(s.previous)-1]
}

// registerInfraClusters creates the provider namespace, a kubeconfig Secret and an InfraCluster per
// Infra cluster, and waits until the provider reports every one Ready.
func (s *Sandbox) registerInfraClusters(ctx context.Context) error {
	c := s.Management.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ProviderNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ProviderNamespace, err)
	}
	for _, in := range s.Infras {
		if err := c.Create(ctx, in.Env.KubeconfigSecret(ProviderNamespace, in.Name+"-kubeconfig")); err != nil {
			return fmt.Errorf("creating the kubeconfig Secret of %s: %w", in.Name, err)
		}
		ic := &infrav1.InfraCluster{
			ObjectMeta: metav1.ObjectMeta{Name: in.Name},
			Spec: infrav1.InfraClusterSpec{
				KubeconfigSecretRef:      &infrav1.SecretKeyReference{Name: in.Name + "-kubeconfig"},
				AllowedNamespaces:        &infrav1.AllowedNamespaces{},
				SchedulerName:            SchedulerName,
				Probe:                    &infrav1.ProbeSpec{IntervalSeconds: 2, TimeoutSeconds: 2},
				OrphanGracePeriodSeconds: ptr.To(int32(s.opts.OrphanGracePeriod / time.Second)),
			},
		}
		if err := c.Create(ctx, ic); err != nil {
			return fmt.Errorf("creating InfraCluster %s: %w", in.Name, err)
		}
	}
	return s.WaitFor(ctx, time.Minute, func() (bool, string) {
		for _, in := range s.Infras {
			if ok, why := s.progress.infraReady(in.Name); !ok {
				return false, why
			}
		}
		return true, ""
	})
}

// CreateTenant starts a tenant API server and creates a tenant cluster of o's flavor with the real
// clusterctl; it returns once the objects are applied.
func (s *Sandbox) CreateTenant(ctx context.Context, o TenantOptions) (*Tenant, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	env, err := envtest.Start(envtest.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting the API server of tenant %s: %w", o.Name, err)
	}
	t, err := s.newTenant(o, env)
	if err != nil {
		return nil, err
	}
	return t, s.setupTenant(ctx, t)
}

// newTenant records a tenant whose API server runs (Stop stops it from then on) and writes its
// kubeconfig.
func (s *Sandbox) newTenant(o TenantOptions, env *envtest.Environment) (*Tenant, error) {
	t := &Tenant{TenantOptions: o, Env: env, Kubeconfig: tenantKubeconfigPath(s.opts.Dir, o)}
	s.mu.Lock()
	s.tenants = append(s.tenants, t)
	s.mu.Unlock()
	s.guest.addTenant(t)
	return t, s.writeFile(t.Kubeconfig, env.KubeConfig)
}

// setupTenant writes the tenant's Secrets, generates its objects with clusterctl and applies them.
func (s *Sandbox) setupTenant(ctx context.Context, t *Tenant) error {
	if err := t.prepare(ctx, s.Management.Client); err != nil {
		return err
	}
	objs, err := s.generate(ctx, t)
	if err != nil {
		return err
	}
	t.Objects = objs
	t.Applied = time.Now()
	if err := apply(ctx, s.Management.Client, objs); err != nil {
		return err
	}
	if t.HealthCheck && !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "MachineHealthCheck" }) {
		// Flavors that ship MachineHealthChecks get the sandbox's timeout through their variables
		// (generate); a second check on the same machines would fight theirs.
		if err := s.Management.Client.Create(ctx, t.healthCheck()); err != nil {
			return fmt.Errorf("creating the MachineHealthCheck of tenant %s: %w", t.Name, err)
		}
	}
	s.progress.logf("tenant %s/%s: applied %d objects of flavor %s generated by clusterctl", t.Namespace, t.Name, len(objs), t.Flavor)
	return nil
}

// DeleteTenant deletes the tenant Cluster, waits until CAPI has deleted it (machines, VMs, hosts),
// then stops the tenant's API server.
func (s *Sandbox) DeleteTenant(ctx context.Context, t *Tenant, timeout time.Duration) error {
	c := s.Management.Client
	if err := c.Delete(ctx, &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name}}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Cluster %s: %w", t.Key(), err)
	}
	if err := s.WaitFor(ctx, timeout, func() (bool, string) { return s.progress.clusterGone(t.Key()) }); err != nil {
		return err
	}
	s.removeTenant(t)
	return t.Env.Stop()
}

func (s *Sandbox) removeTenant(t *Tenant) {
	s.guest.removeTenant(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.tenants {
		if x == t {
			s.tenants = append(s.tenants[:i], s.tenants[i+1:]...)
			break
		}
	}
	_ = os.Remove(t.Kubeconfig)
}

// Tenants lists the tenant clusters.
func (s *Sandbox) Tenants() []*Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Tenant(nil), s.tenants...)
}

// Infra returns the Infra cluster of that name, or nil.
func (s *Sandbox) Infra(name string) *Infra {
	for _, in := range s.Infras {
		if in.Name == name {
			return in
		}
	}
	return nil
}

// LoseInfra makes an Infra cluster disappear: its API server is killed (etcd keeps its data), and the
// tenant Nodes of the machines it hosts stop heart-beating (Ready becomes Unknown, as the node
// lifecycle controller reports kubelets that stop posting status).
func (s *Sandbox) LoseInfra(ctx context.Context, name string) error {
	in := s.Infra(name)
	if in == nil {
		return fmt.Errorf("no Infra cluster %s", name)
	}
	if err := in.Env.StopAPIServer(); err != nil {
		return err
	}
	in.mu.Lock()
	in.lost = true
	in.mu.Unlock()
	s.progress.logf("%s lost: API server stopped, its machines stop heart-beating", name)
	return s.guest.setReachable(ctx, name, false)
}

// RecoverInfra brings a lost Infra cluster back: its API server starts again at the same address, and
// the machines it still hosts post Ready again.
func (s *Sandbox) RecoverInfra(ctx context.Context, name string) error {
	in := s.Infra(name)
	if in == nil {
		return fmt.Errorf("no Infra cluster %s", name)
	}
	if err := in.Env.StartAPIServer(); err != nil {
		return err
	}
	in.mu.Lock()
	in.lost = false
	in.mu.Unlock()
	s.progress.logf("%s back: API server started again", name)
	return s.guest.setReachable(ctx, name, true)
}

// WaitFor waits until cond holds, re-evaluating it whenever a watched object (Clusters, machines,
// InfraClusters, control planes, MachineDeployments) or a simulated machine changes; on timeout the
// error carries cond's last reason.
func (s *Sandbox) WaitFor(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	return s.progress.waitFor(ctx, timeout, cond)
}

// WaitReady waits until the tenant Cluster is provisioned with every machine running (see
// TenantReady).
func (s *Sandbox) WaitReady(ctx context.Context, t *Tenant, timeout time.Duration) error {
	return s.WaitFor(ctx, timeout, func() (bool, string) { return s.progress.tenantReady(t.Key()) })
}

// TenantReady reports whether the tenant Cluster is provisioned, its control plane initialized, every
// KubeadmControlPlane and MachineDeployment replica ready and every Machine running; else why not.
func (s *Sandbox) TenantReady(t *Tenant) (bool, string) { return s.progress.tenantReady(t.Key()) }

// Machines lists every machine of every tenant, as the final table shows them.
func (s *Sandbox) Machines() []MachineRow { return s.progress.rows() }

// MachineTimes returns, per Machine (namespace/name), when the sandbox first saw it and when it first
// saw it Running (zero if never).
func (s *Sandbox) MachineTimes() map[string]MachineTime { return s.progress.machineTimes() }

// Client is a cluster-admin client of the management cluster.
func (s *Sandbox) Client() client.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Management.Client
}

// Kubeconfigs lists the kubeconfig path of every cluster: management, Infra clusters, tenants.
func (s *Sandbox) Kubeconfigs() [][2]string {
	out := [][2]string{{"management", s.ManagementKubeconfig}}
	for _, in := range s.Infras {
		out = append(out, [2]string{in.Name, in.Kubeconfig})
	}
	for _, t := range s.Tenants() {
		out = append(out, [2]string{"tenant " + t.Namespace + "/" + t.Name, t.Kubeconfig})
	}
	return out
}

// runningManager is a manager started by the sandbox.
type runningManager struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// run starts a manager and waits until its caches are synced and its webhook server (if it serves
// webhooks) answers.
func (s *Sandbox) run(ctx context.Context, nm namedManager) error {
	ctx, cancel := context.WithCancel(ctx)
	m := &runningManager{name: nm.name, cancel: cancel, done: make(chan struct{})}
	s.managers = append(s.managers, m)
	go func() {
		m.err = nm.mgr.Start(ctx)
		close(m.done)
	}()
	started := func(*http.Request) error { return nil }
	if nm.webhooks {
		started = nm.mgr.GetWebhookServer().StartedChecker()
	}
	// Readiness of a webhook server is only observable by asking it.
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-m.done:
			return false, fmt.Errorf("%s stopped: %w", nm.name, m.err)
		default:
		}
		return started(nil) == nil && nm.mgr.GetCache().WaitForCacheSync(ctx), nil
	})
}

// writeFile writes a file Stop removes.
func (s *Sandbox) writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	s.mu.Lock()
	s.written = append(s.written, path)
	s.mu.Unlock()
	return nil
}

// Stop stops everything the sandbox started (managers, simulators, schedulers, API servers) and
// removes its temporary directories and the kubeconfig files it wrote. It is safe to call twice.
func (s *Sandbox) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	var errs []error
	if s.progress != nil {
		s.progress.stop()
	}
	for i := len(s.managers) - 1; i >= 0; i-- {
		m := s.managers[i]
		m.cancel()
		select {
		case <-m.done:
			if m.err != nil && !errors.Is(m.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", m.name, m.err))
			}
		case <-time.After(time.Minute):
			errs = append(errs, fmt.Errorf("%s did not stop within a minute", m.name))
		}
	}
	for _, in := range s.Infras {
		errs = append(errs, in.stop())
	}
	if s.cancel != nil {
		s.cancel()
	}
	// Every API server at once. The data goes away: a graceful shutdown, which waits for every watch
	// to drain, only costs time, so each API server is killed first (a lost Infra cluster's API
	// server has exited already), then envtest stops etcd and removes the directories.
	type server struct {
		env  *envtest.Environment
		kill bool
	}
	servers := []server{{s.Management, true}}
	for _, e := range s.previous {
		servers = append(servers, server{e, true})
	}
	for _, in := range s.Infras {
		servers = append(servers, server{in.Env, !in.Lost()})
	}
	for _, e := range s.infraEnvs {
		servers = append(servers, server{e, true})
	}
	for _, t := range s.Tenants() {
		servers = append(servers, server{t.Env, true})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sv := range servers {
		if sv.env == nil {
			continue
		}
		wg.Go(func() {
			var err error
			if sv.kill {
				err = sv.env.StopAPIServer()
			}
			err = errors.Join(err, sv.env.Stop())
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, wh := range s.webhooks {
		errs = append(errs, wh.Cleanup())
	}
	if s.tmp != "" {
		errs = append(errs, os.RemoveAll(s.tmp))
	}
	for _, f := range s.written {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
