package webhooks

import (
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	infrav1 "github.com/nestcapi/cluster-api-provider-nest/api/v1alpha1"
)

// Defaults of a NestMachine spec that the CRD schema cannot give, because they depend on other fields
// or fill a list.
const (
	defaultRunStrategy    infrav1.RunStrategy       = "Always"
	defaultPodBinding     infrav1.PodNetworkBinding = "masquerade"
	defaultNetworkName                              = "default"
	defaultChecksumType   infrav1.ImageChecksumType = "auto"
	defaultCleaningMode   infrav1.CleaningMode      = "metadata"
	defaultInstancetype   infrav1.InstancetypeKind  = "VirtualMachineClusterInstancetype"
	defaultPreference     infrav1.PreferenceKind    = "VirtualMachineClusterPreference"
	evictLiveMigrate      infrav1.EvictionStrategy  = "LiveMigrate"
	evictLiveMigrateMaybe infrav1.EvictionStrategy  = "LiveMigrateIfPossible"
	evictNone             infrav1.EvictionStrategy  = "None"

	// maxDedicatedThreads is the most threads per core KubeVirt's admission takes for a VM with
	// dedicated CPUs.
	maxDedicatedThreads = 2
)

// defaultNestMachineSpec fills what a NestMachine leaves out.
//
// The eviction strategy follows what the VM can do when its Infra node drains: LiveMigrate when it
// can certainly migrate (a containerDisk, or a ReadWriteMany root disk) — a control-plane VM then
// survives node maintenance; None when it certainly cannot (a ReadWriteOnce disk, or a bridge on the
// pod network) — LiveMigrate would block the drain forever; and LiveMigrateIfPossible when the root
// disk's access mode is left to the Infra cluster's storage profile, so the VM migrates if the
// profile gives ReadWriteMany and is shut down otherwise.
func defaultNestMachineSpec(spec *infrav1.NestMachineSpec) {
	if kv := spec.KubeVirt; kv != nil {
		if kv.RunStrategy == "" {
			kv.RunStrategy = defaultRunStrategy
		}
		if kv.CPU != nil {
			if kv.CPU.Sockets == 0 {
				kv.CPU.Sockets = 1
			}
			if kv.CPU.Threads == 0 {
				kv.CPU.Threads = 1
			}
		}
		if kv.Instancetype != nil && kv.Instancetype.Kind == "" {
			kv.Instancetype.Kind = defaultInstancetype
		}
		if kv.Preference != nil && kv.Preference.Kind == "" {
			kv.Preference.Kind = defaultPreference
		}
		if len(kv.Networks) == 0 {
			kv.Networks = []infrav1.Network{{Name: defaultNetworkName, Pod: &infrav1.PodNetwork{}}}
		}
		for i := range kv.Networks {
			if pod := kv.Networks[i].Pod; pod != nil && pod.Binding == "" {
				pod.Binding = defaultPodBinding
			}
		}
		if kv.EvictionStrategy == "" {
			switch migratable, _ := liveMigratable(kv); migratable {
			case migratableYes:
				kv.EvictionStrategy = evictLiveMigrate
			case migratableNo:
				kv.EvictionStrategy = evictNone
			default:
				kv.EvictionStrategy = evictLiveMigrateMaybe
			}
		}
	}
	if bm := spec.BareMetal; bm != nil {
		if bm.Image.ChecksumType == "" && bm.Image.Checksum != "" {
			bm.Image.ChecksumType = defaultChecksumType
		}
		if bm.CleaningMode == "" {
			bm.CleaningMode = defaultCleaningMode
		}
	}
}

type migratability int

const (
	migratableUnknown migratability = iota
	migratableYes
	migratableNo
)

// migrationBlocker names the field that keeps a VM from live-migrating, why, and the fix.
type migrationBlocker func(kubevirt *field.Path) (blocking *field.Path, why, fix string)

// liveMigratable says whether KubeVirt can live-migrate the VM, and if not, what prevents it.
func liveMigratable(kv *infrav1.KubeVirtMachineSpec) (migratability, migrationBlocker) {
	for i, n := range kv.Networks {
		if n.Pod != nil && n.Pod.Binding == "bridge" {
			return migratableNo, func(p *field.Path) (*field.Path, string, string) {
				return p.Child("networks").Index(i).Child("pod", "binding"), "a bridge binding on the pod network", "binding masquerade"
			}
		}
	}
	if kv.BootImage.ContainerDisk != nil {
		return migratableYes, nil
	}
	if kv.RootDisk == nil || kv.RootDisk.AccessMode == "" {
		return migratableUnknown, nil
	}
	if kv.RootDisk.AccessMode == corev1.ReadWriteMany {
		return migratableYes, nil
	}
	mode := kv.RootDisk.AccessMode
	return migratableNo, func(p *field.Path) (*field.Path, string, string) {
		return p.Child("rootDisk", "accessMode"), fmt.Sprintf("a %s root disk, which only one node can attach", mode), "rootDisk.accessMode ReadWriteMany"
	}
}

