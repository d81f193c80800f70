// Command nest-scheduler is kube-scheduler with the NestPacking plugin compiled in. It takes every
// kube-scheduler flag; the profile that enables the plugin comes from --config.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json, as in kube-scheduler
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics on /metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/nestcapi/cluster-api-provider-nest/scheduler-plugin/pkg/nestpacking"
)

func main() {
	command := app.NewSchedulerCommand(app.WithPlugin(nestpacking.Name, nestpacking.New))
	os.Exit(cli.Run(command))
}
