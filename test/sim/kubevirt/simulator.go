package kubevirt

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// Cache index names.
const (
	indexOwnerUID = "sim.ownerUID"
	indexIP       = "sim.ip"
)

// Simulator plays virt-controller, virt-handler, CDI, the garbage collector and (optionally) the
// scheduler for one Infra API server.
type Simulator struct {
	opts      Options
	client    client.Client
	apiReader client.Reader

	// vmStatus, vmiStatus, dvStatus and migrationStatus say whether VirtualMachine,
	// VirtualMachineInstance, DataVolume and VirtualMachineInstanceMigration have a status subresource
	// on this API server.
	vmStatus, vmiStatus, dvStatus, migrationStatus bool

	sched *scheduler
	// podIPs and secondaryIPs hand out 10.<ID>.x.y and 10.<ID+128>.x.y.
	podIPs, secondaryIPs *simkit.IPAM
	clock                *simkit.Clock
	hooked               sync.Map // VMI UID → struct{}: OnRunning was called

	handle *simkit.Handle
}

// New returns a simulator; wire it with SetupWithManager or use Run.
func New(opts Options) (*Simulator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Simulator{opts: opts, clock: simkit.NewClock()}
	s.podIPs = simkit.NewIPAM(10, opts.ID, s.ipInUse)
	s.secondaryIPs = simkit.NewIPAM(10, opts.ID+128, s.ipInUse)
	if opts.SelfSchedule {
		s.sched = newScheduler(s)
	}
	return s, nil
}

// Run starts a simulator with its own manager against the API server of cfg, returns once its caches
// have synced, and stops when ctx ends.
func Run(ctx context.Context, cfg *rest.Config, opts Options) (*Simulator, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	if s.handle, err = simkit.Run(ctx, cfg, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Done is closed when a simulator started by Run has stopped.
func (s *Simulator) Done() <-chan struct{} { return s.handle.Done() }

// Err is the error a simulator started by Run stopped with.
func (s *Simulator) Err() error { return s.handle.Err() }

// CacheOptions are the cache options SetupWithManager expects of a manager: launcher pods only, unless
// the simulator schedules (then every pod counts against node capacity), in Options.Namespaces.
func (s *Simulator) CacheOptions() cache.Options {
	o := simkit.NamespacedCache(s.opts.Namespaces)
	if !s.opts.SelfSchedule {
		o.ByObject = map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{kubevirtv1.AppLabel: LauncherLabelValue})},
		}
	}
	return o
}

// Watched lists the kinds the simulator caches, for waiting until they have synced.
func (s *Simulator) Watched() []client.Object {
	return []client.Object{
		&kubevirtv1.VirtualMachine{}, &kubevirtv1.VirtualMachineInstance{}, &cdiv1beta1.DataVolume{},
		&kubevirtv1.VirtualMachineInstanceMigration{}, &corev1.Pod{}, &corev1.Node{}, secretMetadata(),
	}
}

// SetupWithManager registers the simulator's indexes and controllers with mgr. The manager's scheme must
// hold the built-in kinds, KubeVirt's and CDI's, and its cache must follow CacheOptions. One KubeVirt
// simulator per manager.
func (s *Simulator) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	s.client = mgr.GetClient()
	s.apiReader = mgr.GetAPIReader()
	var err error
	if s.vmStatus, err = simkit.HasStatusSubresource(mgr.GetConfig(), kubevirtv1.GroupVersion.String(), "virtualmachines"); err != nil {
		return err
	}
	if s.vmiStatus, err = simkit.HasStatusSubresource(mgr.GetConfig(), kubevirtv1.GroupVersion.String(), "virtualmachineinstances"); err != nil {
		return err
	}
	if s.dvStatus, err = simkit.HasStatusSubresource(mgr.GetConfig(), cdiv1beta1.SchemeGroupVersion.String(), "datavolumes"); err != nil {
		return err
	}
	if s.migrationStatus, err = simkit.HasStatusSubresource(mgr.GetConfig(), kubevirtv1.GroupVersion.String(), "virtualmachineinstancemigrations"); err != nil {
		return err
	}
	if err := s.setupIndexes(ctx, mgr); err != nil {
		return err
	}
	if s.sched != nil {
		if err := s.sched.watchPods(ctx, mgr.GetCache()); err != nil {
			return err
		}
	}
	for _, setup := range []func(manager.Manager) error{
		s.setupVMController, s.setupVMIController, s.setupMigrationController, s.setupDataVolumeController, s.setupGarbageCollector,
	} {
		if err := setup(mgr); err != nil {
			return err
		}
	}
	return nil
}

func (s *Simulator) setupIndexes(ctx context.Context, mgr manager.Manager) error {
	indexer := mgr.GetFieldIndexer()
	ownerUIDs := func(o client.Object) []string {
		refs := o.GetOwnerReferences()
		uids := make([]string, 0, len(refs))
		for _, r := range refs {
			uids = append(uids, string(r.UID))
		}
		return uids
	}
	for _, obj := range dependentKinds() {
		if err := indexer.IndexField(ctx, obj.newObject(), indexOwnerUID, ownerUIDs); err != nil {
			return fmt.Errorf("indexing %s by owner: %w", obj.kind, err)
		}
	}
	if err := indexer.IndexField(ctx, &corev1.Pod{}, indexIP, func(o client.Object) []string {
		var ips []string
		for _, ip := range o.(*corev1.Pod).Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return ips
	}); err != nil {
		return fmt.Errorf("indexing pods by IP: %w", err)
	}
	if err := indexer.IndexField(ctx, &kubevirtv1.VirtualMachineInstance{}, indexIP, func(o client.Object) []string {
		var ips []string
		for _, iface := range o.(*kubevirtv1.VirtualMachineInstance).Status.Interfaces {
			ips = append(ips, iface.IPs...)
		}
		return ips
	}); err != nil {
		return fmt.Errorf("indexing VMIs by IP: %w", err)
	}
	if err := indexer.IndexField(ctx, &kubevirtv1.VirtualMachineInstanceMigration{}, indexMigrationVMI, func(o client.Object) []string {
		return []string{o.(*kubevirtv1.VirtualMachineInstanceMigration).Spec.VMIName}
	}); err != nil {
		return fmt.Errorf("indexing migrations by VMI: %w", err)
	}
	return nil
}

// ipInUse reports whether a pod or VMI in the cache already has ip, so that a restarted simulator does
// not hand out an address twice.
func (s *Simulator) ipInUse(ctx context.Context, ip string) (bool, error) {
	pods := &corev1.PodList{}
	if err := s.client.List(ctx, pods, client.MatchingFields{indexIP: ip}, client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	if len(pods.Items) > 0 {
		return true, nil
	}
	vmis := &kubevirtv1.VirtualMachineInstanceList{}
	if err := s.client.List(ctx, vmis, client.MatchingFields{indexIP: ip}, client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	return len(vmis.Items) > 0, nil
}

func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}
