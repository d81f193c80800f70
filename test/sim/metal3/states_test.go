package metal3

import (
	"errors"
	"testing"
	"time"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// machine drives step over a host the way the simulator does, with a fake clock.
type machine struct {
	host    *bmov1alpha1.BareMetalHost
	in      stepInput
	elapsed time.Duration
}

func newMachine(mutate ...func(*bmov1alpha1.BareMetalHost)) *machine {
	host, _ := NewHost(0, HostsOptions{Namespace: "ns", Online: true})
	host.Generation = 1
	for _, m := range mutate {
		m(host)
	}
	m := &machine{host: host}
	m.in = stepInput{
		now:                metav1.NewTime(time.Unix(1_000_000, 0)),
		credentialsVersion: "1",
		id:                 "id-0",
		hardware: func() (*bmov1alpha1.HardwareDetails, error) {
			return &bmov1alpha1.HardwareDetails{CPU: bmov1alpha1.CPU{Count: 8}, Hostname: "host-0"}, nil
		},
	}
	m.in.elapsed = func(string) time.Duration { return m.elapsed }
	return m
}

// step runs one step and applies its status.
func (m *machine) step(t *testing.T) stepResult {
	t.Helper()
	res, err := step(m.host, m.in)
	if err != nil {
		t.Fatal(err)
	}
	m.host.Status = res.status
	return res
}

// states runs n steps and returns the states the host went through.
func (m *machine) states(t *testing.T, n int) []bmov1alpha1.ProvisioningState {
	t.Helper()
	var states []bmov1alpha1.ProvisioningState
	for range n {
		m.step(t)
		states = append(states, m.host.Status.Provisioning.State)
	}
	return states
}

func TestHostRegistersInspectsAndBecomesAvailable(t *testing.T) {
	g := NewWithT(t)
	m := newMachine()
	g.Expect(m.states(t, 5)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateRegistering, bmov1alpha1.StateInspecting, bmov1alpha1.StatePreparing, bmov1alpha1.StateAvailable, bmov1alpha1.StateAvailable,
	}))
	st := m.host.Status
	g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
	g.Expect(st.HardwareDetails.CPU.Count).To(Equal(8))
	g.Expect(st.Provisioning.ID).To(Equal("id-0"))
	g.Expect(st.GoodCredentials.Reference.Name).To(Equal(m.host.Spec.BMC.CredentialsName))
	g.Expect(st.OperationHistory.Register.End.IsZero()).To(BeFalse())
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, bmov1alpha1.AvailableForProvisioningCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, bmov1alpha1.ManageableCondition)).To(BeTrue())
	g.Expect(st.PoweredOn).To(BeTrue(), "online hosts are powered on while available")

	settled := m.host.Status.DeepCopy()
	m.in.now = metav1.NewTime(m.in.now.Add(time.Hour))
	m.step(t)
	g.Expect(m.host.Status).To(Equal(*settled), "a settled host's status does not change, lastUpdated included")
}

func TestHostWithoutBMCStaysUnmanaged(t *testing.T) {
	m := newMachine(func(h *bmov1alpha1.BareMetalHost) { h.Spec.BMC = bmov1alpha1.BMCDetails{} })
	g := NewWithT(t)
	g.Expect(m.states(t, 2)).To(Equal([]bmov1alpha1.ProvisioningState{bmov1alpha1.StateUnmanaged, bmov1alpha1.StateUnmanaged}))
	g.Expect(m.host.Status.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusDiscovered))
}

func TestStepsWaitForTheirDelay(t *testing.T) {
	g := NewWithT(t)
	m := newMachine()
	m.in.delays.Registering = 5 * time.Second
	m.step(t)
	m.elapsed = 2 * time.Second
	res := m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateRegistering))
	g.Expect(res.requeue).To(Equal(3*time.Second), "look again when the delay is over")
	m.elapsed = 5 * time.Second
	m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateInspecting))
}

