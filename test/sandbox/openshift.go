package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	ignconfig "github.com/coreos/ignition/v2/config"
	"github.com/vincent-petithory/dataurl"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ignition"
)

// An OpenShift tenant in the sandbox is built as a platform team builds one with openshift-install's
// ignition (platform none): the sandbox plays the installer (the master, worker and bootstrap
// ignition Secrets the flavor names), the DNS records docs/openshift.md asks for (api-int.<cluster>.
// <base domain> → the API Services the NestCluster published), and the RHCOS guest: it parses its
// Ignition with the Ignition library, takes its node name from the config (the /etc/hostname the
// provider merged) or else the config drive's metadata, and fetches a pointer config from the
// machine-config server only when the pointer's host resolves to a published machine-config address.

// openshiftBaseDomain is the base domain of the sandbox's OpenShift tenants.
const openshiftBaseDomain = "sandbox.invalid"

// OpenShift reports whether the flavor builds an OpenShift tenant from installer ignition.
func (f Flavor) OpenShift() bool {
	return f == FlavorOpenShift || f == FlavorOpenShiftHA || f == FlavorOpenShiftBareMetalWorkers
}

// ignitionPools are the Secrets an OpenShift flavor names (<cluster>-<pool>), as made from
// openshift-install's master.ign, worker.ign and bootstrap.ign.
var ignitionPools = []string{"master", "worker", "bootstrap"}

// openshiftIgnition is what openshift-install would write for a pool: the master and worker configs
// point at the machine-config server through api-int; the bootstrap config is a full config (here a
// small one: the bootstrap node runs the temporary control plane).
func (t *Tenant) openshiftIgnition(pool string) ([]byte, error) {
	cfg := map[string]any{"ignition": map[string]any{"version": "3.2.0"}}
	if pool == "bootstrap" {
		cfg["storage"] = map[string]any{"files": []any{map[string]any{
			"path": "/opt/openshift/bootstrap-in-place", "mode": 0o600,
			"contents": map[string]any{"source": dataurl.EncodeBytes([]byte("sandbox bootstrap of " + t.Name))},
		}}}
	} else {
		cfg["ignition"] = map[string]any{
			"version": "3.2.0",
			"config":  map[string]any{"merge": []any{map[string]any{"source": t.machineConfigURL(pool)}}},
			"security": map[string]any{"tls": map[string]any{"certificateAuthorities": []any{
				map[string]any{"source": dataurl.EncodeBytes([]byte("-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n"))},
			}}},
		}
	}
	return json.Marshal(cfg)
}

// machineConfigURL is the machine-config server's address in a pointer config of the pool.
func (t *Tenant) machineConfigURL(pool string) string {
	return fmt.Sprintf("https://api-int.%s.%s:22623/config/%s", t.Name, openshiftBaseDomain, pool)
}

// openshiftSecrets are the ignition Secrets a user creates before applying an OpenShift flavor.
func (t *Tenant) openshiftSecrets() ([]*corev1.Secret, error) {
	var out []*corev1.Secret
	for _, pool := range ignitionPools {
		data, err := t.openshiftIgnition(pool)
		if err != nil {
			return nil, err
		}
		out = append(out, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: t.Name + "-" + pool, Labels: map[string]string{clusterv1.ClusterNameLabel: t.Name}},
			Data:       map[string][]byte{"value": data, "format": []byte("ignition")},
		})
	}
	return out, nil
}

// resolve plays the DNS records of an OpenShift tenant: api-int.<cluster>.<base domain> and
// api.<cluster>.<base domain> are the hosts of the API Services the NestCluster published, each
// with its machine-config port.
func (t *Tenant) resolve(ctx context.Context, mgmt client.Client, host string) ([]string, error) {
	if host != "api-int."+t.Name+"."+openshiftBaseDomain && host != "api."+t.Name+"."+openshiftBaseDomain {
		return nil, nil
	}
	nc := &infrav1.NestCluster{}
	if err := mgmt.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Name}, nc); err != nil {
		return nil, fmt.Errorf("reading the NestCluster of tenant %s: %w", t.Name, err)
	}
	var addrs []string
	for _, ep := range nc.Status.Endpoints {
		if ep.Role != infrav1.EndpointAPI || ep.Host == "" {
			continue
		}
		for _, p := range ep.Ports {
			if p.Name == "machine-config" {
				addrs = append(addrs, net.JoinHostPort(ep.Host, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return addrs, nil
}

// rhcosBoot plays what an RHCOS guest does with its Ignition before the kubelet starts: it returns
// the node name, or an error while it cannot boot (a pointer config whose machine-config server does
// not resolve yet is retried, as Ignition retries the fetch). machine names the VMI or host in errors;
// hostname is what the guest is called when its config sets no /etc/hostname (a VM: its config
// drive's hostname; a host: the one its network gives it).
func (t *Tenant) rhcosBoot(ctx context.Context, mgmt client.Client, machine, hostname string, userData []byte) (string, error) {
	info, err := ignition.Validate(userData)
	if err != nil {
		return "", fmt.Errorf("%s: Ignition failed: %w", machine, err)
	}
	if err := info.RequireV3(); err != nil {
		return "", fmt.Errorf("%s: RHCOS reads Ignition spec 3 only: %w", machine, err)
	}
	for _, source := range info.PointerURLs {
		u, err := url.Parse(source)
		if err != nil {
			return "", fmt.Errorf("%s: Ignition pointer %q: %w", machine, source, err)
		}
		addrs, err := t.resolve(ctx, mgmt, u.Hostname())
		if err != nil {
			return "", err
		}
		fetched := false
		for _, a := range addrs {
			if _, port, _ := net.SplitHostPort(a); port == u.Port() {
				fetched = true
			}
		}
		if !fetched {
			return "", fmt.Errorf("%s: Ignition is fetching %s: no machine-config server there yet (resolves to %v)", machine, source, addrs)
		}
	}
	cfg, _, err := ignconfig.Parse(userData)
	if err != nil {
		return "", fmt.Errorf("%s: Ignition failed: %w", machine, err)
	}
	for _, f := range cfg.Storage.Files {
		if f.Path != ignition.HostnamePath || f.Contents.Source == nil {
			continue
		}
		du, err := dataurl.DecodeString(*f.Contents.Source)
		if err != nil {
			return "", fmt.Errorf("%s: reading %s from its Ignition: %w", machine, f.Path, err)
		}
		return strings.TrimSpace(string(du.Data)), nil
	}
	return hostname, nil
}
