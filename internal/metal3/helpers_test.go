package metal3

import (
	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// host is an available, healthy, unclaimed host in namespace metal3, changed by the mutators.
func host(name string, mutate ...func(*bmov1alpha1.BareMetalHost)) bmov1alpha1.BareMetalHost {
	h := bmov1alpha1.BareMetalHost{
		ObjectMeta: metav1.ObjectMeta{Namespace: "metal3", Name: name, Labels: map[string]string{"pool": "workers"}},
		Status: bmov1alpha1.BareMetalHostStatus{
			OperationalStatus: bmov1alpha1.OperationalStatusOK,
			Provisioning:      bmov1alpha1.ProvisionStatus{State: bmov1alpha1.StateAvailable},
		},
	}
	for _, m := range mutate {
		m(&h)
	}
	return h
}

func machine(name, uid string) *infrav1.NestMachine {
	return &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID(uid)}}
}

func inState(s bmov1alpha1.ProvisioningState) func(*bmov1alpha1.BareMetalHost) {
	return func(h *bmov1alpha1.BareMetalHost) { h.Status.Provisioning.State = s }
}

func withLabels(kv ...string) func(*bmov1alpha1.BareMetalHost) {
	return func(h *bmov1alpha1.BareMetalHost) {
		h.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Labels[kv[i]] = kv[i+1]
		}
	}
}
