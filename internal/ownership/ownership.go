// Package ownership is the one place that says who owns an object the provider made in an Infra
// cluster: the labels and annotations it carries (which management cluster made it, which NestMachine
// or NestCluster it is for, in full), the names derived from its owner (ShortName, LabelValue,
// TenantNamespace, ProviderID), whether a NestMachine may take over an object it finds (Claim), and
// whether the sweeper may delete one (Decide). The map functions, the sweeper, the create and delete
// paths and clusterctl move all decide through it.
package ownership

import (
	"fmt"
	"maps"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Kinds of owner.
const (
	KindNestMachine = "NestMachine"
	KindNestCluster = "NestCluster"
)

// Identity names a management cluster: the value of infrav1.ManagementClusterLabel on everything its
// provider makes. It is a label value.
type Identity string

// Validate checks that the identity can be a label value.
func (id Identity) Validate() error {
	if id == "" {
		return fmt.Errorf("the management cluster identity is empty")
	}
	if errs := validation.IsValidLabelValue(string(id)); len(errs) > 0 {
		return fmt.Errorf("the management cluster identity %q is not a label value: %s", id, strings.Join(errs, "; "))
	}
	return nil
}

// Owner is the object in the management cluster that a remote object is for.
type Owner struct {
	// Kind is KindNestMachine or KindNestCluster.
	Kind string
	// Namespace and Name of the owner, in full.
	Namespace, Name string
	// UID of the owning NestMachine when the object was made; empty for a NestCluster.
	UID types.UID
	// NestCluster is the name of the tenant's NestCluster, in Namespace.
	NestCluster string
}

// Machine is the owner of what is made for a NestMachine of the NestCluster nestCluster.
func Machine(nm *infrav1.NestMachine, nestCluster string) Owner {
	return Owner{Kind: KindNestMachine, Namespace: nm.Namespace, Name: nm.Name, UID: nm.UID, NestCluster: nestCluster}
}

// Cluster is the owner of what is made for a NestCluster (its namespaces and Services).
func Cluster(nc *infrav1.NestCluster) Owner {
	return Owner{Kind: KindNestCluster, Namespace: nc.Namespace, Name: nc.Name, NestCluster: nc.Name}
}

// Key is the owner's namespace and name.
func (o Owner) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
}

// String is "<Kind> <namespace>/<name>".
func (o Owner) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// Same reports whether two owners name the same object (kind, namespace and name; not the UID).
func (o Owner) Same(other Owner) bool {
	return o.Kind == other.Kind && o.Namespace == other.Namespace && o.Name == other.Name
}

// Labels are the ownership labels of objects made for o by the management cluster id: they select
// what is ours in the Infra cluster's caches and map watch events to o. Long names are shortened
// (LabelValue); Annotations carry them in full.
func Labels(id Identity, o Owner) map[string]string {
	l := map[string]string{
		infrav1.ManagedByLabel:            infrav1.ManagedByValue,
		infrav1.NestClusterNamespaceLabel: o.Namespace,
		infrav1.NestClusterNameLabel:      LabelValue(o.NestCluster),
	}
	if id != "" {
		l[infrav1.ManagementClusterLabel] = string(id)
	}
	if o.Kind == KindNestMachine {
		l[infrav1.NestMachineNamespaceLabel] = o.Namespace
		l[infrav1.NestMachineNameLabel] = LabelValue(o.Name)
		l[infrav1.NestMachineUIDLabel] = string(o.UID)
	}
	return l
}

// LabelKeys are the keys Labels may set: the ones a drift correction keeps and a release removes,
// and that VM patches may not change.
var LabelKeys = []string{
	infrav1.ManagedByLabel,
	infrav1.ManagementClusterLabel,
	infrav1.NestMachineNamespaceLabel,
	infrav1.NestMachineNameLabel,
	infrav1.NestMachineUIDLabel,
	infrav1.NestClusterNamespaceLabel,
	infrav1.NestClusterNameLabel,
}

// Annotations name o in full.
func Annotations(o Owner) map[string]string {
	a := map[string]string{infrav1.NestClusterAnnotation: o.Namespace + "/" + o.NestCluster}
	if o.Kind == KindNestMachine {
		a[infrav1.NestMachineAnnotation] = o.Namespace + "/" + o.Name
	}
	return a
}

// AnnotationKeys are the keys Annotations may set, and the hand-over mark.
var AnnotationKeys = []string{infrav1.NestMachineAnnotation, infrav1.NestClusterAnnotation, infrav1.HandedOverAnnotation}

// IdentityOf is the management cluster that made obj ("" when none: made before identities existed,
// or handed over).
func IdentityOf(obj metav1.Object) Identity {
	return Identity(obj.GetLabels()[infrav1.ManagementClusterLabel])
}

// HandedOver reports whether obj was let go by a management cluster its owner moved away from.
func HandedOver(obj metav1.Object) bool {
	_, ok := obj.GetAnnotations()[infrav1.HandedOverAnnotation]
	return ok
}

