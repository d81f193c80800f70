package ignition

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// HostnamePath is the file SetHostname writes; the kubelet names its Node after the hostname.
const HostnamePath = "/etc/hostname"

// maxHostnameLength is the longest hostname SetHostname writes: a DNS label's length, which is
// also the longest hostname KubeVirt puts in the config drive metadata.
const maxHostnameLength = validation.DNS1123LabelMaxLength

// SetHostname returns the config with a storage.files entry that writes hostname (and a newline)
// to /etc/hostname, mode 0644, merged by the Ignition library in the config's own spec version.
// When the config already writes /etc/hostname (a file, directory or link), the user's choice
// wins: data is returned unchanged and changed is false. Errors are Validate's, an invalid
// hostname, or ErrReplaced for a config whose ignition.config.replace makes Ignition ignore what
// is added to it. A remote config that the config merges may still write /etc/hostname itself.
func SetHostname(data []byte, hostname string) (out []byte, changed bool, err error) {
	if len(hostname) > maxHostnameLength {
		return nil, false, fmt.Errorf("hostname %q is longer than %d characters", hostname, maxHostnameLength)
	}
	if errs := validation.IsDNS1123Subdomain(hostname); len(errs) > 0 {
		return nil, false, fmt.Errorf("hostname %q is not a valid hostname: %s", hostname, strings.Join(errs, "; "))
	}
	info, paths, err := validate(data)
	if err != nil {
		return nil, false, err
	}
	if info.Replace {
		return nil, false, fmt.Errorf("%w: Ignition would ignore a hostname file added to it (ignition.config.replace); set the hostname in the replacing config, or merge it instead", ErrReplaced)
	}
	if slices.Contains(paths, HostnamePath) {
		return data, false, nil
	}
	child, err := hostnameConfig(info, hostname)
	if err != nil {
		return nil, false, err
	}
	out, err = specs[info.Version].merge(data, child)
	if err != nil {
		return nil, false, fmt.Errorf("adding %s to the Ignition spec %s config: %w", HostnamePath, info.Version, err)
	}
	return out, true, nil
}

// hostnameConfig is a config of the same version as info that only writes /etc/hostname. Spec 2
// names the filesystem and always overwrites; spec 3 must be told to overwrite a file the image
// may already have.
func hostnameConfig(info Info, hostname string) ([]byte, error) {
	file := map[string]any{
		"path":     HostnamePath,
		"mode":     0o644,
		"contents": map[string]any{"source": "data:," + url.PathEscape(hostname+"\n")},
	}
	if info.Major == 2 {
		file["filesystem"] = "root"
	} else {
		file["overwrite"] = true
	}
	return json.Marshal(map[string]any{
		"ignition": map[string]any{"version": info.Version},
		"storage":  map[string]any{"files": []any{file}},
	})
}
