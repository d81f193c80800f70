package ignition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/coreos/go-semver/semver"
	ignconfig "github.com/coreos/ignition/v2/config"
	ignv30 "github.com/coreos/ignition/v2/config/v3_0"
	ignv31 "github.com/coreos/ignition/v2/config/v3_1"
	ignv32 "github.com/coreos/ignition/v2/config/v3_2"
	ignv33 "github.com/coreos/ignition/v2/config/v3_3"
	ignv34 "github.com/coreos/ignition/v2/config/v3_4"
	ignv35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"
	ign2v20 "github.com/flatcar/ignition/config/v2_0"
	ign2v21 "github.com/flatcar/ignition/config/v2_1"
	ign2v22 "github.com/flatcar/ignition/config/v2_2"
	ign2v23 "github.com/flatcar/ignition/config/v2_3"
	ign2v24 "github.com/flatcar/ignition/config/v2_4"
	ign2report "github.com/flatcar/ignition/config/validate/report"
)

var (
	// ErrEmpty is returned for empty bootstrap data.
	ErrEmpty = errors.New("the Ignition config is empty")
	// ErrNotJSON is returned for data that is not a JSON object.
	ErrNotJSON = errors.New("the Ignition config is not a JSON object")
	// ErrNoVersion is returned for a JSON object without a semantic version in ignition.version.
	ErrNoVersion = errors.New("the Ignition config has no valid ignition.version")
	// ErrUnsupportedVersion is returned for a spec version outside SupportedVersions.
	ErrUnsupportedVersion = errors.New("the Ignition spec version is not supported")
	// ErrInvalid is returned when the Ignition library rejects the config; the message lists where.
	ErrInvalid = errors.New("the Ignition config is invalid")
	// ErrNotV3 is returned by Info.RequireV3 for a spec 2 config.
	ErrNotV3 = errors.New("the Ignition config is not spec 3")
	// ErrReplaced is returned by SetHostname for a config that ignition.config.replace discards.
	ErrReplaced = errors.New("the Ignition config is replaced by another config at boot")
)

// Info describes a valid Ignition config without holding any of its content but remote URLs.
type Info struct {
	// Version is the config's ignition.version, e.g. "3.2.0".
	Version string
	// Major is the spec's major version: 2 or 3.
	Major int
	// Pointer tells that the config merges or is replaced by a remote config: PointerURLs is not empty.
	Pointer bool
	// PointerURLs are the remote (non-data) sources of ignition.config.merge (spec 3) or
	// ignition.config.append (spec 2), in order, then of ignition.config.replace. For the
	// OpenShift installer's configs this is https://api-int.<cluster>.<base domain>:22623/config/<pool>.
	// They are remote addresses, but a URL may still carry credentials: log them with care.
	PointerURLs []string
	// Replace tells that ignition.config.replace is set: Ignition then boots from that config alone.
	Replace bool
	// CertificateAuthorities counts ignition.security.tls.certificateAuthorities, the CAs Ignition
	// trusts when it fetches a remote config such as the machine-config server's.
	CertificateAuthorities int
}

// RequireV3 returns an error wrapping ErrNotV3 unless the config is Ignition spec 3, the only
// spec RHCOS / OpenShift 4.6+ (and Fedora CoreOS) read.
func (i Info) RequireV3() error {
	if i.Major == 3 {
		return nil
	}
	return fmt.Errorf("%w: it is spec %s, but RHCOS / OpenShift 4.6+ read Ignition spec 3 only: the bootstrap provider or flavor must produce spec 3 (Ignition spec 2 is for Flatcar, as CAPI's kubeadm bootstrap provider renders it)", ErrNotV3, i.Version)
}

// spec is one Ignition spec version this package handles: its major version and how to merge
// two configs of that version with the Ignition library, returning JSON of the same version.
type spec struct {
	major int
	merge func(parent, child []byte) ([]byte, error)
}

