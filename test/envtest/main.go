package envtest

import (
	"fmt"
	"os"
	"testing"
)

// Main is a package's TestMain for tests that share one API server: it starts it with opts, sets
// *env, runs the tests of m, stops the server and exits with the tests' result.
func Main(m *testing.M, opts Options, env **Environment) {
	var err error
	if *env, err = Start(opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*env).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}
