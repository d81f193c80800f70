package v1alpha1_test

import (
	"fmt"
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// k8sClient talks to the one real API server this package's tests share.
var k8sClient client.Client

func TestMain(m *testing.M) {
	env, err := envtest.Start(envtest.Options{CRDs: envtest.Management})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sClient = env.Client
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
