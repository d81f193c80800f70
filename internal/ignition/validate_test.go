package ignition

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// secret stands for what bootstrap data carries (tokens, keys, pull secrets): no error may quote it.
const secret = "S3CR3T-join-token-b0a7f1"

// mcsURL is where the OpenShift installer's pointer configs send Ignition: the machine-config server.
const mcsURL = "https://api-int.tenant.example.com:22623/config/master"

// installerPointer is shaped like the installer's master.ign: merge the machine-config server's
// config, trusting the cluster's root CA.
func installerPointer(version string) string {
	return `{"ignition":{"version":"` + version + `","config":{"merge":[{"source":"` + mcsURL + `"}]},` +
		`"security":{"tls":{"certificateAuthorities":[{"source":"data:text/plain;charset=utf-8;base64,LS0tLS1CRUdJTi1DRVJU"}]}}}}`
}

// kubeadmFlatcar is shaped like CAPI's kubeadm bootstrap output for Flatcar: spec 2.3.0, files on
// the root filesystem, a systemd unit.
const kubeadmFlatcar = `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"/etc/kubeadm.yml",` +
	`"contents":{"source":"data:,token%3A%20` + secret + `"},"mode":384}]},` +
	`"systemd":{"units":[{"name":"kubeadm.service","enabled":true,"contents":"[Unit]\nDescription=kubeadm\n[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}}`

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Info
		// wantErr is the sentinel the error must wrap; wantMsg are substrings its message must hold.
		wantErr error
		wantMsg []string
	}{
		{name: "spec 3.0.0", data: `{"ignition":{"version":"3.0.0"}}`, want: Info{Version: "3.0.0", Major: 3}},
		{name: "spec 3.1.0", data: `{"ignition":{"version":"3.1.0"}}`, want: Info{Version: "3.1.0", Major: 3}},
		{name: "spec 3.2.0", data: `{"ignition":{"version":"3.2.0"}}`, want: Info{Version: "3.2.0", Major: 3}},
		{name: "spec 3.3.0", data: `{"ignition":{"version":"3.3.0"}}`, want: Info{Version: "3.3.0", Major: 3}},
		{name: "spec 3.4.0", data: `{"ignition":{"version":"3.4.0"}}`, want: Info{Version: "3.4.0", Major: 3}},
		{name: "spec 3.5.0", data: `{"ignition":{"version":"3.5.0"}}`, want: Info{Version: "3.5.0", Major: 3}},
		{
			name: "spec 3 with files and units is not a pointer config",
			data: `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/motd","contents":{"source":"data:,hi"},"mode":420}]},` +
				`"systemd":{"units":[{"name":"a.service","contents":"[Service]\nExecStart=/bin/true\n"}]}}`,
			want: Info{Version: "3.4.0", Major: 3},
		},
		{
			name: "installer pointer config 3.1.0 (OpenShift 4.6 to 4.x installers) merges the machine-config server with a CA",
			data: installerPointer("3.1.0"),
			want: Info{Version: "3.1.0", Major: 3, Pointer: true, PointerURLs: []string{mcsURL}, CertificateAuthorities: 1},
		},
		{
			name: "installer pointer config 3.2.0",
			data: installerPointer("3.2.0"),
			want: Info{Version: "3.2.0", Major: 3, Pointer: true, PointerURLs: []string{mcsURL}, CertificateAuthorities: 1},
		},
		{
			name: "a replace pointer config is a pointer config that replaces",
			data: `{"ignition":{"version":"3.2.0","config":{"replace":{"source":"` + mcsURL + `"}}}}`,
			want: Info{Version: "3.2.0", Major: 3, Pointer: true, PointerURLs: []string{mcsURL}, Replace: true},
		},
		{
			name: "an inline data: merge source is not a pointer",
			data: `{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"data:,%7B%22ignition%22%3A%7B%22version%22%3A%223.2.0%22%7D%7D"}]}}}`,
			want: Info{Version: "3.2.0", Major: 3},
		},
		{
			name: "spec 2.3.0 from CAPI's kubeadm bootstrap provider (Flatcar) is accepted",
			data: kubeadmFlatcar,
			want: Info{Version: "2.3.0", Major: 2},
		},
		{name: "spec 2.0.0", data: `{"ignition":{"version":"2.0.0"}}`, want: Info{Version: "2.0.0", Major: 2}},
		{name: "spec 2.1.0", data: `{"ignition":{"version":"2.1.0"}}`, want: Info{Version: "2.1.0", Major: 2}},
		{name: "spec 2.2.0", data: `{"ignition":{"version":"2.2.0"}}`, want: Info{Version: "2.2.0", Major: 2}},
		{name: "spec 2.4.0", data: `{"ignition":{"version":"2.4.0"}}`, want: Info{Version: "2.4.0", Major: 2}},
		{
			name: "spec 2 pointer config appends a remote config",
			data: `{"ignition":{"version":"2.2.0","config":{"append":[{"source":"` + mcsURL + `"}]},"security":{"tls":{"certificateAuthorities":[{"source":"data:,ca"}]}}}}`,
			want: Info{Version: "2.2.0", Major: 2, Pointer: true, PointerURLs: []string{mcsURL}, CertificateAuthorities: 1},
		},
		{name: "empty", data: "", wantErr: ErrEmpty},
		{name: "only whitespace", data: " \n\t", wantErr: ErrEmpty},
		{name: "not JSON", data: "ignition: {version: 3.2.0}", wantErr: ErrNotJSON, wantMsg: []string{"line 1, column 1"}},
		{name: "truncated JSON says where", data: "{\n\"ignition\": {\"version\": \"3.2.0\"", wantErr: ErrNotJSON, wantMsg: []string{"line 2"}},
		{name: "cloud-config says which format to use", data: "#cloud-config\nruncmd: []\n", wantErr: ErrNotJSON, wantMsg: []string{"bootstrap format cloud-config"}},
		{name: "a script", data: "#!/bin/sh\necho hi\n", wantErr: ErrNotJSON, wantMsg: []string{"script"}},
		{name: "a JSON array", data: `[{"ignition":{"version":"3.2.0"}}]`, wantErr: ErrNotJSON, wantMsg: []string{"not an object"}},
		{name: "no ignition object", data: `{"storage":{}}`, wantErr: ErrNoVersion},
		{name: "no version", data: `{"ignition":{}}`, wantErr: ErrNoVersion},
		{name: "version is not semver", data: `{"ignition":{"version":"3.2"}}`, wantErr: ErrNoVersion, wantMsg: []string{`"3.2"`}},
		{name: "spec 1", data: `{"ignitionVersion":1}`, wantErr: ErrUnsupportedVersion, wantMsg: []string{"spec 1"}},
		{name: "unknown 3.x", data: `{"ignition":{"version":"3.9.0"}}`, wantErr: ErrUnsupportedVersion, wantMsg: []string{"3.9.0", "3.5.0"}},
		{name: "experimental spec", data: `{"ignition":{"version":"3.6.0-experimental"}}`, wantErr: ErrUnsupportedVersion, wantMsg: []string{"experimental"}},
		{name: "spec 4", data: `{"ignition":{"version":"4.0.0"}}`, wantErr: ErrUnsupportedVersion, wantMsg: []string{"need spec 3"}},
		{
			name:    "spec 3 invalid field: the error names its path",
			data:    `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"etc/motd","contents":{"source":"data:,hi"}}]}}`,
			wantErr: ErrInvalid,
			wantMsg: []string{"3.2.0", "$.storage.files.0.path", "path not absolute"},
		},
		{
			name:    "spec 3 field of the wrong JSON type",
			data:    `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/etc/motd","mode":"0644"}]}}`,
			wantErr: ErrInvalid,
			wantMsg: []string{"wrong JSON type", "line 1"},
		},
		{
			name:    "spec 3 merge source of an unknown scheme",
			data:    `{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"gopher://api-int:22623/config/master"}]}}}`,
			wantErr: ErrInvalid,
			wantMsg: []string{"$.ignition.config.merge.0.source"},
		},
		{
			name:    "spec 2 invalid field: the error names its line",
			data:    `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"etc/motd"}]}}`,
			wantErr: ErrInvalid,
			wantMsg: []string{"2.3.0", "line 1, column", "path not absolute"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Validate([]byte(tt.data))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Validate() error = %v, want one wrapping %q", err, tt.wantErr)
				}
				for _, m := range tt.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("Validate() error %q does not say %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() unexpected error: %v", err)
			}
			if !equalInfo(got, tt.want) {
				t.Errorf("Validate() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equalInfo(a, b Info) bool {
	return a.Version == b.Version && a.Major == b.Major && a.Pointer == b.Pointer && a.Replace == b.Replace &&
		a.CertificateAuthorities == b.CertificateAuthorities && slices.Equal(a.PointerURLs, b.PointerURLs)
}

func TestRequireV3(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr bool
	}{
		{name: "installer pointer config passes", data: installerPointer("3.2.0")},
		{name: "spec 3.0.0 passes", data: `{"ignition":{"version":"3.0.0"}}`},
		{name: "Flatcar's spec 2.3.0 fails", data: kubeadmFlatcar, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Validate([]byte(tt.data))
			if err != nil {
				t.Fatalf("Validate() unexpected error: %v", err)
			}
			err = info.RequireV3()
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("RequireV3() unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrNotV3) {
				t.Fatalf("RequireV3() error = %v, want one wrapping ErrNotV3", err)
			}
			for _, m := range []string{"2.3.0", "RHCOS", "spec 3", "Flatcar"} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("RequireV3() error %q does not say %q", err, m)
				}
			}
		})
	}
}

