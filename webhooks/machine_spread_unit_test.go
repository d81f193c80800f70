package webhooks

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// TestControlPlaneSpreadHandlers drives the handlers with the fuzz targets' cache: infra-a holds two
// control-plane machines, infra-b one, infra-c takes no control planes, "gone" is published but not
// the tenant's, and one machine has no failure domain.
func TestControlPlaneSpreadHandlers(t *testing.T) {
	s := &ControlPlaneSpread{Client: fuzzReader()}
	raw := func(cluster, kind, fd string, controlPlane bool) []byte {
		m := &clusterv1.Machine{
			ObjectMeta: metav1.ObjectMeta{Name: "new", Labels: map[string]string{}},
			Spec: clusterv1.MachineSpec{ClusterName: cluster, FailureDomain: fd,
				InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: infrav1.GroupVersion.Group, Kind: kind, Name: "new"}},
		}
		if controlPlane {
			m.Labels[clusterv1.MachineControlPlaneLabel] = ""
		}
		b, _ := json.Marshal(m)
		return b
	}
	request := func(op admissionv1.Operation, obj, old []byte) admission.Request {
		return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Namespace: fuzzNamespace, Operation: op,
			Object: runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old}}}
	}
	cases := []struct {
		name      string
		handler   func(context.Context, admission.Request) admission.Response
		req       admission.Request
		allowed   bool
		patch     string
		messageIn []string
	}{
		{"default picks the least-loaded", s.Default, request(admissionv1.Create, raw("tenant", "NestMachine", "", true), nil), true,
			`[{"op":"add","path":"/spec/failureDomain","value":"infra-b"}]`, nil},
		{"default leaves a given failure domain", s.Default, request(admissionv1.Create, raw("tenant", "NestMachine", "infra-a", true), nil), true, "", nil},
		{"default ignores workers", s.Default, request(admissionv1.Create, raw("tenant", "NestMachine", "", false), nil), true, "", nil},
		{"default ignores other providers", s.Default, request(admissionv1.Create, raw("missing", "DockerMachine", "", true), nil), true, "", nil},
		{"default ignores updates", s.Default, request(admissionv1.Update, raw("tenant", "NestMachine", "", true), nil), true, "", nil},
		{"balanced placement", s.Validate, request(admissionv1.Create, raw("tenant", "NestMachine", "infra-b", true), nil), true, "", nil},
		{"unbalanced placement", s.Validate, request(admissionv1.Create, raw("tenant", "NestMachine", "infra-a", true), nil), false, "",
			[]string{"spec.failureDomain", "infra-a=2, infra-b=1", "allowed: infra-b"}},
		{"workers-only Infra cluster", s.Validate, request(admissionv1.Create, raw("tenant", "NestMachine", "infra-c", true), nil), false, "",
			[]string{"does not take control-plane machines"}},
		{"published but unknown", s.Validate, request(admissionv1.Create, raw("tenant", "NestMachine", "gone", true), nil), false, "",
			[]string{"not one of the tenant's Infra clusters"}},
		{"missing Cluster", s.Validate, request(admissionv1.Create, raw("missing", "NestMachine", "infra-b", true), nil), false, "",
			[]string{"spec.clusterName", "Cluster not found"}},
		{"Cluster on another infrastructure", s.Validate, request(admissionv1.Create, raw("docker", "NestMachine", "infra-b", true), nil), false, "",
			[]string{"spec.clusterName", "not a NestCluster"}},
		{"failure domain changed", s.Validate, request(admissionv1.Update, raw("tenant", "NestMachine", "infra-b", true), raw("tenant", "NestMachine", "infra-a", true)), false, "",
			[]string{"spec.failureDomain: Forbidden", `it was "infra-a"`}},
		{"other update", s.Validate, request(admissionv1.Update, raw("tenant", "NestMachine", "infra-a", true), raw("tenant", "NestMachine", "infra-a", true)), true, "", nil},
		{"undecodable", s.Validate, request(admissionv1.Create, []byte("{"), nil), false, "", []string{"decoding the Machine"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.handler(context.Background(), tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v: %+v", resp.Allowed, tc.allowed, resp.Result)
			}
			if string(resp.Patch) != tc.patch {
				t.Fatalf("patch = %s, want %s", resp.Patch, tc.patch)
			}
			for _, want := range tc.messageIn {
				if resp.Result == nil || !strings.Contains(resp.Result.Message, want) {
					t.Fatalf("message %+v does not contain %q", resp.Result, want)
				}
			}
		})
	}
}
