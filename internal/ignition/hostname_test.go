package ignition

import (
	"errors"
	"strings"
	"testing"

	ignconfig "github.com/coreos/ignition/v2/config"
	ign2v24 "github.com/flatcar/ignition/config/v2_4"
	"github.com/vincent-petithory/dataurl"
)

func TestSetHostname(t *testing.T) {
	tests := []struct {
		name        string
		data        string
		hostname    string
		wantChanged bool
		wantErr     error
		wantErrMsg  string
	}{
		{name: "spec 3.0.0 without a hostname gets one", data: `{"ignition":{"version":"3.0.0"}}`, hostname: "tenant-cp-abcde", wantChanged: true},
		{name: "spec 3.1.0", data: `{"ignition":{"version":"3.1.0"}}`, hostname: "tenant-cp-abcde", wantChanged: true},
		{name: "spec 3.3.0", data: `{"ignition":{"version":"3.3.0"}}`, hostname: "tenant-cp-abcde", wantChanged: true},
		{name: "spec 3.5.0", data: `{"ignition":{"version":"3.5.0"}}`, hostname: "tenant-cp-abcde", wantChanged: true},
		{name: "installer pointer config keeps its merge source and CA", data: installerPointer("3.2.0"), hostname: "tenant-cp-abcde", wantChanged: true},
		{
			name:        "spec 3.4.0 with other files keeps them",
			data:        `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/motd","contents":{"source":"data:,hi"},"mode":420}]}}`,
			hostname:    "w-1",
			wantChanged: true,
		},
		{
			name:     "spec 3 config that writes /etc/hostname keeps the user's",
			data:     `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"/etc/hostname","overwrite":true,"contents":{"source":"data:,mine"}}]}}`,
			hostname: "w-1",
		},
		{
			name:     "spec 3 config that links /etc/hostname keeps the user's",
			data:     `{"ignition":{"version":"3.2.0"},"storage":{"links":[{"path":"/etc/hostname","target":"/run/hostname"}]}}`,
			hostname: "w-1",
		},
		{
			name:     "spec 2 path that cleans to /etc/hostname counts as /etc/hostname",
			data:     `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"/etc//hostname","contents":{"source":"data:,mine"}}]}}`,
			hostname: "w-1",
		},
		{name: "Flatcar spec 2.3.0 gets a root filesystem file", data: kubeadmFlatcar, hostname: "tenant-md-0-xyz", wantChanged: true},
		{name: "spec 2.0.0", data: `{"ignition":{"version":"2.0.0"}}`, hostname: "w-1", wantChanged: true},
		{name: "spec 2.1.0", data: `{"ignition":{"version":"2.1.0"}}`, hostname: "w-1", wantChanged: true},
		{name: "spec 2.2.0", data: `{"ignition":{"version":"2.2.0"}}`, hostname: "w-1", wantChanged: true},
		{name: "spec 2.4.0", data: `{"ignition":{"version":"2.4.0"}}`, hostname: "w-1", wantChanged: true},
		{
			name:     "spec 2 config that writes /etc/hostname keeps the user's",
			data:     `{"ignition":{"version":"2.3.0"},"storage":{"files":[{"filesystem":"root","path":"/etc/hostname","contents":{"source":"data:,mine"}}]}}`,
			hostname: "w-1",
		},
		{
			name:        "spec 2 file at /etc/hostname on another filesystem does not count",
			data:        `{"ignition":{"version":"2.3.0"},"storage":{"filesystems":[{"name":"data","path":"/var/data"}],"files":[{"filesystem":"data","path":"/etc/hostname","contents":{"source":"data:,mine"}}]}}`,
			hostname:    "w-1",
			wantChanged: true,
		},
		{
			name:       "a replace pointer config would drop the file",
			data:       `{"ignition":{"version":"3.2.0","config":{"replace":{"source":"` + mcsURL + `"}}}}`,
			hostname:   "w-1",
			wantErr:    ErrReplaced,
			wantErrMsg: "ignition.config.replace",
		},
		{name: "invalid config", data: `{"ignition":{"version":"3.2.0"},"storage":{"files":[{"path":"rel"}]}}`, hostname: "w-1", wantErr: ErrInvalid},
		{name: "empty config", data: ``, hostname: "w-1", wantErr: ErrEmpty},
		{name: "hostname with upper case", data: `{"ignition":{"version":"3.2.0"}}`, hostname: "Worker-1", wantErrMsg: "not a valid hostname"},
		{name: "empty hostname", data: `{"ignition":{"version":"3.2.0"}}`, hostname: "", wantErrMsg: "not a valid hostname"},
		{name: "hostname too long", data: `{"ignition":{"version":"3.2.0"}}`, hostname: strings.Repeat("a", 64), wantErrMsg: "longer than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := SetHostname([]byte(tt.data), tt.hostname)
			if tt.wantErr != nil || tt.wantErrMsg != "" {
				if err == nil {
					t.Fatal("SetHostname() succeeded, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("SetHostname() error = %v, want one wrapping %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErrMsg) {
					t.Errorf("SetHostname() error %q does not say %q", err, tt.wantErrMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetHostname() unexpected error: %v", err)
			}
			if changed != tt.wantChanged {
				t.Fatalf("SetHostname() changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed {
				if string(out) != tt.data {
					t.Errorf("SetHostname() changed the data although it reported no change:\n%s", out)
				}
				return
			}

			before, err := Validate([]byte(tt.data))
			if err != nil {
				t.Fatalf("Validate(input) unexpected error: %v", err)
			}
			after, err := Validate(out)
			if err != nil {
				t.Fatalf("the result is not a valid Ignition config: %v\n%s", err, out)
			}
			if !equalInfo(before, after) {
				t.Errorf("the result's Info = %+v, want the input's %+v (same version, pointers, CAs)", after, before)
			}
			contents, files := hostnameContents(t, out, after.Major)
			if contents != tt.hostname+"\n" {
				t.Errorf("/etc/hostname holds %q, want %q", contents, tt.hostname+"\n")
			}
			if wantFiles := inputFiles(t, tt.data, before.Major) + 1; files != wantFiles {
				t.Errorf("the result writes %d files, want %d: the input's and /etc/hostname", files, wantFiles)
			}
			again, changedAgain, err := SetHostname(out, "other")
			if err != nil || changedAgain || string(again) != string(out) {
				t.Errorf("SetHostname() on its own result = (changed %v, err %v), want it unchanged: the hostname is now the config's", changedAgain, err)
			}
		})
	}
}

// hostnameContents reads the result back with the Ignition libraries: what /etc/hostname on the
// root filesystem will hold, and how many files the config writes.
func hostnameContents(t *testing.T, data []byte, major int) (string, int) {
	t.Helper()
	var source string
	var files int
	if major == 3 {
		cfg, _, err := ignconfig.Parse(data)
		if err != nil {
			t.Fatalf("parsing the result: %v", err)
		}
		files = len(cfg.Storage.Files)
		for _, f := range cfg.Storage.Files {
			if f.Path == HostnamePath {
				if f.Overwrite == nil || !*f.Overwrite || f.Mode == nil || *f.Mode != 0o644 || f.Contents.Source == nil {
					t.Errorf("/etc/hostname entry = %+v, want overwrite, mode 0644 and contents", f)
				}
				source = *f.Contents.Source
			}
		}
	} else {
		cfg, _, err := ign2v24.Parse(data)
		if err != nil {
			t.Fatalf("parsing the result: %v", err)
		}
		files = len(cfg.Storage.Files)
		for _, f := range cfg.Storage.Files {
			if f.Path == HostnamePath && f.Filesystem == "root" {
				if f.Mode == nil || *f.Mode != 0o644 {
					t.Errorf("/etc/hostname entry = %+v, want mode 0644", f)
				}
				source = f.Contents.Source
			}
		}
	}
	if source == "" {
		t.Fatalf("the result writes no /etc/hostname:\n%s", data)
	}
	u, err := dataurl.DecodeString(source)
	if err != nil {
		t.Fatalf("decoding the /etc/hostname data URL %q: %v", source, err)
	}
	return string(u.Data), files
}

func inputFiles(t *testing.T, data string, major int) int {
	t.Helper()
	if major == 3 {
		cfg, _, err := ignconfig.Parse([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return len(cfg.Storage.Files)
	}
	cfg, _, err := ign2v24.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return len(cfg.Storage.Files)
}
