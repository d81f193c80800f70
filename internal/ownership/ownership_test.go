package ownership

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

const me, other Identity = "mgmt-a", "mgmt-b"

func machine(name string, uid types.UID) *infrav1.NestMachine {
	return &infrav1.NestMachine{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: uid}}
}

// made is an object as the provider of management cluster id makes it for o.
func made(id Identity, o Owner) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: Labels(id, o), Annotations: Annotations(o)}}
}

func TestOwnerOfReadsTheFullNameOfLongOwners(t *testing.T) {
	long := strings.Repeat("worker-named-by-hand-", 4)
	nm := machine(long, "uid-1")
	tests := []struct {
		name string
		obj  metav1.Object
		want Owner
		ok   bool
	}{
		{name: "a machine's object names it in full, whatever the label holds", obj: made(me, Machine(nm, "tenant")),
			want: Owner{Kind: KindNestMachine, Namespace: "team-a", Name: long, UID: "uid-1", NestCluster: "tenant"}, ok: true},
		{name: "a cluster's object names the NestCluster", obj: made(me, Cluster(&infrav1.NestCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tenant"}})),
			want: Owner{Kind: KindNestCluster, Namespace: "team-a", Name: "tenant", NestCluster: "tenant"}, ok: true},
		{name: "an object made before the annotations falls back to the labels", obj: &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			infrav1.NestMachineNamespaceLabel: "team-a", infrav1.NestMachineNameLabel: "w1", infrav1.NestMachineUIDLabel: "u"}}},
			want: Owner{Kind: KindNestMachine, Namespace: "team-a", Name: "w1", UID: "u"}, ok: true},
		{name: "an object without owner labels has no owner", obj: &corev1.Secret{}, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := OwnerOf(tt.obj)
			g.Expect(ok).To(Equal(tt.ok))
			g.Expect(got).To(Equal(tt.want))
		})
	}
	g := NewWithT(t)
	g.Expect(len(Labels(me, Machine(nm, "tenant"))[infrav1.NestMachineNameLabel])).To(Equal(63), "the label is shortened")
}

func TestClaim(t *testing.T) {
	nm := machine("w1", "uid-new")
	owner := Machine(nm, "tenant")
	earlier := Machine(machine("w1", "uid-old"), "tenant")
	handedOver := made(other, earlier)
	HandOver(handedOver, other)
	nc := Cluster(&infrav1.NestCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tenant"}})
	legacy := made("", nc)
	tests := []struct {
		name     string
		owner    Owner
		pointsAt bool
		obj      metav1.Object
		want     Verdict
	}{
		{name: "made for this NestMachine here", owner: owner, obj: made(me, owner), want: Ours},
		{name: "made for this NestMachine by another identity (the flag changed)", owner: owner, obj: made(other, owner), want: Adopt},
		{name: "moved: another UID, the NestMachine's providerID names it", owner: owner, pointsAt: true, obj: made(other, earlier), want: Adopt},
		{name: "moved and handed over", owner: owner, pointsAt: true, obj: handedOver, want: Adopt},
		{name: "an earlier NestMachine of this name that this one does not record", owner: owner, obj: made(me, earlier), want: Earlier},
		{name: "another NestMachine's", owner: owner, pointsAt: true, obj: made(me, Machine(machine("w2", "uid-new"), "tenant")), want: Foreign},
		{name: "not made by this provider", owner: owner, pointsAt: true, obj: &corev1.Secret{}, want: Foreign},
		{name: "a NestCluster's namespace made here", owner: nc, obj: made(me, nc), want: Ours},
		{name: "a NestCluster's namespace made before identities", owner: nc, obj: legacy, want: Adopt},
		{name: "a same-named NestCluster's namespace of another management cluster", owner: nc, obj: made(other, nc), want: Foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, why := Claim(me, tt.owner, tt.pointsAt, tt.obj)
			g.Expect(got).To(Equal(tt.want), why)
			if got != Ours {
				g.Expect(why).NotTo(BeEmpty())
			}
		})
	}
}

