package infra

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// An Infra cluster's refusal becomes an error naming the verb, the resource with its group and the
// namespace to grant; anything else passes through unchanged.
func TestForbiddenNamesWhatToGrant(t *testing.T) {
	vms := schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachines"}
	notFound := apierrors.NewNotFound(vms, "vm-0")
	for _, tc := range []struct {
		name     string
		verb, ns string
		err      error
		want     *ForbiddenError // nil: passed through unchanged
		message  string
	}{
		{
			name: "RBAC refusal in a namespace", verb: "create", ns: "nest-default-t1",
			err: apierrors.NewForbidden(vms, "vm-0", errors.New(`User "system:serviceaccount:nest-system:nest-infra" cannot create resource "virtualmachines" in API group "kubevirt.io" in the namespace "nest-default-t1"`)),
			want: &ForbiddenError{InfraCluster: "infra-a", User: "system:serviceaccount:nest-system:nest-infra", Verb: "create",
				Resource: "virtualmachines.kubevirt.io", Namespace: "nest-default-t1"},
			message: `forbidden: cannot create virtualmachines.kubevirt.io in namespace nest-default-t1 in Infra cluster infra-a: grant system:serviceaccount:nest-system:nest-infra "create" on virtualmachines.kubevirt.io there, as the ClusterRole in config/infra-rbac does`,
		},
		{
			name: "RBAC refusal of a list at the cluster scope, as a reflector wraps it", verb: "list",
			err: fmt.Errorf("failed to list *v1.Node: %w", apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "",
				errors.New(`User "u" cannot watch resource "nodes" in API group "" at the cluster scope`))),
			want:    &ForbiddenError{InfraCluster: "infra-a", User: "u", Verb: "watch", Resource: "nodes"},
			message: `forbidden: cannot watch nodes at the cluster scope in Infra cluster infra-a`,
		},
		{
			name: "a subresource", verb: "update", ns: "ns",
			err: apierrors.NewForbidden(schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachines/finalizers"}, "vm-0",
				errors.New(`User "u" cannot update resource "virtualmachines/finalizers" in API group "kubevirt.io" in the namespace "ns"`)),
			want: &ForbiddenError{InfraCluster: "infra-a", User: "u", Verb: "update", Resource: "virtualmachines.kubevirt.io/finalizers", Namespace: "ns"},
		},
		{
			name: "another authorizer's wording: the request's verb and the status details", verb: "delete", ns: "ns",
			err:     apierrors.NewForbidden(schema.GroupResource{Group: "metal3.io", Resource: "baremetalhosts"}, "host-0", errors.New("denied by policy")),
			want:    &ForbiddenError{InfraCluster: "infra-a", Verb: "delete", Resource: "baremetalhosts.metal3.io", Namespace: "ns"},
			message: "forbidden: cannot delete baremetalhosts.metal3.io in namespace ns in Infra cluster infra-a: grant the provider's identity",
		},
		{name: "not a refusal", verb: "get", err: notFound},
		{name: "no error", verb: "get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Forbidden("infra-a", tc.verb, tc.ns, tc.err)
			if tc.want == nil {
				if got != tc.err {
					t.Fatalf("got %v, want the error unchanged", got)
				}
				return
			}
			var fe *ForbiddenError
			if !errors.As(got, &fe) {
				t.Fatalf("got %T %v, want a *ForbiddenError", got, got)
			}
			if !apierrors.IsForbidden(got) {
				t.Errorf("apierrors.IsForbidden is false for %v", got)
			}
			tc.want.err = fe.err
			if *fe != *tc.want {
				t.Errorf("got %+v, want %+v", *fe, *tc.want)
			}
			if !strings.HasPrefix(got.Error(), tc.message) {
				t.Errorf("message %q does not start with %q", got.Error(), tc.message)
			}
			if Forbidden("infra-b", "get", "", got) != got {
				t.Errorf("a ForbiddenError is wrapped again")
			}
		})
	}
}
