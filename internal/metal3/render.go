package metal3

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	bmov1alpha1 "github.com/metal3-io/baremetal-operator/apis/metal3.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
	"github.com/nestcapi/cluster-api-provider-nest/internal/ownership"
)

const (
	// UserDataKey is the key the baremetal-operator reads spec.userData's Secret from.
	UserDataKey = "userData"
	// NetworkDataKey is the key the baremetal-operator reads spec.networkData's Secret from.
	NetworkDataKey = "networkData"

	// dataSecretInfix names the data Secret after its host: <host>-nest-data-<hash of the machine UID>.
	dataSecretInfix = "-nest-data-"
	hashLength      = 10
)

// Owner is the NestMachine a host is claimed for, as the ownership labels name it.
type Owner struct {
	// NestMachine that claims the host; its namespace, name and UID are needed.
	NestMachine *infrav1.NestMachine
	// NestClusterName is the tenant's NestCluster, in the NestMachine's namespace.
	NestClusterName string
	// Identity is the management cluster's.
	Identity ownership.Identity
}

func (o Owner) owner() ownership.Owner { return ownership.Machine(o.NestMachine, o.NestClusterName) }

// Labels are the ownership labels put on a claimed host and its data Secret: they map watch events
// back to the NestMachine and let the orphan sweeper find what is ours. There is no
// cluster.x-k8s.io/cluster-name label: people label hosts with it to dedicate them to a cluster, and
// releasing the host must not remove what a person put there.
func Labels(o Owner) map[string]string { return ownership.Labels(o.Identity, o.owner()) }

// RenderClaim returns a copy of host claimed for o: consumerRef, ownership labels and annotation.
// Nothing else changes, so the claim is a small write that only conflicts with other writers.
func RenderClaim(host *bmov1alpha1.BareMetalHost, o Owner) *bmov1alpha1.BareMetalHost {
	out := host.DeepCopy()
	out.Spec.ConsumerRef = ConsumerRef(o.NestMachine)
	ownership.Stamp(out, o.Identity, o.owner())
	return out
}

// Provision is what RenderProvision writes on a claimed host.
type Provision struct {
	Owner
	// Spec is the NestMachine's spec.baremetal.
	Spec *infrav1.BareMetalMachineSpec
	// DataSecretName names the Secret next to the host with the user data (RenderDataSecret).
	DataSecretName string
	// WithNetworkData makes spec.networkData point at the same Secret, which then holds network data.
	WithNetworkData bool
}

// RenderProvision returns a copy of host set up to provision p: the claim, online, the cleaning mode
// and — when the host has no image yet — image, userData and networkData. An image already on the
// host is left alone: the baremetal-operator does not reprovision a host whose image changes, so a
// new image takes a new machine (CAPI rolls machines), exactly as with CAPM3. changed tells whether
// the copy differs from host.
func RenderProvision(host *bmov1alpha1.BareMetalHost, p Provision) (out *bmov1alpha1.BareMetalHost, changed bool) {
	out = RenderClaim(host, p.Owner)
	out.Spec.Online = true
	out.Spec.AutomatedCleaningMode = cleaningMode(p.Spec.CleaningMode)
	if out.Spec.Image == nil && out.Spec.CustomDeploy == nil {
		out.Spec.Image = image(p.Spec.Image)
		out.Spec.UserData = &corev1.SecretReference{Namespace: host.Namespace, Name: p.DataSecretName}
		out.Spec.NetworkData = nil
		if p.WithNetworkData {
			out.Spec.NetworkData = &corev1.SecretReference{Namespace: host.Namespace, Name: p.DataSecretName}
		}
	}
	return out, differs(host, out)
}

// cleaningMode defaults to metadata, as the NestMachine API documents (and the operator defaults).
func cleaningMode(m infrav1.CleaningMode) bmov1alpha1.AutomatedCleaningMode {
	if m == "" {
		return bmov1alpha1.CleaningModeMetadata
	}
	return bmov1alpha1.AutomatedCleaningMode(m)
}