func TestRegistrationErrorsUntilCredentialsAreReadable(t *testing.T) {
	g := NewWithT(t)
	m := newMachine()
	m.in.credentialsErr = errors.New("secret host-0-bmc-secret not found")
	m.step(t)
	m.step(t)
	m.step(t)
	st := m.host.Status
	g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateRegistering))
	g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusError))
	g.Expect(st.ErrorType).To(Equal(bmov1alpha1.RegistrationError))
	g.Expect(st.ErrorMessage).To(ContainSubstring("not found"))
	g.Expect(st.ErrorCount).To(Equal(1), "one error, however often it is seen")
	g.Expect(meta.FindStatusCondition(st.Conditions, bmov1alpha1.ManageableCondition).Reason).To(Equal(bmov1alpha1.RegistrationFailedReason))

	m.in.credentialsErr = nil
	m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateInspecting))
	g.Expect(m.host.Status.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
	g.Expect(m.host.Status.ErrorCount).To(Equal(0))
}

func available(t *testing.T, mutate ...func(*bmov1alpha1.BareMetalHost)) *machine {
	m := newMachine(mutate...)
	m.states(t, 4)
	if m.host.Status.Provisioning.State != bmov1alpha1.StateAvailable {
		t.Fatalf("host is %s, not available", m.host.Status.Provisioning.State)
	}
	return m
}

func withImage(url string) func(*bmov1alpha1.BareMetalHost) {
	return func(h *bmov1alpha1.BareMetalHost) {
		h.Spec.Image = &bmov1alpha1.Image{URL: url, Checksum: "abc", ChecksumType: bmov1alpha1.SHA256}
	}
}

func TestProvisionThenDeprovisionBackToAvailable(t *testing.T) {
	g := NewWithT(t)
	m := available(t)
	withImage("http://images/rhcos.qcow2")(m.host)
	g.Expect(m.states(t, 2)).To(Equal([]bmov1alpha1.ProvisioningState{bmov1alpha1.StateProvisioning, bmov1alpha1.StateProvisioned}))
	st := m.host.Status
	g.Expect(st.Provisioning.Image.URL).To(Equal("http://images/rhcos.qcow2"), "the written image mirrors spec.image")
	g.Expect(st.Provisioning.BootMode).To(Equal(bmov1alpha1.UEFI))
	g.Expect(st.PoweredOn).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, bmov1alpha1.ProvisionedCondition)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(st.Conditions, bmov1alpha1.ReadyCondition)).To(BeTrue())

	m.host.Spec.Image = nil
	m.in.delays.Deprovisioning, m.in.delays.Cleaning = time.Second, 2*time.Second
	m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateDeprovisioning))
	m.elapsed = 2 * time.Second
	res := m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateDeprovisioning), "metadata cleaning adds to deprovisioning")
	g.Expect(res.requeue).To(Equal(time.Second))
	m.elapsed = 3 * time.Second
	m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
	g.Expect(m.host.Status.Provisioning.Image.URL).To(BeEmpty())
}

func TestCleaningDisabledSkipsTheCleaningDelay(t *testing.T) {
	m := available(t, withImage("http://images/a"), func(h *bmov1alpha1.BareMetalHost) {
		h.Spec.AutomatedCleaningMode = bmov1alpha1.CleaningModeDisabled
	})
	m.states(t, 2)
	m.host.Spec.Image = nil
	m.in.delays.Deprovisioning, m.in.delays.Cleaning = time.Second, time.Hour
	m.step(t)
	m.elapsed = time.Second
	m.step(t)
	NewWithT(t).Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
}

func TestANewImageIsWrittenAfterTheOldOneIsRemoved(t *testing.T) {
	m := available(t, withImage("http://images/a"))
	m.states(t, 2)
	withImage("http://images/b")(m.host)
	g := NewWithT(t)
	g.Expect(m.states(t, 3)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateDeprovisioning, bmov1alpha1.StateProvisioning, bmov1alpha1.StateProvisioned,
	}))
	g.Expect(m.host.Status.Provisioning.Image.URL).To(Equal("http://images/b"))
}

