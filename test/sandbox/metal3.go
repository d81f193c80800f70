package sandbox

import (
	"context"
	"fmt"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	internalmetal3 "github.com/nestcapi/cluster-api-provider-nest/internal/metal3"
	metal3sim "github.com/nestcapi/cluster-api-provider-nest/test/sim/metal3"
	"github.com/nestcapi/cluster-api-provider-nest/test/sim/nodes"
)

// HostNamespace is the namespace of the BareMetalHosts of every Infra cluster.
const HostNamespace = "metal3"

// HostRoleLabel is the label the templates' host selector matches (role=worker).
const HostRoleLabel = "role"

// startMetal3 creates Options.HostsPerInfra BareMetalHosts in an Infra cluster (labelled
// role=worker) and starts the Metal3 simulator there; a provisioned host's guest joins its tenant.
func (s *Sandbox) startMetal3(ctx context.Context, i int, in *Infra) error {
	if s.opts.HostsPerInfra <= 0 {
		return nil
	}
	c := in.Env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: HostNamespace}}); err != nil {
		return fmt.Errorf("creating namespace %s in %s: %w", HostNamespace, in.Name, err)
	}
	if _, err := metal3sim.CreateHosts(ctx, c, metal3sim.HostsOptions{
		Namespace: HostNamespace, Prefix: in.Name + "-host", Count: s.opts.HostsPerInfra,
		Labels: map[string]string{HostRoleLabel: "worker"},
	}); err != nil {
		return fmt.Errorf("creating the BareMetalHosts of %s: %w", in.Name, err)
	}
	var err error
	in.metal3, err = metal3sim.Run(ctx, in.Env.Config, metal3sim.Options{
		ID: uint8(i + 1),
		OnProvisioned: func(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
			return s.guest.hostBooted(ctx, in, host)
		},
		OnDeprovisioned: func(ctx context.Context, host *bmov1alpha1.BareMetalHost) error {
			return s.guest.shutdown(ctx, in, host)
		},
	})
	if err != nil {
		return fmt.Errorf("starting the Metal3 simulator of %s: %w", in.Name, err)
	}
	return nil
}

// hostBooted is the Metal3 simulator's OnProvisioned hook: the host boots the image and runs its user
// data.
func (g *guest) hostBooted(ctx context.Context, in *Infra, host *bmov1alpha1.BareMetalHost) error {
	t := g.tenantOf(host)
	if t == nil {
		return nil
	}
	var userData []byte
	if ref := host.Spec.UserData; ref != nil {
		secret := &corev1.Secret{}
		ns := ref.Namespace
		if ns == "" {
			ns = host.Namespace
		}
		if err := in.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, secret); err != nil {
			return fmt.Errorf("reading the user data of host %s/%s: %w", host.Namespace, host.Name, err)
		}
		userData = secret.Data[internalmetal3.UserDataKey]
	}
	node := nodes.ForHost(host, nodes.TenantOptions{KubeletVersion: t.KubernetesVersion})
	if t.Flavor.OpenShift() {
		name, err := t.rhcosBoot(ctx, g.mgmt(), "host "+host.Name, node.Name, userData)
		if err != nil {
			return err
		}
		node.Name = name
	}
	ip := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ip = a.Address
		}
	}
	return g.boot(ctx, in, bootedMachine{obj: host, node: node, userData: userData, infraNode: host.Name, ip: ip})
}
