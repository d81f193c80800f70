package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/nestcapi/cluster-api-provider-nest/internal/placement"
)

// Reasons of spread rejections besides placement's: the Machine cannot be placed at all, or it
// tries to move, or the webhook could not decide.
const (
	// rejectClusterNotFound: the Machine's Cluster does not exist.
	rejectClusterNotFound = "ClusterNotFound"
	// rejectNotNestCluster: the Machine's Cluster's infrastructure is not a NestCluster.
	rejectNotNestCluster = "NotNestCluster"
	// rejectNestClusterNotFound: the Cluster's NestCluster does not exist.
	rejectNestClusterNotFound = "NestClusterNotFound"
	// rejectFailureDomainImmutable: an update changes a control-plane Machine's failure domain.
	rejectFailureDomainImmutable = "FailureDomainImmutable"
	// rejectInternalError: reading the cache failed; the API server reports it and its client retries.
	rejectInternalError = "InternalError"
)

var spreadRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "capnest_controlplane_spread_rejections_total",
	Help: "Control-plane Machines refused by the spread webhooks (defaulting and validation), by reason.",
}, []string{"reason"})

func init() {
	metrics.Registry.MustRegister(spreadRejections)
	// Every reason from zero, so that rate() and increase() see the first rejection of each.
	for _, reason := range []string{
		string(placement.ReasonUnknown), string(placement.ReasonNotControlPlane), string(placement.ReasonUnhealthy),
		string(placement.ReasonUnbalanced), string(placement.ReasonNoHealthyDomain), string(placement.ReasonRequired),
		rejectClusterNotFound, rejectNotNestCluster, rejectNestClusterNotFound, rejectFailureDomainImmutable, rejectInternalError,
	} {
		spreadRejections.WithLabelValues(reason)
	}
}