// specs are the accepted spec versions. Experimental versions are left out on purpose: the
// Ignition in a guest image only reads the experimental spec of its own build.
var specs = map[string]spec{
	"2.0.0": {2, mergeWith(ign2v20.Parse, ign2v20.Append)},
	"2.1.0": {2, mergeWith(ign2v21.Parse, ign2v21.Append)},
	"2.2.0": {2, mergeWith(ign2v22.Parse, ign2v22.Append)},
	"2.3.0": {2, mergeWith(ign2v23.Parse, ign2v23.Append)},
	"2.4.0": {2, mergeWith(ign2v24.Parse, ign2v24.Append)},
	"3.0.0": {3, mergeWith(ignv30.Parse, ignv30.Merge)},
	"3.1.0": {3, mergeWith(ignv31.Parse, ignv31.Merge)},
	"3.2.0": {3, mergeWith(ignv32.Parse, ignv32.Merge)},
	"3.3.0": {3, mergeWith(ignv33.Parse, ignv33.Merge)},
	"3.4.0": {3, mergeWith(ignv34.Parse, ignv34.Merge)},
	"3.5.0": {3, mergeWith(ignv35.Parse, ignv35.Merge)},
}

// SupportedVersions lists the Ignition spec versions Validate accepts, in ascending order.
func SupportedVersions() []string {
	versions := make([]string, 0, len(specs))
	for v := range specs {
		versions = append(versions, v)
	}
	slices.SortFunc(versions, func(a, b string) int {
		return semver.New(a).Compare(*semver.New(b))
	})
	return versions
}

// Validate parses and validates bootstrap data as an Ignition config of a supported spec version
// (spec 3 with github.com/coreos/ignition/v2, spec 2 with github.com/flatcar/ignition) and
// describes it. Errors wrap ErrEmpty, ErrNotJSON, ErrNoVersion, ErrUnsupportedVersion or
// ErrInvalid, and never quote the data. Spec 2 is accepted: call Info.RequireV3 for RHCOS.
func Validate(data []byte) (Info, error) {
	info, _, err := validate(data)
	return info, err
}

// validate is Validate that also returns the paths the config writes on the root filesystem
// (files, directories and links, cleaned), which SetHostname needs.
func validate(data []byte) (Info, []string, error) {
	version, err := specVersion(data)
	if err != nil {
		return Info{}, nil, err
	}
	s, ok := specs[version.String()]
	if !ok {
		return Info{}, nil, unsupported(version)
	}
	if s.major == 2 {
		return validateV2(data, version.String())
	}
	return validateV3(data, version.String())
}

// versionPattern is what a version may look like to be quoted in an error: nothing a secret
// could hide in.
var versionPattern = regexp.MustCompile(`^[0-9.]{1,16}$`)

// specVersion reads ignition.version after the checks that give the clearest errors for data that
// is not an Ignition config at all.
func specVersion(data []byte) (semver.Version, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return semver.Version{}, ErrEmpty
	}
	switch {
	case bytes.HasPrefix(trimmed, []byte("#cloud-config")):
		return semver.Version{}, fmt.Errorf("%w: it is cloud-config: use the bootstrap format cloud-config", ErrNotJSON)
	case bytes.HasPrefix(trimmed, []byte("#!")):
		return semver.Version{}, fmt.Errorf("%w: it is a script", ErrNotJSON)
	}
	var anything any
	if err := json.Unmarshal(data, &anything); err != nil {
		var syntaxErr *json.SyntaxError
		if errors.As(err, &syntaxErr) {
			line, col := lineColumn(data, syntaxErr.Offset)
			return semver.Version{}, fmt.Errorf("%w: syntax error at line %d, column %d", ErrNotJSON, line, col)
		}
		return semver.Version{}, ErrNotJSON
	}
	object, ok := anything.(map[string]any)
	if !ok {
		return semver.Version{}, fmt.Errorf("%w: it is JSON, but not an object", ErrNotJSON)
	}
	ign, ok := object["ignition"].(map[string]any)
	if !ok {
		if _, v1 := object["ignitionVersion"]; v1 {
			return semver.Version{}, fmt.Errorf("%w: it is an Ignition spec 1 config (ignitionVersion), which is not supported", ErrUnsupportedVersion)
		}
		return semver.Version{}, fmt.Errorf("%w: the ignition object is missing", ErrNoVersion)
	}
	raw, ok := ign["version"].(string)
	if !ok {
		return semver.Version{}, fmt.Errorf("%w: ignition.version is missing or not a string", ErrNoVersion)
	}
	version, err := semver.NewVersion(raw)
	if err != nil {
		if versionPattern.MatchString(raw) {
			return semver.Version{}, fmt.Errorf("%w: ignition.version %q is not a semantic version", ErrNoVersion, raw)
		}
		return semver.Version{}, fmt.Errorf("%w: ignition.version is not a semantic version", ErrNoVersion)
	}
	return *version, nil
}

