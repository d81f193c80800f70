package ownership

import (
	"fmt"
	"time"
)

// Evidence is what the sweeper found out about one object carrying its management cluster's identity,
// from live reads of the management cluster (never its cache).
type Evidence struct {
	// Owner is OwnerOf the object.
	Owner Owner
	// OwnerExists: the owner was read and exists.
	OwnerExists bool
	// OwnerUID is the existing owner's UID.
	OwnerUID string
	// OwnerRecordsIt: the existing owner records the object as its own (RecordsIn).
	OwnerRecordsIt bool
	// ClusterPaused: the tenant's Cluster exists and is paused (clusterctl move pauses it first).
	ClusterPaused bool
	// Recorded: the object is in the InfraCluster's status.orphans: its owner was released while the
	// Infra cluster was unreachable, and said so.
	Recorded bool
	// OrphanedFor is how long this sweeper has seen the object without an owner.
	OrphanedFor time.Duration
	// Grace is how long an object must be seen without an owner before it is deleted.
	Grace time.Duration
}

// Decision is the sweeper's verdict on one object.
type Decision struct {
	// Delete the object (deprovision and release, for a host).
	Delete bool
	// Orphaned: no owner claims the object; it is deleted once the grace period has passed.
	Orphaned bool
	// Reason says why, for the log and events.
	Reason string
}

// Decide is the rule the sweeper lives by: it deletes an object only when its owner is proven absent
// (or is a later owner of the same name that does not record it), its Cluster is not paused, and it
// was released on the record or has been without an owner for longer than the grace period. Anything
// else is kept.
func Decide(e Evidence) Decision {
	if e.OwnerExists {
		switch {
		case e.Owner.Kind != KindNestMachine || e.Owner.UID == "" || string(e.Owner.UID) == e.OwnerUID:
			return Decision{Reason: e.Owner.String() + " exists"}
		case e.OwnerRecordsIt:
			return Decision{Reason: fmt.Sprintf("%s exists with another UID and records the object (moved or restored): it adopts it", e.Owner)}
		}
	}
	owner := e.Owner.String() + " is gone"
	if e.OwnerExists {
		owner = fmt.Sprintf("%s was made for UID %s; the NestMachine of that name now has UID %s and does not record it", e.Owner, e.Owner.UID, e.OwnerUID)
	}
	switch {
	case e.ClusterPaused:
		return Decision{Orphaned: true, Reason: owner + ", but its Cluster is paused (clusterctl move pauses it): kept"}
	case e.Recorded:
		return Decision{Delete: true, Orphaned: true, Reason: owner + " and released it while the Infra cluster was unreachable"}
	case e.OrphanedFor < e.Grace:
		return Decision{Orphaned: true, Reason: fmt.Sprintf("%s; kept until it has been orphaned for %s (%s so far)", owner, e.Grace, e.OrphanedFor.Round(time.Second))}
	default:
		return Decision{Delete: true, Orphaned: true, Reason: fmt.Sprintf("%s, orphaned for at least %s", owner, e.Grace)}
	}
}