// OwnerOf reads who obj was made for: its NestMachine (annotation, or for objects made before the
// annotation the labels) or else its NestCluster. It reports false for objects without either.
func OwnerOf(obj metav1.Object) (Owner, bool) {
	l, a := obj.GetLabels(), obj.GetAnnotations()
	o := Owner{UID: types.UID(l[infrav1.NestMachineUIDLabel])}
	if ns, name, ok := splitKey(a[infrav1.NestClusterAnnotation]); ok {
		o.Namespace, o.NestCluster = ns, name
	} else {
		o.Namespace, o.NestCluster = l[infrav1.NestClusterNamespaceLabel], l[infrav1.NestClusterNameLabel]
	}
	if ns, name, ok := splitKey(a[infrav1.NestMachineAnnotation]); ok {
		o.Kind, o.Namespace, o.Name = KindNestMachine, ns, name
		return o, true
	}
	if ns, name := l[infrav1.NestMachineNamespaceLabel], l[infrav1.NestMachineNameLabel]; ns != "" && name != "" {
		o.Kind, o.Namespace, o.Name = KindNestMachine, ns, name
		return o, true
	}
	if o.Namespace != "" && o.NestCluster != "" {
		o.Kind, o.Name, o.UID = KindNestCluster, o.NestCluster, ""
		return o, true
	}
	return Owner{}, false
}

func splitKey(s string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(s, "/")
	return namespace, name, ok && namespace != "" && name != ""
}

// Stamp writes the ownership labels and annotations of o, made by id, on obj, and removes a hand-over
// mark: what adopting an object takes. Labels and annotations of others stay. It reports whether
// anything changed.
func Stamp(obj metav1.Object, id Identity, o Owner) bool {
	labels, annotations := maps.Clone(obj.GetLabels()), maps.Clone(obj.GetAnnotations())
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	maps.Copy(labels, Labels(id, o))
	maps.Copy(annotations, Annotations(o))
	delete(annotations, infrav1.HandedOverAnnotation)
	changed := !maps.Equal(labels, obj.GetLabels()) || !maps.Equal(annotations, obj.GetAnnotations())
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return changed
}

// HandOver marks obj as let go by the management cluster id: its identity label is removed, so no
// sweeper considers it, and the annotation says who let it go. It reports whether anything changed
// (false for an object id did not make).
func HandOver(obj metav1.Object, id Identity) bool {
	if IdentityOf(obj) != id {
		return false
	}
	labels, annotations := maps.Clone(obj.GetLabels()), maps.Clone(obj.GetAnnotations())
	delete(labels, infrav1.ManagementClusterLabel)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[infrav1.HandedOverAnnotation] = string(id)
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return true
}

// Verdict is what a NestMachine or NestCluster may do with an object it finds under the name it
// would give its own.
type Verdict int

const (
	// Ours: made for this very owner by this management cluster.
	Ours Verdict = iota
	// Adopt: this owner's, made by another management cluster or before a move or restore gave the
	// owner a new UID; Stamp it and use it as it is.
	Adopt
	// Earlier: made for an earlier owner of the same name, which is gone; leave it to the sweeper and
	// wait.
	Earlier
	// Foreign: someone else's; never touch it.
	Foreign
)

// Claim decides what owner (made by management cluster id) may do with obj, found where owner's
// object would be. pointsAt tells whether owner records obj as its own: status.remote or
// spec.providerID name it, as they do after clusterctl move or a restore from backup. The reason
// explains any verdict but Ours.
func Claim(id Identity, owner Owner, pointsAt bool, obj metav1.Object) (Verdict, string) {
	have, ok := OwnerOf(obj)
	if !ok {
		return Foreign, "it carries no owner of this provider"
	}
	if !have.Same(owner) {
		return Foreign, "it belongs to " + have.String()
	}
	made := IdentityOf(obj)
	mine := made == id && !HandedOver(obj)
	if owner.Kind == KindNestCluster {
		switch {
		case mine:
			return Ours, ""
		case made == "":
			return Adopt, "it was handed over or made before management cluster identities"
		default:
			return Foreign, fmt.Sprintf("it belongs to the same-named %s of management cluster %q: two management clusters sharing an Infra cluster need distinct tenantNamespacePrefix values", have.Kind, made)
		}
	}
	switch {
	case have.UID == owner.UID && mine:
		return Ours, ""
	case have.UID == owner.UID:
		return Adopt, fmt.Sprintf("it was made by management cluster %q", made)
	case pointsAt:
		return Adopt, fmt.Sprintf("the NestMachine records it (it was moved or restored; made for UID %s)", have.UID)
	default:
		return Earlier, fmt.Sprintf("it was made for an earlier NestMachine of this name (UID %s), which is gone", have.UID)
	}
}

// PointsAt reports whether nm records the object namespace/name in Infra cluster infraCluster as its
// own: in status.remote, or in spec.providerID, the part of a NestMachine that clusterctl move
// carries over (it does not carry status).
func PointsAt(nm *infrav1.NestMachine, infraCluster, namespace, name string) bool {
	if r := nm.Status.Remote; r != nil && r.InfraCluster == infraCluster && r.Namespace == namespace && r.Name == name {
		return true
	}
	i, ns, n, err := infrav1.ParseProviderID(nm.Spec.ProviderID)
	return err == nil && i == infraCluster && ns == namespace && n == name
}

// RecordsIn reports whether nm records an object of its own in namespace of Infra cluster
// infraCluster (status.remote or spec.providerID). What a NestMachine makes lives beside what it
// records (a VM and its bootstrap Secret; a host and its data Secret), so the sweeper asks this of
// every object of a NestMachine that exists under another UID.
func RecordsIn(nm *infrav1.NestMachine, infraCluster, namespace string) bool {
	if r := nm.Status.Remote; r != nil && r.InfraCluster == infraCluster && r.Namespace == namespace {
		return true
	}
	i, ns, _, err := infrav1.ParseProviderID(nm.Spec.ProviderID)
	return err == nil && i == infraCluster && ns == namespace
}