func unsupported(v semver.Version) error {
	supported := strings.Join(SupportedVersions(), ", ")
	switch {
	case v.PreRelease != "":
		return fmt.Errorf("%w: %s is an experimental spec, which guest images do not read reliably: use one of %s", ErrUnsupportedVersion, v, supported)
	case v.Major == 3 || v.Major == 2:
		return fmt.Errorf("%w: spec %s is not one of %s", ErrUnsupportedVersion, v, supported)
	default:
		return fmt.Errorf("%w: spec %s: RHCOS / OpenShift 4.6+ and Fedora CoreOS need spec 3, Flatcar's kubeadm flavors use spec 2; supported are %s", ErrUnsupportedVersion, v, supported)
	}
}

func validateV3(data []byte, version string) (Info, []string, error) {
	// The version-dispatching parser validates the config in its own spec version and translates
	// it to the newest, so one type serves every 3.x config below.
	cfg, rpt, err := ignconfig.Parse(data)
	if err != nil {
		return Info{}, nil, invalid("3", version, reportProblemsV3(rpt), err)
	}
	info := Info{Version: version, Major: 3, CertificateAuthorities: len(cfg.Ignition.Security.TLS.CertificateAuthorities)}
	for _, m := range cfg.Ignition.Config.Merge {
		info.addSource(m.Source)
	}
	if src := cfg.Ignition.Config.Replace.Source; src != nil {
		info.Replace = true
		info.addSource(src)
	}
	var paths []string
	for _, f := range cfg.Storage.Files {
		paths = append(paths, path.Clean(f.Path))
	}
	for _, d := range cfg.Storage.Directories {
		paths = append(paths, path.Clean(d.Path))
	}
	for _, l := range cfg.Storage.Links {
		paths = append(paths, path.Clean(l.Path))
	}
	return info, paths, nil
}

func validateV2(data []byte, version string) (Info, []string, error) {
	// v2_4.Parse dispatches to the config's own 2.x version and translates it to 2.4.
	cfg, rpt, err := ign2v24.Parse(data)
	if err != nil {
		return Info{}, nil, invalid("2", version, reportProblemsV2(rpt), err)
	}
	info := Info{Version: version, Major: 2, CertificateAuthorities: len(cfg.Ignition.Security.TLS.CertificateAuthorities)}
	for _, a := range cfg.Ignition.Config.Append {
		info.addSource(&a.Source)
	}
	if r := cfg.Ignition.Config.Replace; r != nil {
		info.Replace = true
		info.addSource(&r.Source)
	}
	// In spec 2 a path is relative to a named filesystem; only "root" is the booted system's.
	var paths []string
	for _, f := range cfg.Storage.Files {
		if f.Filesystem == "root" {
			paths = append(paths, path.Clean(f.Path))
		}
	}
	for _, d := range cfg.Storage.Directories {
		if d.Filesystem == "root" {
			paths = append(paths, path.Clean(d.Path))
		}
	}
	for _, l := range cfg.Storage.Links {
		if l.Filesystem == "root" {
			paths = append(paths, path.Clean(l.Path))
		}
	}
	return info, paths, nil
}

