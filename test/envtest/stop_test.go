package envtest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	kerrors "k8s.io/apimachinery/pkg/util/errors"
)

// TestStopIgnoresAnAPIServerThatIsGone: a Stop right after StopAPIServer may signal the process
// envtest has reaped but not yet recorded as exited; that error, and only that one, goes.
func TestStopIgnoresAnAPIServerThatIsGone(t *testing.T) {
	gone := fmt.Errorf("unable to signal for process kube-apiserver to stop: %w", syscall.ESRCH)
	other := errors.New("timeout waiting for process etcd to stop")
	tests := []struct {
		name string
		in   error
		want []string
	}{
		{"nothing", nil, nil},
		{"the API server was gone", kerrors.NewAggregate([]error{gone}), nil},
		{"done already", kerrors.NewAggregate([]error{fmt.Errorf("signal: %w", os.ErrProcessDone)}), nil},
		{"gone, and etcd failed", kerrors.NewAggregate([]error{gone, other}), []string{other.Error()}},
		{"another error", other, []string{other.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withoutGoneProcess(tt.in)
			if len(tt.want) == 0 {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if got == nil || got.Error() != strings.Join(tt.want, ", ") {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
