package metal3

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HostsOptions describe BareMetalHosts to create.
type HostsOptions struct {
	// Namespace of the hosts and their BMC credentials Secrets.
	Namespace string
	// Prefix names the hosts <Prefix>-<i>; default "host".
	Prefix string
	// Count is the number of hosts CreateHosts makes; default 1.
	Count int
	// First is the index of the first host, so that several calls make distinct hosts.
	First int
	// Labels on every host (what host selectors match).
	Labels map[string]string
	// Online sets spec.online.
	Online bool
	// CPUs and RAMMiB, when set, annotate the hosts with the hardware inspection will find.
	CPUs, RAMMiB int
	// AutomatedCleaningMode of the hosts; default the CRD's default ("metadata").
	AutomatedCleaningMode bmov1alpha1.AutomatedCleaningMode
}

// NewHost builds host i of o and its BMC credentials Secret (not created): a Redfish BMC address, a boot
// MAC unique to the namespace, prefix and index, UEFI boot.
func NewHost(i int, o HostsOptions) (*bmov1alpha1.BareMetalHost, *corev1.Secret) {
	prefix := o.Prefix
	if prefix == "" {
		prefix = "host"
	}
	name := fmt.Sprintf("%s-%d", prefix, i)
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.Namespace + "/" + prefix))
	sum := h.Sum32()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-bmc-secret", Namespace: o.Namespace},
		Data:       map[string][]byte{"username": []byte("admin"), "password": []byte("simulated")},
	}
	annotations := map[string]string{}
	if o.CPUs > 0 {
		annotations[CPUsAnnotation] = strconv.Itoa(o.CPUs)
	}
	if o.RAMMiB > 0 {
		annotations[RAMAnnotation] = strconv.Itoa(o.RAMMiB)
	}
	labels := map[string]string{}
	for k, v := range o.Labels {
		labels[k] = v
	}
	host := &bmov1alpha1.BareMetalHost{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels, Annotations: annotations},
		Spec: bmov1alpha1.BareMetalHostSpec{
			Online: o.Online,
			BMC: bmov1alpha1.BMCDetails{
				Address:                        fmt.Sprintf("redfish-virtualmedia+https://192.0.2.%d:8000/redfish/v1/Systems/%s", sum%250+1, name),
				CredentialsName:                secret.Name,
				DisableCertificateVerification: true,
			},
			BootMACAddress:        fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(sum>>8), byte(sum), byte(i>>8), byte(i)),
			BootMode:              bmov1alpha1.UEFI,
			AutomatedCleaningMode: o.AutomatedCleaningMode,
		},
	}
	return host, secret
}

// CreateHosts creates o.Count hosts (NewHost(First..First+Count-1, o)) with their BMC credentials Secrets
// and returns the hosts.
func CreateHosts(ctx context.Context, c client.Client, o HostsOptions) ([]*bmov1alpha1.BareMetalHost, error) {
	count := o.Count
	if count <= 0 {
		count = 1
	}
	hosts := make([]*bmov1alpha1.BareMetalHost, 0, count)
	for i := o.First; i < o.First+count; i++ {
		host, secret := NewHost(i, o)
		if err := c.Create(ctx, secret); err != nil {
			return hosts, fmt.Errorf("creating the BMC credentials of host %s: %w", host.Name, err)
		}
		if err := c.Create(ctx, host); err != nil {
			return hosts, fmt.Errorf("creating host %s: %w", host.Name, err)
		}
		hosts = append(hosts, host)
	}
	return hosts, nil
}