func TestOfflineHostsAreNotProvisioned(t *testing.T) {
	m := available(t, withImage("http://images/a"), func(h *bmov1alpha1.BareMetalHost) { h.Spec.Online = false })
	m.states(t, 2)
	NewWithT(t).Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateAvailable))
}

func TestInjectedProvisioningErrorHoldsTheHostUntilCleared(t *testing.T) {
	g := NewWithT(t)
	m := available(t, withImage("http://images/a"))
	m.in.fail = bmov1alpha1.ProvisioningError
	m.states(t, 3)
	st := m.host.Status
	g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioning))
	g.Expect(st.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusError))
	g.Expect(st.ErrorType).To(Equal(bmov1alpha1.ProvisioningError))
	g.Expect(st.ErrorMessage).NotTo(BeEmpty())
	g.Expect(meta.FindStatusCondition(st.Conditions, bmov1alpha1.ReadyCondition).Reason).To(Equal(bmov1alpha1.ErrorReason))

	m.in.fail = ""
	m.step(t)
	g.Expect(m.host.Status.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioned))
	g.Expect(m.host.Status.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
	g.Expect(m.host.Status.ErrorType).To(BeEmpty())
}

func TestPowerFailureKeepsThePowerStateAndSaysSo(t *testing.T) {
	g := NewWithT(t)
	m := available(t, withImage("http://images/a"))
	m.states(t, 2)
	m.host.Spec.Online = false
	m.in.fail = bmov1alpha1.PowerManagementError
	m.step(t)
	st := m.host.Status
	g.Expect(st.PoweredOn).To(BeTrue(), "the BMC refused to power off")
	g.Expect(st.ErrorType).To(Equal(bmov1alpha1.PowerManagementError))
	g.Expect(meta.FindStatusCondition(st.Conditions, bmov1alpha1.ManageableCondition).Reason).To(Equal(bmov1alpha1.PowerFailureReason))
	g.Expect(st.Provisioning.State).To(Equal(bmov1alpha1.StateProvisioned))

	m.in.fail = ""
	m.step(t)
	g.Expect(m.host.Status.PoweredOn).To(BeFalse())
	g.Expect(m.host.Status.OperationalStatus).To(Equal(bmov1alpha1.OperationalStatusOK))
}

func TestDeletingAProvisionedHostDeprovisionsPowersOffAndGoes(t *testing.T) {
	g := NewWithT(t)
	m := available(t, withImage("http://images/a"))
	m.states(t, 2)
	now := metav1.Now()
	m.host.DeletionTimestamp = &now
	g.Expect(m.states(t, 3)).To(Equal([]bmov1alpha1.ProvisioningState{
		bmov1alpha1.StateDeprovisioning, bmov1alpha1.StatePoweringOffBeforeDelete, bmov1alpha1.StateDeleting,
	}))
	g.Expect(m.host.Status.PoweredOn).To(BeFalse())
	g.Expect(m.step(t).deleted).To(BeTrue())
}

func TestExternallyProvisionedHostsSkipInspection(t *testing.T) {
	m := newMachine(func(h *bmov1alpha1.BareMetalHost) { h.Spec.ExternallyProvisioned = true })
	g := NewWithT(t)
	g.Expect(m.states(t, 2)).To(Equal([]bmov1alpha1.ProvisioningState{bmov1alpha1.StateRegistering, bmov1alpha1.StateExternallyProvisioned}))
	g.Expect(m.host.Status.HardwareDetails).To(BeNil())
	g.Expect(meta.IsStatusConditionTrue(m.host.Status.Conditions, bmov1alpha1.ProvisionedCondition)).To(BeTrue())
}
