package simkit

import (
	"fmt"
	"os"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// LoggerFromEnv is the simulator tests' logger: discarded unless SIM_LOG=<verbosity> asks for the
// simulators' logs on stderr.
func LoggerFromEnv() logr.Logger {
	v, err := strconv.Atoi(os.Getenv("SIM_LOG"))
	if err != nil {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: v})
}
