package metal3

import (
	"fmt"
	"testing"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

func TestReadProgress(t *testing.T) {
	now := metav1.Now()
	poweredOn := func(h *bmov1alpha1.BareMetalHost) { h.Status.PoweredOn = true }
	withImage := func(h *bmov1alpha1.BareMetalHost) {
		h.Spec.Image = &bmov1alpha1.Image{URL: "http://images/ubuntu.qcow2"}
	}
	for _, tc := range []struct {
		name        string
		host        bmov1alpha1.BareMetalHost
		provisioned bool
		status      metav1.ConditionStatus
		reason      string
		message     string
	}{
		{"provisioned and on", host("h", inState(bmov1alpha1.StateProvisioned), poweredOn), true, metav1.ConditionTrue, ProvisionedReason,
			"BareMetalHost metal3/h is provisioned and powered on"},
		{"provisioned, still off", host("h", inState(bmov1alpha1.StateProvisioned)), false, metav1.ConditionFalse, infrav1.ProvisioningReason,
			"BareMetalHost metal3/h is provisioned: waiting for it to power on"},
		{"provisioning", host("h", inState(bmov1alpha1.StateProvisioning), withImage), false, metav1.ConditionFalse, infrav1.ProvisioningReason,
			"BareMetalHost metal3/h is provisioning: writing http://images/ubuntu.qcow2"},
		{"available, the operator has not started", host("h", withImage), false, metav1.ConditionFalse, infrav1.ProvisioningReason,
			`BareMetalHost metal3/h is in state "available": waiting for the baremetal-operator to provision it`},
		{"provisioning error", host("h", inState(bmov1alpha1.StateProvisioning), func(h *bmov1alpha1.BareMetalHost) {
			h.Status.OperationalStatus = bmov1alpha1.OperationalStatusError
			h.Status.ErrorType = bmov1alpha1.ProvisioningError
			h.Status.ErrorMessage = "image download failed: 404"
		}), false, metav1.ConditionFalse, infrav1.HostErrorReason,
			`BareMetalHost metal3/h (state "provisioning"): provisioning error: image download failed: 404`},
		{"error without a type or message", host("h", inState(bmov1alpha1.StateProvisioned), poweredOn, func(h *bmov1alpha1.BareMetalHost) {
			h.Status.OperationalStatus = bmov1alpha1.OperationalStatusError
		}), false, metav1.ConditionFalse, infrav1.HostErrorReason,
			`BareMetalHost metal3/h (state "provisioned"): error: no message from the baremetal-operator`},
		{"host deleted under the machine", host("h", inState(bmov1alpha1.StateProvisioned), poweredOn, func(h *bmov1alpha1.BareMetalHost) {
			h.DeletionTimestamp = &now
		}), false, metav1.ConditionFalse, infrav1.HostErrorReason, "BareMetalHost metal3/h is being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := ReadProgress(&tc.host)
			g.Expect(p.Provisioned).To(Equal(tc.provisioned))
			g.Expect(p.Condition).To(Equal(metav1.Condition{Type: infrav1.HostProvisionedCondition, Status: tc.status, Reason: tc.reason, Message: tc.message}))
		})
	}
}

func TestAddressesAndNodeName(t *testing.T) {
	g := NewWithT(t)
	h := host("h", func(h *bmov1alpha1.BareMetalHost) {
		h.Status.HardwareDetails = &bmov1alpha1.HardwareDetails{
			Hostname: "worker-7.lab",
			NIC: []bmov1alpha1.NIC{
				{Name: "eno1", IP: "192.0.2.7"},
				{Name: "eno1", IP: "2001:db8::7"},
				{Name: "eno2"},
				{Name: "bond0", IP: "192.0.2.7"},
			},
		}
	})
	p := ReadProgress(&h)
	g.Expect(p.Addresses).To(Equal([]clusterv1.MachineAddress{
		{Type: clusterv1.MachineInternalIP, Address: "192.0.2.7"},
		{Type: clusterv1.MachineInternalIP, Address: "2001:db8::7"},
		{Type: clusterv1.MachineHostName, Address: "worker-7.lab"},
		{Type: clusterv1.MachineInternalDNS, Address: "worker-7.lab"},
	}))
	g.Expect(p.NodeName).To(Equal("worker-7.lab"))

	bare := host("h")
	g.Expect(ReadProgress(&bare).NodeName).To(Equal("h"), "no inspected hostname: the host's name")
	g.Expect(ReadProgress(&bare).Addresses).To(BeEmpty())

	many := host("h", func(h *bmov1alpha1.BareMetalHost) {
		h.Status.HardwareDetails = &bmov1alpha1.HardwareDetails{Hostname: "big"}
		for i := range 40 {
			h.Status.HardwareDetails.NIC = append(h.Status.HardwareDetails.NIC, bmov1alpha1.NIC{IP: fmt.Sprintf("10.0.0.%d", i)})
		}
	})
	addrs := Addresses(&many)
	g.Expect(addrs).To(HaveLen(MaxAddresses), "the NestMachine status holds at most 32")
	g.Expect(addrs[MaxAddresses-1]).To(Equal(clusterv1.MachineAddress{Type: clusterv1.MachineInternalDNS, Address: "big"}), "the hostname is kept")
}
