package ignition

import (
	"strings"
	"testing"
)

func TestConfigDriveHostname(t *testing.T) {
	tests := []struct {
		name, vmiName, specHostname, want string
	}{
		{name: "the VMI name", vmiName: "tenant-cp-abcde", want: "tenant-cp-abcde"},
		{name: "spec.hostname wins", vmiName: "tenant-cp-abcde", specHostname: "node-a", want: "node-a"},
		{name: "a dotted name is cut at the first dot", vmiName: "node.example", want: "node"},
		{name: "a long name is cut to a DNS label", vmiName: strings.Repeat("a", 70), want: strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ConfigDriveHostname(tt.vmiName, tt.specHostname); got != tt.want {
				t.Errorf("ConfigDriveHostname() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigDriveMetadata(t *testing.T) {
	tests := []struct {
		name    string
		in      MetadataInput
		want    string
		wantErr string
	}{
		{
			name: "hostname from the VMI name, firmware UUID",
			in:   MetadataInput{VMIName: "tenant-cp-abcde", Namespace: "nest-tenant", FirmwareUUID: "5d307ca9-b3ef-428c-8861-06e72d69f223"},
			want: `{"instance_id":"tenant-cp-abcde.nest-tenant","hostname":"tenant-cp-abcde","uuid":"5d307ca9-b3ef-428c-8861-06e72d69f223"}`,
		},
		{
			name: "spec.hostname and an instancetype",
			in:   MetadataInput{VMIName: "tenant-cp-abcde", Namespace: "nest-tenant", Hostname: "cp-0", InstanceType: "u1.large"},
			want: `{"instance_type":"u1.large","instance_id":"tenant-cp-abcde.nest-tenant","hostname":"cp-0"}`,
		},
		{name: "no name", in: MetadataInput{Namespace: "ns"}, wantErr: "VMI name"},
		{name: "no namespace", in: MetadataInput{VMIName: "vm"}, wantErr: "namespace"},
		{name: "spec.hostname not a DNS label", in: MetadataInput{VMIName: "vm", Namespace: "ns", Hostname: "a.b"}, wantErr: "spec.hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigDriveMetadata(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ConfigDriveMetadata() error = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigDriveMetadata() unexpected error: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("ConfigDriveMetadata() = %s, want %s", got, tt.want)
			}
		})
	}
}