// addSource records a pointer source; inline data: URLs are part of the config, not a pointer.
func (i *Info) addSource(source *string) {
	if source == nil || *source == "" {
		return
	}
	if u, err := url.Parse(*source); err == nil && u.Scheme == "data" {
		return
	}
	i.Pointer = true
	i.PointerURLs = append(i.PointerURLs, *source)
}

// maxProblems bounds how many validation problems an error lists.
const maxProblems = 5

// invalid builds the ErrInvalid error. The library's own error (a fixed sentinel such as "config
// is not valid") is named only when the report has no located problem to show.
func invalid(major, version string, problems []string, libErr error) error {
	if len(problems) == 0 {
		return fmt.Errorf("%w: Ignition spec %s config (%s): %s", ErrInvalid, major, version, reason(libErr.Error()))
	}
	more := ""
	if len(problems) > maxProblems {
		more = fmt.Sprintf("; and %d more", len(problems)-maxProblems)
		problems = problems[:maxProblems]
	}
	return fmt.Errorf("%w: Ignition spec %s config (%s): %s%s", ErrInvalid, major, version, strings.Join(problems, "; "), more)
}

// reportProblemsV3 renders the report's errors as "<JSON path> (line L, column C): <reason>". It
// does not use Entry.String: that is fine today, but a report may carry markers that quote data.
func reportProblemsV3(rpt report.Report) []string {
	var problems []string
	for _, e := range rpt.Entries {
		if !e.Kind.IsFatal() {
			continue
		}
		var where []string
		if e.Context.Len() > 0 {
			where = append(where, e.Context.String())
		}
		if e.Marker.StartP != nil {
			line, col := e.Marker.Start()
			where = append(where, fmt.Sprintf("line %d, column %d", line, col))
		}
		problems = append(problems, located(where, e.Message))
	}
	return problems
}

// reportProblemsV2 is reportProblemsV3 for the spec 2 library, whose entries have a line and
// column but no path. Entry.Highlight quotes the data, so it is never used.
func reportProblemsV2(rpt ign2report.Report) []string {
	var problems []string
	for _, e := range rpt.Entries {
		if e.Kind != ign2report.EntryError {
			continue
		}
		var where []string
		if e.Line > 0 {
			where = append(where, fmt.Sprintf("line %d, column %d", e.Line, e.Column))
		}
		problems = append(problems, located(where, e.Message))
	}
	return problems
}

func located(where []string, message string) string {
	message = reason(message)
	if len(where) == 0 {
		return message
	}
	return strings.Join(where, ", ") + ": " + message
}

// quoted matches a Go-quoted string, which is how the libraries quote values from the config.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// reason shortens a message from an Ignition library to what may be shown: quoted values become
// "...", and everything after the first ": " goes, since that is where the libraries append wrapped
// errors that repeat the data unquoted (a unit file's line, a URL the url package failed on).
func reason(message string) string {
	// encoding/json's type errors may quote a number from the data ("number 42"): say it plainly.
	if strings.HasPrefix(message, "json: ") {
		return "a value has the wrong JSON type for its field"
	}
	message = quoted.ReplaceAllString(message, `"..."`)
	message, _, _ = strings.Cut(message, ": ")
	return message
}

// lineColumn turns the offset json.SyntaxError reports (the bytes read, the bad one included)
// into the 1-based line and column of the offending byte.
func lineColumn(data []byte, offset int64) (int, int) {
	offset = max(0, min(offset-1, int64(len(data))))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// mergeWith returns a merge function for one spec version: both configs are parsed by that
// version's parser (so the result stays in that version) and combined by the library's own merge.
func mergeWith[C, R any](parse func([]byte) (C, R, error), merge func(C, C) C) func(parent, child []byte) ([]byte, error) {
	return func(parent, child []byte) ([]byte, error) {
		p, _, err := parse(parent)
		if err != nil {
			return nil, fmt.Errorf("parsing the config: %s", reason(err.Error()))
		}
		c, _, err := parse(child)
		if err != nil {
			return nil, fmt.Errorf("parsing the config to merge: %s", reason(err.Error()))
		}
		return json.Marshal(merge(p, c))
	}
}