// validateNestMachineSpec checks what the CRD schema cannot: consistency between fields, selectors
// and placement terms, and the JSON patches. It returns warnings for what is valid but likely not
// what the user wants.
func validateNestMachineSpec(spec *infrav1.NestMachineSpec, allow []infrav1.VMPatchFeature, path *field.Path) (field.ErrorList, admission.Warnings) {
	var errs field.ErrorList
	var warnings admission.Warnings
	if kv := spec.KubeVirt; kv != nil {
		e, w := validateKubeVirt(kv, allow, path.Child("kubevirt"))
		errs, warnings = append(errs, e...), append(warnings, w...)
	}
	if bm := spec.BareMetal; bm != nil {
		errs = append(errs, validateBareMetal(bm, path.Child("baremetal"))...)
	}
	return errs, warnings
}

func validateKubeVirt(kv *infrav1.KubeVirtMachineSpec, allow []infrav1.VMPatchFeature, path *field.Path) (field.ErrorList, admission.Warnings) {
	var errs field.ErrorList
	var warnings admission.Warnings

	if cd := kv.BootImage.ContainerDisk; cd != nil {
		if _, err := reference.ParseNormalizedNamed(cd.Image); err != nil {
			errs = append(errs, field.Invalid(path.Child("bootImage", "containerDisk", "image"), cd.Image,
				fmt.Sprintf("not an image reference (%v): use [registry/]repository[:tag][@digest], e.g. quay.io/containerdisks/fedora:42", err)))
		}
	}
	if r := kv.BootImage.Registry; r != nil && strings.HasPrefix(r.URL, "docker://") {
		if _, err := reference.ParseNormalizedNamed(strings.TrimPrefix(r.URL, "docker://")); err != nil {
			errs = append(errs, field.Invalid(path.Child("bootImage", "registry", "url"), r.URL,
				fmt.Sprintf("not docker://<image reference> (%v): e.g. docker://quay.io/containerdisks/fedora:42", err)))
		}
	}
	if kv.BootImage.ContainerDisk != nil && kv.RootDisk != nil {
		errs = append(errs, field.Forbidden(path.Child("rootDisk"),
			"rootDisk applies to a boot image that is imported or cloned (http, registry, pvc or dataSource); a containerDisk root disk is ephemeral and has no size, storage class or access mode: remove rootDisk or choose another bootImage source"))
	}

	if c := kv.CPU; c != nil && c.Dedicated && c.Threads > maxDedicatedThreads {
		errs = append(errs, field.Invalid(path.Child("cpu", "threads"), c.Threads,
			fmt.Sprintf("with %s KubeVirt allows at most %d threads per core (it refuses the VM otherwise): use more cores or sockets, or drop dedicated",
				path.Child("cpu", "dedicated"), maxDedicatedThreads)))
	}

	switch kv.EvictionStrategy {
	case evictLiveMigrate:
		switch migratable, blocker := liveMigratable(kv); migratable {
		case migratableNo:
			blocking, why, fix := blocker(path)
			errs = append(errs, field.Invalid(path.Child("evictionStrategy"), kv.EvictionStrategy,
				fmt.Sprintf("LiveMigrate cannot move a VM with %s (%s), so a drain of its Infra node would wait forever: use %s, or evictionStrategy None or LiveMigrateIfPossible", why, blocking, fix)))
		case migratableUnknown:
			warnings = append(warnings, fmt.Sprintf("%s is LiveMigrate but %s is not set: live migration works only if the Infra cluster's storage profile gives the root disk ReadWriteMany; set it, or use LiveMigrateIfPossible",
				path.Child("evictionStrategy"), path.Child("rootDisk", "accessMode")))
		}
	}

	if kv.RunStrategy == "Halted" || kv.RunStrategy == "Manual" {
		warnings = append(warnings, fmt.Sprintf("%s is %s: the VM does not start by itself, so the machine stays unprovisioned until it is started", path.Child("runStrategy"), kv.RunStrategy))
	}

	macs := map[string]int{}
	for i, n := range kv.Networks {
		if n.MACAddress == "" {
			continue
		}
		if hw, err := net.ParseMAC(n.MACAddress); err == nil && hw[0]&1 == 1 {
			errs = append(errs, field.Invalid(path.Child("networks").Index(i).Child("macAddress"), n.MACAddress,
				"a multicast address (the lowest bit of the first octet is set), which libvirt refuses for an interface, so the VM would never start: use a unicast address, e.g. a locally administered one such as 02:xx:xx:xx:xx:xx"))
		}
		mac := strings.ToLower(n.MACAddress)
		if first, ok := macs[mac]; ok {
			dup := field.Duplicate(path.Child("networks").Index(i).Child("macAddress"), n.MACAddress)
			dup.Detail = fmt.Sprintf("already used by %s: every interface needs its own MAC address", path.Child("networks").Index(first).Child("macAddress"))
			errs = append(errs, dup)
			continue
		}
		macs[mac] = i
	}

	if kv.Placement != nil {
		errs = append(errs, validatePlacement(kv.Placement, path.Child("placement"))...)
	}
	errs = append(errs, validateVMPatches(kv, allow, path.Child("vmPatches"))...)
	return errs, warnings
}