func TestStampAndHandOver(t *testing.T) {
	g := NewWithT(t)
	earlier := Machine(machine("w1", "uid-old"), "tenant")
	obj := made(other, earlier)
	obj.Labels["someone-else"] = "kept"

	g.Expect(HandOver(obj, me)).To(BeFalse(), "a management cluster hands over only what it made")
	g.Expect(HandOver(obj, other)).To(BeTrue())
	g.Expect(IdentityOf(obj)).To(BeEmpty())
	g.Expect(HandedOver(obj)).To(BeTrue())

	now := Machine(machine("w1", "uid-new"), "tenant")
	g.Expect(Stamp(obj, me, now)).To(BeTrue())
	g.Expect(IdentityOf(obj)).To(Equal(me))
	g.Expect(HandedOver(obj)).To(BeFalse())
	g.Expect(obj.Labels).To(HaveKeyWithValue(infrav1.NestMachineUIDLabel, "uid-new"))
	g.Expect(obj.Labels).To(HaveKeyWithValue("someone-else", "kept"))
	g.Expect(Stamp(obj, me, now)).To(BeFalse(), "stamping twice changes nothing")
}

func TestPointsAtAndRecordsIn(t *testing.T) {
	g := NewWithT(t)
	nm := machine("w1", "u")
	g.Expect(PointsAt(nm, "infra-1", "ns", "w1")).To(BeFalse())
	nm.Spec.ProviderID = infrav1.ProviderID("infra-1", "ns", "w1")
	g.Expect(PointsAt(nm, "infra-1", "ns", "w1")).To(BeTrue(), "spec.providerID survives clusterctl move")
	g.Expect(PointsAt(nm, "infra-2", "ns", "w1")).To(BeFalse())
	g.Expect(RecordsIn(nm, "infra-1", "ns")).To(BeTrue())
	nm.Spec.ProviderID = ""
	nm.Status.Remote = &infrav1.RemoteObject{InfraCluster: "infra-1", Kind: "VirtualMachine", Namespace: "ns", Name: "w1"}
	g.Expect(PointsAt(nm, "infra-1", "ns", "w1")).To(BeTrue())
	g.Expect(RecordsIn(nm, "infra-1", "other")).To(BeFalse())
}

func TestDecide(t *testing.T) {
	gone := Owner{Kind: KindNestMachine, Namespace: "team-a", Name: "w1", UID: "uid-1"}
	grace := 5 * time.Minute
	tests := []struct {
		name   string
		e      Evidence
		delete bool
	}{
		{name: "the owner exists", e: Evidence{Owner: gone, OwnerExists: true, OwnerUID: "uid-1"}},
		{name: "a NestCluster owner exists", e: Evidence{Owner: Owner{Kind: KindNestCluster, Namespace: "a", Name: "b"}, OwnerExists: true}},
		{name: "the owner exists with another UID and records it (moved)", e: Evidence{Owner: gone, OwnerExists: true, OwnerUID: "uid-2", OwnerRecordsIt: true, OrphanedFor: time.Hour, Grace: grace}},
		{name: "an earlier owner's, orphaned past the grace", e: Evidence{Owner: gone, OwnerExists: true, OwnerUID: "uid-2", OrphanedFor: time.Hour, Grace: grace}, delete: true},
		{name: "gone, but within the grace", e: Evidence{Owner: gone, OrphanedFor: time.Minute, Grace: grace}},
		{name: "gone past the grace", e: Evidence{Owner: gone, OrphanedFor: grace, Grace: grace}, delete: true},
		{name: "gone, but the Cluster is paused", e: Evidence{Owner: gone, ClusterPaused: true, Recorded: true, OrphanedFor: time.Hour, Grace: grace}},
		{name: "released on the record while unreachable", e: Evidence{Owner: gone, Recorded: true, Grace: grace}, delete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			d := Decide(tt.e)
			g.Expect(d.Delete).To(Equal(tt.delete), d.Reason)
			g.Expect(d.Reason).NotTo(BeEmpty())
		})
	}
}

func TestIdentityValidate(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Identity("prod-mgmt").Validate()).To(Succeed())
	g.Expect(Identity("6f1c0e0a-3b7c-4a8e-9f00-0123456789ab").Validate()).To(Succeed())
	g.Expect(Identity("").Validate()).To(MatchError(ContainSubstring("empty")))
	g.Expect(Identity("no spaces").Validate()).To(MatchError(ContainSubstring("not a label value")))
}
