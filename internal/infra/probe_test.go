package infra

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestFailedReadyzChecksNamesOnlyTheFailingChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []string
	}{
		{name: "ready", body: "ok", want: nil},
		{name: "verbose and ready", body: "[+]ping ok\n[+]etcd ok\nreadyz check passed\n", want: nil},
		{
			name: "starting",
			body: "[+]ping ok\n[-]informer-sync failed: reason withheld\n[+]etcd ok\n" +
				"[-]poststarthook/crd-informer-synced failed: reason withheld\nreadyz check failed\n",
			want: []string{"informer-sync", "poststarthook/crd-informer-synced"},
		},
		{name: "last line without newline", body: "[-]etcd failed: reason withheld", want: []string{"etcd"}},
		{name: "not a readyz answer", body: "<html>502 Bad Gateway</html>", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(failedReadyzChecks([]byte(tc.body))).To(Equal(tc.want))
		})
	}
}
