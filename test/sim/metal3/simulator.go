package metal3

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/nestcapi/cluster-api-provider-nest/test/sim/internal/simkit"
)

// Cache index names.
const (
	indexCredentials = "sim.metal3.credentials"
	indexNICIP       = "sim.metal3.nicIP"
)

// Simulator plays baremetal-operator (and the Ironic behind it) for one Infra API server.
type Simulator struct {
	opts      Options
	client    client.Client
	apiReader client.Reader
	clock     *simkit.Clock
	ipam      *simkit.IPAM
	// provisioned holds the UIDs of hosts OnProvisioned was called for and OnDeprovisioned was not yet.
	provisioned sync.Map

	handle *simkit.Handle
}

// New returns a simulator; wire it with SetupWithManager or use Run.
func New(opts Options) (*Simulator, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Simulator{opts: opts, clock: simkit.NewClock()}
	s.ipam = simkit.NewIPAM(172, 16+opts.ID, s.ipInUse)
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

// CacheOptions are the cache options SetupWithManager expects of a manager: Options.Namespaces.
func (s *Simulator) CacheOptions() cache.Options {
	return simkit.NamespacedCache(s.opts.Namespaces)
}

// Watched lists the kinds the simulator caches, for waiting until they have synced.
func (s *Simulator) Watched() []client.Object {
	return []client.Object{&bmov1alpha1.BareMetalHost{}, secretMetadata()}
}

func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// SetupWithManager registers the simulator's indexes and controller with mgr. The manager's scheme must
// hold the built-in kinds and Metal3's, and its cache must follow CacheOptions. One Metal3 simulator per
// manager.
func (s *Simulator) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	s.client = mgr.GetClient()
	s.apiReader = mgr.GetAPIReader()
	if _, err := simkit.HasStatusSubresource(mgr.GetConfig(), bmov1alpha1.GroupVersion.String(), "baremetalhosts"); err != nil {
		return err
	}
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &bmov1alpha1.BareMetalHost{}, indexCredentials, func(o client.Object) []string {
		if name := o.(*bmov1alpha1.BareMetalHost).Spec.BMC.CredentialsName; name != "" {
			return []string{name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing hosts by credentials: %w", err)
	}
	if err := indexer.IndexField(ctx, &bmov1alpha1.BareMetalHost{}, indexNICIP, func(o client.Object) []string {
		hw := o.(*bmov1alpha1.BareMetalHost).Status.HardwareDetails
		if hw == nil {
			return nil
		}
		ips := make([]string, 0, len(hw.NIC))
		for _, nic := range hw.NIC {
			if nic.IP != "" {
				ips = append(ips, nic.IP)
			}
		}
		return ips
	}); err != nil {
		return fmt.Errorf("indexing hosts by address: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).Named("metal3-baremetalhost").
		For(&bmov1alpha1.BareMetalHost{}).
		// A host waiting for its BMC credentials registers once they appear or change.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(s.hostsUsingCredentials)).
		Watches(&bmov1alpha1.BareMetalHost{}, handler.Funcs{DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ simkit.Queue) {
			s.clock.Forget(e.Object.GetUID())
			s.provisioned.Delete(e.Object.GetUID())
		}}).
		WithOptions(simkit.ControllerOptions(s.opts.Concurrency)).
		Complete(reconcile.Func(s.reconcileHost))
}

func (s *Simulator) hostsUsingCredentials(ctx context.Context, o client.Object) []reconcile.Request {
	hosts := &bmov1alpha1.BareMetalHostList{}
	if err := s.client.List(ctx, hosts, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexCredentials: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(hosts.Items))
	for i := range hosts.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&hosts.Items[i])})
	}
	return reqs
}

func (s *Simulator) ipInUse(ctx context.Context, ip string) (bool, error) {
	hosts := &bmov1alpha1.BareMetalHostList{}
	if err := s.client.List(ctx, hosts, client.MatchingFields{indexNICIP: ip}, client.UnsafeDisableDeepCopy); err != nil {
		return false, err
	}
	return len(hosts.Items) > 0, nil
}