var (
	hexDigits = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	integer   = regexp.MustCompile(`^-?[0-9]+$`)
)

// checksumLengths are the hexadecimal lengths of the digests Metal3 supports.
var checksumLengths = map[infrav1.ImageChecksumType]int{"md5": 32, "sha256": 64, "sha512": 128}

func validateBareMetal(bm *infrav1.BareMetalMachineSpec, path *field.Path) field.ErrorList {
	errs := validateLabelSelector(&bm.HostSelector, path.Child("hostSelector"))

	image, imagePath := bm.Image, path.Child("image")
	if image.Checksum == "" {
		if image.ChecksumType != "" {
			errs = append(errs, field.Forbidden(imagePath.Child("checksumType"), "checksumType needs image.checksum (a digest or the URL of a checksum file); remove it or set the checksum"))
		}
		return errs
	}
	if strings.Contains(image.Checksum, "://") {
		return errs // the URL of a checksum file
	}
	if want, ok := checksumLengths[image.ChecksumType]; ok {
		if len(image.Checksum) != want || !hexDigits.MatchString(image.Checksum) {
			errs = append(errs, field.Invalid(imagePath.Child("checksum"), image.Checksum,
				fmt.Sprintf("a %s checksum is %d hexadecimal characters; give the digest, the URL of a checksum file, or the right checksumType", image.ChecksumType, want)))
		}
		return errs
	}
	// auto (or not set): Metal3 recognises the algorithm by the digest's length.
	if !hexDigits.MatchString(image.Checksum) || (len(image.Checksum) != 32 && len(image.Checksum) != 64 && len(image.Checksum) != 128) {
		errs = append(errs, field.Invalid(imagePath.Child("checksum"), image.Checksum,
			"with checksumType auto the checksum must be an md5, sha256 or sha512 digest (32, 64 or 128 hexadecimal characters) or the URL of a checksum file"))
	}
	return errs
}

var (
	tolerationOperators = map[corev1.TolerationOperator]bool{corev1.TolerationOpEqual: true, corev1.TolerationOpExists: true, "": true}
	taintEffects        = map[corev1.TaintEffect]bool{corev1.TaintEffectNoSchedule: true, corev1.TaintEffectPreferNoSchedule: true, corev1.TaintEffectNoExecute: true, "": true}
)

// validatePlacement checks the parts of node selectors, tolerations and affinity that the API server
// would only check when it creates the VM's pod in the Infra cluster — too late to tell the user.
func validatePlacement(p *infrav1.Placement, path *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabels(p.NodeSelector, path.Child("nodeSelector"))
	for i, t := range p.Tolerations {
		tp := path.Child("tolerations").Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		}
		if !tolerationOperators[t.Operator] {
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, []string{string(corev1.TolerationOpEqual), string(corev1.TolerationOpExists)}))
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "a toleration without a key must use operator Exists (it tolerates every taint)"))
		}
		switch t.Operator {
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "a toleration with operator Exists takes no value"))
			}
		case corev1.TolerationOpEqual, "":
			if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
				errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "a taint's value is a label value, so the VM's pod would be refused: "+strings.Join(msgs, "; ")))
			}
		}
		if !taintEffects[t.Effect] {
			errs = append(errs, field.NotSupported(tp.Child("effect"), t.Effect, []string{string(corev1.TaintEffectNoSchedule), string(corev1.TaintEffectPreferNoSchedule), string(corev1.TaintEffectNoExecute)}))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(tp.Child("tolerationSeconds"), *t.TolerationSeconds, "tolerationSeconds applies only to effect NoExecute"))
		}
	}
	if a := p.Affinity; a != nil {
		ap := path.Child("affinity")
		if na := a.NodeAffinity; na != nil {
			nap := ap.Child("nodeAffinity")
			if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
				rp := nap.Child("requiredDuringSchedulingIgnoredDuringExecution")
				if len(req.NodeSelectorTerms) == 0 {
					errs = append(errs, field.Required(rp.Child("nodeSelectorTerms"), "at least one term; an empty list matches no node"))
				}
				for i, term := range req.NodeSelectorTerms {
					errs = append(errs, validateNodeSelectorTerm(term, rp.Child("nodeSelectorTerms").Index(i))...)
				}
			}
			for i, pref := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				pp := nap.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
				errs = append(errs, validateWeight(pref.Weight, pp.Child("weight"))...)
				errs = append(errs, validateNodeSelectorTerm(pref.Preference, pp.Child("preference"))...)
			}
		}
		if pa := a.PodAffinity; pa != nil {
			errs = append(errs, validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap.Child("podAffinity"))...)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			errs = append(errs, validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, ap.Child("podAntiAffinity"))...)
		}
	}
	return errs
}