func TestSupportedVersions(t *testing.T) {
	want := []string{"2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0", "3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"}
	if got := SupportedVersions(); !slices.Equal(got, want) {
		t.Errorf("SupportedVersions() = %v, want %v", got, want)
	}
}

// TestErrorsNeverQuoteTheConfig puts a distinctive secret next to, and inside, every kind of
// mistake and checks that no error from Validate or SetHostname repeats it.
func TestErrorsNeverQuoteTheConfig(t *testing.T) {
	file3 := func(extra string) string {
		return `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/kubernetes/token","contents":{"source":"data:,` + secret + `"}` + extra + `}]}}`
	}
	tests := []struct {
		name string
		data string
	}{
		{name: "syntax error right after the secret", data: `{"ignition":{"version":"3.4.0"},"x":"` + secret + `",}`},
		{name: "secret as a bare word", data: `{"ignition":` + secret + `}`},
		{name: "secret as the version", data: `{"ignition":{"version":"` + secret + `"}}`},
		{name: "secret as a spec 1 config", data: `{"ignitionVersion":1,"x":"` + secret + `"}`},
		{name: "spec 3 relative path holding the secret", data: `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"` + secret + `"}]}}`},
		{name: "spec 3 unparsable URL holding the secret", data: `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/a","contents":{"source":"ht!tp://` + secret + `"}}]}}`},
		{name: "spec 3 mode of the wrong type", data: file3(`,"mode":"` + secret + `"`)},
		{name: "spec 3 number too large for mode", data: file3(`,"mode":98765432109876543210`)},
		{name: "spec 3 unknown key named like the secret", data: file3(`,"` + secret + `":1,"mode":"x"`)},
		{name: "spec 3 merge source holding the secret", data: `{"ignition":{"version":"3.2.0","config":{"merge":[{"source":"gopher://` + secret + `"}]}}}`},
		{name: "spec 3 unit named like the secret without contents", data: `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"` + secret + `"}]}}`},
		{name: "spec 2 relative path holding the secret", data: `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"` + secret + `"}]}}`},
		{name: "spec 2 mode of the wrong type", data: `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"/a","mode":"` + secret + `"}]}}`},
		{name: "spec 2 unparsable URL holding the secret", data: `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"/a","contents":{"source":"ht!tp://` + secret + `"}}]}}`},
		{name: "spec 3 unit file with the secret after a section name", data: `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"a.service","contents":"[Unit] ` + secret + `\n"}]}}`},
		{name: "spec 2 unit file with the secret after a section name", data: `{"ignition":{"version":"2.3.0"},"systemd":{"units":[{"name":"a.service","contents":"[Unit] ` + secret + `\n"}]}}`},
		{name: "cloud-config holding the secret", data: "#cloud-config\npassword: " + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate([]byte(tt.data))
			if err == nil {
				t.Fatal("Validate() accepted an invalid config")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
				t.Errorf("Validate() error quotes the config: %v", err)
			}
			_, _, err = SetHostname([]byte(tt.data), "vm-0")
			if err == nil {
				t.Fatal("SetHostname() accepted an invalid config")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("SetHostname() error quotes the config: %v", err)
			}
		})
	}
}