func (s *Simulator) reconcileHost(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	host := &bmov1alpha1.BareMetalHost{}
	if err := s.client.Get(ctx, req.NamespacedName, host); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if _, paused := host.Annotations[bmov1alpha1.PausedAnnotation]; paused {
		ctrl.LoggerFrom(ctx).V(1).Info("Host is paused")
		return reconcile.Result{}, nil
	}
	deleting := host.DeletionTimestamp != nil
	if _, detached := host.Annotations[bmov1alpha1.DetachedAnnotation]; detached {
		return reconcile.Result{}, s.detach(ctx, host)
	}
	if !deleting && !controllerutil.ContainsFinalizer(host, bmov1alpha1.BareMetalHostFinalizer) {
		orig := host.DeepCopy()
		controllerutil.AddFinalizer(host, bmov1alpha1.BareMetalHostFinalizer)
		if err := simkit.Patch(ctx, s.client, orig, host, true); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the host finalizer: %w", err)
		}
	}

	in := stepInput{
		now:     metav1.Now(),
		elapsed: func(stage string) time.Duration { return s.clock.Since(host.UID, stage) },
		delays:  s.opts.Delays,
		fail:    s.opts.failureOf(host),
		id:      string(host.UID),
		hardware: func() (*bmov1alpha1.HardwareDetails, error) {
			return s.inspect(ctx, host)
		},
	}
	if host.Status.Provisioning.State == bmov1alpha1.StateRegistering {
		in.credentialsVersion, in.credentialsErr = s.credentials(ctx, host)
	}
	res, err := step(host, in)
	if err != nil {
		return reconcile.Result{}, err
	}
	if res.deleted {
		return reconcile.Result{}, s.finishDeletion(ctx, host)
	}
	if !equality.Semantic.DeepEqual(host.Status, res.status) {
		if err := simkit.WriteStatus(ctx, s.client, host, res.status, true); err != nil {
			return reconcile.Result{}, fmt.Errorf("updating the status of host %s: %w", host.Name, err)
		}
		if host.Status.Provisioning.State != res.status.Provisioning.State || host.Status.PoweredOn != res.status.PoweredOn {
			// A new stage: its delay starts when the simulator first sees the host in it.
			s.clock.Forget(host.UID)
		}
		if host.Status.HardwareDetails == nil && res.status.HardwareDetails != nil {
			if err := s.recordHardware(ctx, host, res.status.HardwareDetails); err != nil {
				return reconcile.Result{}, err
			}
		}
	}
	updated := host.DeepCopy()
	updated.Status = res.status
	if err := s.runHooks(ctx, updated); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: res.requeue}, nil
}

// credentials reads the host's BMC credentials Secret the way baremetal-operator does before registering:
// it must exist and carry a username and a password.
func (s *Simulator) credentials(ctx context.Context, host *bmov1alpha1.BareMetalHost) (string, error) {
	secret := &corev1.Secret{}
	if err := s.apiReader.Get(ctx, host.CredentialsKey(), secret); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("secret %s not found", host.Spec.BMC.CredentialsName)
		}
		return "", err
	}
	for _, key := range []string{"username", "password"} {
		if len(secret.Data[key]) == 0 {
			return "", fmt.Errorf("secret %s has no %s", secret.Name, key)
		}
	}
	return secret.ResourceVersion, nil
}

// inspect is what the inspection ramdisk reports about host: its CPUs, RAM, one disk and NICs (the
// first with the boot MAC), each NIC with an address, and the host's name as hostname.
func (s *Simulator) inspect(ctx context.Context, host *bmov1alpha1.BareMetalHost) (*bmov1alpha1.HardwareDetails, error) {
	hw := s.opts.hardwareOf(host)
	h := fnv.New32a()
	_, _ = h.Write([]byte(host.UID))
	serial := fmt.Sprintf("SIM%08X", h.Sum32())
	nics := make([]bmov1alpha1.NIC, 0, hw.NICs)
	for i := range hw.NICs {
		ip, err := s.ipam.Allocate(ctx)
		if err != nil {
			return nil, err
		}
		mac := host.Spec.BootMACAddress
		if i > 0 || mac == "" {
			mac = fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(h.Sum32()>>16), byte(h.Sum32()>>8), byte(h.Sum32()), byte(i))
		}
		nics = append(nics, bmov1alpha1.NIC{
			Name: fmt.Sprintf("eno%d", i+1), Model: "0x8086 0x1593", MAC: mac, IP: ip, SpeedGbps: 25, PXE: i == 0,
			PCIAddress: fmt.Sprintf("0000:%02x:00.0", 0x18+i),
		})
	}
	return &bmov1alpha1.HardwareDetails{
		SystemVendor: bmov1alpha1.HardwareSystemVendor{Manufacturer: "Simulated", ProductName: "SimServer 2U", SerialNumber: serial},
		Firmware:     bmov1alpha1.Firmware{BIOS: bmov1alpha1.BIOS{Vendor: "Simulated", Version: "2.1.0", Date: "01/15/2026"}},
		RAMMebibytes: hw.RAMMiB,
		NIC:          nics,
		Storage: []bmov1alpha1.Storage{{
			Name: "/dev/sda", AlternateNames: []string{"/dev/disk/by-path/pci-0000:00:17.0-ata-1"}, Type: bmov1alpha1.SSD,
			SizeBytes: bmov1alpha1.Capacity(hw.DiskGB) * bmov1alpha1.GigaByte, Vendor: "Simulated", Model: "SimDisk",
			SerialNumber: serial + "D0", WWN: fmt.Sprintf("0x5000c500%08x", h.Sum32()), HCTL: "0:0:0:0",
		}},
		CPU: bmov1alpha1.CPU{
			Arch: "x86_64", Model: "Simulated Xeon CPU @ 2.60GHz", ClockMegahertz: 2600, Count: hw.CPUs,
			Flags: []string{"avx2", "lm", "sse4_2", "vmx"},
		},
		Hostname: host.Name,
	}, nil
}

