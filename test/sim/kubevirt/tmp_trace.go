package kubevirt

import (
	"fmt"
	"os"
	"time"
)

var traceStart = time.Now()

func trace(name, format string, args ...any) {
	if name == os.Getenv("SIM_TRACE") {
		fmt.Fprintf(os.Stderr, "TRACE %8.3fs %s: %s\n", time.Since(traceStart).Seconds(), name, fmt.Sprintf(format, args...))
	}
}