// image renders the NestMachine's image. An empty checksum type becomes "auto", as the NestMachine
// API documents: the operator would otherwise assume md5. A live ISO has no checksum, so no type.
func image(in infrav1.BareMetalImage) *bmov1alpha1.Image {
	img := &bmov1alpha1.Image{URL: in.URL, Checksum: in.Checksum, ChecksumType: bmov1alpha1.ChecksumType(in.ChecksumType)}
	if img.ChecksumType == "" && img.Checksum != "" {
		img.ChecksumType = bmov1alpha1.AutoChecksum
	}
	if in.DiskFormat != "" {
		img.DiskFormat = ptr.To(string(in.DiskFormat))
	}
	return img
}

// DataSecretName is the name of the Secret with a machine's user and network data next to its host.
// It names both: the host, so a person sees what it is for, and a hash of the NestMachine's UID, so a
// later claimer of the same host never shares (nor races the sweeper for) a former claimer's Secret.
func DataSecretName(hostName string, machineUID types.UID) string {
	sum := sha256.Sum256([]byte(machineUID))
	suffix := dataSecretInfix + hex.EncodeToString(sum[:])[:hashLength]
	if keep := validation.DNS1123SubdomainMaxLength - len(suffix); len(hostName) > keep {
		hostName = strings.TrimRight(hostName[:keep], "-.")
	}
	return hostName + suffix
}

// RenderDataSecret renders the Secret, in the host's namespace (the operator reads no other), with
// the user data under UserDataKey and, when given, the network data under NetworkDataKey. It carries
// the bootstrap data: never log or print it.
func RenderDataSecret(o Owner, host *bmov1alpha1.BareMetalHost, userData, networkData []byte) *corev1.Secret {
	data := map[string][]byte{UserDataKey: append([]byte{}, userData...)}
	if len(networkData) > 0 {
		data[NetworkDataKey] = append([]byte{}, networkData...)
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   host.Namespace,
			Name:        DataSecretName(host.Name, o.NestMachine.UID),
			Labels:      Labels(o),
			Annotations: ownership.Annotations(o.owner()),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

// RenderDeprovision returns a copy of host with what provisioned it removed — image, custom deploy,
// user, network and meta data — and powered off, which starts the operator's deprovisioning (and
// cleaning). The claim stays: it keeps the host from other claimers until it is available again,
// and it is how the machine finds its host on the way.
func RenderDeprovision(host *bmov1alpha1.BareMetalHost) (out *bmov1alpha1.BareMetalHost, changed bool) {
	out = host.DeepCopy()
	out.Spec.Image = nil
	out.Spec.CustomDeploy = nil
	out.Spec.UserData = nil
	out.Spec.NetworkData = nil
	out.Spec.MetaData = nil
	// A free host stays off, as with CAPM3: nothing of the tenant runs on it any more.
	out.Spec.Online = false
	return out, differs(host, out)
}

// Deprovisioned reports whether a host asked to deprovision (RenderDeprovision) is done: the
// operator took the request and the host is back in a state that runs nothing of the tenant.
func Deprovisioned(host *bmov1alpha1.BareMetalHost) bool {
	if host.Spec.Image != nil || host.Spec.CustomDeploy != nil {
		return false
	}
	switch host.Status.Provisioning.State {
	case bmov1alpha1.StateAvailable, bmov1alpha1.StateReady, bmov1alpha1.StateNone, bmov1alpha1.StateUnmanaged,
		bmov1alpha1.StateRegistering, bmov1alpha1.StateMatchProfile, bmov1alpha1.StateInspecting:
		return true
	case bmov1alpha1.StateExternallyProvisioned:
		// The operator does not deprovision such a host; powered off is all it can be.
		return !host.Status.PoweredOn
	default:
		return false
	}
}

// RenderRelease returns a copy of host without the claim: no consumerRef, none of our labels or
// annotation. Labels and annotations of others stay.
func RenderRelease(host *bmov1alpha1.BareMetalHost) (out *bmov1alpha1.BareMetalHost, changed bool) {
	out = host.DeepCopy()
	out.Spec.ConsumerRef = nil
	for _, k := range ownership.LabelKeys {
		delete(out.Labels, k)
	}
	for _, k := range ownership.AnnotationKeys {
		delete(out.Annotations, k)
	}
	return out, differs(host, out)
}

func differs(a, b *bmov1alpha1.BareMetalHost) bool {
	return !equality.Semantic.DeepEqual(a.Spec, b.Spec) ||
		!equality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		!equality.Semantic.DeepEqual(a.Annotations, b.Annotations)
}