func validateWeight(w int32, path *field.Path) field.ErrorList {
	if w < 1 || w > 100 {
		return field.ErrorList{field.Invalid(path, w, "must be between 1 and 100")}
	}
	return nil
}

func validateNodeSelectorTerm(term corev1.NodeSelectorTerm, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, req := range term.MatchExpressions {
		rp := path.Child("matchExpressions").Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(req.Key, rp.Child("key"))...)
		errs = append(errs, validateNodeSelectorRequirement(req, rp)...)
	}
	for i, req := range term.MatchFields {
		rp := path.Child("matchFields").Index(i)
		if req.Key != "metadata.name" {
			errs = append(errs, field.NotSupported(rp.Child("key"), req.Key, []string{"metadata.name"}))
		}
		if req.Operator != corev1.NodeSelectorOpIn && req.Operator != corev1.NodeSelectorOpNotIn {
			errs = append(errs, field.NotSupported(rp.Child("operator"), req.Operator, []string{string(corev1.NodeSelectorOpIn), string(corev1.NodeSelectorOpNotIn)}))
		} else if len(req.Values) != 1 {
			errs = append(errs, field.Invalid(rp.Child("values"), req.Values, "a matchFields requirement takes exactly one value"))
		}
	}
	return errs
}

func validateNodeSelectorRequirement(req corev1.NodeSelectorRequirement, path *field.Path) field.ErrorList {
	switch req.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(req.Values) == 0 {
			return field.ErrorList{field.Required(path.Child("values"), "operators In and NotIn need at least one value")}
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if len(req.Values) > 0 {
			return field.ErrorList{field.Forbidden(path.Child("values"), "operators Exists and DoesNotExist take no values")}
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(req.Values) != 1 || !integer.MatchString(req.Values[0]) {
			return field.ErrorList{field.Invalid(path.Child("values"), req.Values, "operators Gt and Lt take exactly one integer value")}
		}
	default:
		return field.ErrorList{field.NotSupported(path.Child("operator"), req.Operator,
			[]string{"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})}
	}
	return nil
}

func validatePodAffinityTerms(required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, term := range required {
		errs = append(errs, validatePodAffinityTerm(term, path.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i))...)
	}
	for i, w := range preferred {
		wp := path.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
		errs = append(errs, validateWeight(w.Weight, wp.Child("weight"))...)
		errs = append(errs, validatePodAffinityTerm(w.PodAffinityTerm, wp.Child("podAffinityTerm"))...)
	}
	return errs
}

func validatePodAffinityTerm(term corev1.PodAffinityTerm, path *field.Path) field.ErrorList {
	errs := validateLabelSelector(term.LabelSelector, path.Child("labelSelector"))
	errs = append(errs, validateLabelSelector(term.NamespaceSelector, path.Child("namespaceSelector"))...)
	if term.TopologyKey == "" {
		errs = append(errs, field.Required(path.Child("topologyKey"), "a node label key such as kubernetes.io/hostname"))
	} else {
		errs = append(errs, metav1validation.ValidateLabelName(term.TopologyKey, path.Child("topologyKey"))...)
	}
	for i, ns := range term.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path.Child("namespaces").Index(i), ns, "a namespace name, so the VM's pod would be refused: "+strings.Join(msgs, "; ")))
		}
	}
	for i, key := range term.MatchLabelKeys {
		errs = append(errs, metav1validation.ValidateLabelName(key, path.Child("matchLabelKeys").Index(i))...)
	}
	for i, key := range term.MismatchLabelKeys {
		errs = append(errs, metav1validation.ValidateLabelName(key, path.Child("mismatchLabelKeys").Index(i))...)
	}
	return errs
}