// recordHardware creates the host's HardwareData, as baremetal-operator does after inspection.
func (s *Simulator) recordHardware(ctx context.Context, host *bmov1alpha1.BareMetalHost, hw *bmov1alpha1.HardwareDetails) error {
	data := &bmov1alpha1.HardwareData{
		ObjectMeta: metav1.ObjectMeta{
			Name: host.Name, Namespace: host.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(host, bmov1alpha1.GroupVersion.WithKind("BareMetalHost"))},
		},
		Spec: bmov1alpha1.HardwareDataSpec{HardwareDetails: hw.DeepCopy()},
	}
	if err := s.client.Create(ctx, data); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("recording the hardware of host %s: %w", host.Name, err)
	}
	return nil
}

// finishDeletion removes what the host leaves behind, then its finalizer.
func (s *Simulator) finishDeletion(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
	if err := s.notifyDeprovisioned(ctx, host); err != nil {
		return err
	}
	data := &bmov1alpha1.HardwareData{ObjectMeta: metav1.ObjectMeta{Name: host.Name, Namespace: host.Namespace}}
	if err := s.client.Delete(ctx, data); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the hardware data of host %s: %w", host.Name, err)
	}
	if !controllerutil.ContainsFinalizer(host, bmov1alpha1.BareMetalHostFinalizer) {
		return nil
	}
	orig := host.DeepCopy()
	controllerutil.RemoveFinalizer(host, bmov1alpha1.BareMetalHostFinalizer)
	if err := simkit.Patch(ctx, s.client, orig, host, true); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of host %s: %w", host.Name, err)
	}
	s.clock.Forget(host.UID)
	return nil
}

// detach plays a detached host: baremetal-operator stops managing it, and lets it go at once when it is
// deleted.
func (s *Simulator) detach(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
	if host.DeletionTimestamp != nil {
		return s.finishDeletion(ctx, host)
	}
	if host.Status.OperationalStatus == bmov1alpha1.OperationalStatusDetached {
		return nil
	}
	st := host.Status.DeepCopy()
	st.OperationalStatus = bmov1alpha1.OperationalStatusDetached
	now := metav1.Now()
	st.LastUpdated = &now
	if err := simkit.WriteStatus(ctx, s.client, host, st, true); err != nil {
		return fmt.Errorf("detaching host %s: %w", host.Name, err)
	}
	return nil
}

// runHooks calls OnProvisioned when a host is provisioned and OnDeprovisioned when it stops being so.
func (s *Simulator) runHooks(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
	_, flagged := s.provisioned.Load(host.UID)
	provisioned := host.Status.Provisioning.State == bmov1alpha1.StateProvisioned
	switch {
	case provisioned && !flagged:
		if s.opts.OnProvisioned != nil {
			if err := s.opts.OnProvisioned(ctx, host); err != nil {
				return fmt.Errorf("OnProvisioned hook for host %s: %w", host.Name, err)
			}
		}
		s.provisioned.Store(host.UID, struct{}{})
	case !provisioned && flagged:
		return s.notifyDeprovisioned(ctx, host)
	}
	return nil
}

func (s *Simulator) notifyDeprovisioned(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
	if _, flagged := s.provisioned.Load(host.UID); !flagged {
		return nil
	}
	if s.opts.OnDeprovisioned != nil {
		if err := s.opts.OnDeprovisioned(ctx, host); err != nil {
			return fmt.Errorf("OnDeprovisioned hook for host %s: %w", host.Name, err)
		}
	}
	s.provisioned.Delete(host.UID)
	return nil
}
