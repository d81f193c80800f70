// Package kubevirt simulates KubeVirt and CDI on an Infra API server that has their CRDs but none of
// their components: a controller-runtime manager (Run, or SetupWithManager on a caller's manager) whose
// event-driven controllers play
//
//   - virt-controller's VM controller: adds the kubevirt.io/virtualMachineControllerFinalize finalizer,
//     creates the VM's DataVolumes from spec.dataVolumeTemplates (owned by the VM), waits for them (and
//     for other DataVolumes and claims the template mounts), creates the VMI (same name, owned by the VM,
//     the template's labels, annotations and spec, the kubevirt.io/vm-generation annotation), follows
//     runStrategy (Always and RerunOnFailure start and restart a finished VMI, Halted deletes it, Manual
//     leaves it, Once starts one when there is none and never restarts it; spec.running maps to Always or
//     Halted), and writes status: created, ready, printableStatus (Stopped, Provisioning, Starting,
//     Running, Migrating, Stopping, Terminating, ErrorUnschedulable, ErrImagePull, ImagePullBackOff,
//     DataVolumeError, ErrorPvcNotFound), the Ready, Failure and RestartRequired conditions (the latter when the template
//     no longer equals the running VMI's spec), observed and desired generation. Deleting a VM deletes
//     its VMI and then lets the VM go;
//   - virt-controller's VMI controller: the kubevirt.io/foregroundDeleteVirtualMachine finalizer, the
//     virt-launcher pod as KubeVirt renders it (LauncherPod, LauncherResources, MemoryOverhead), the
//     pod's PodScheduled=False condition mirrored on the VMI, phases Pending → Scheduling → Scheduled →
//     Running, Failed when its current launcher pod (see CurrentLauncherPodName) fails or disappears,
//     and on deletion its pods removed before the finalizer;
//   - virt-controller's migration controller and the virt-handlers of a live migration: a
//     VirtualMachineInstanceMigration goes Pending → Scheduling → Scheduled → PreparingTarget →
//     TargetReady → Running → Succeeded, one per VMI at a time (a later one waits Pending), with the
//     kubevirt.io/migrationJobFinalize finalizer, phase transition timestamps and its migrationState
//     mirrored from the VMI's (source and target node and pod, migration UID, start and end, completed,
//     failed, failure reason). The target launcher pod is LauncherPod plus the migrationJobUID label,
//     the addedNodeSelector (the VMI's own selector wins a collision) and KubeVirt's required
//     anti-affinity against the VMI's pods on kubernetes.io/hostname; whatever scheduler runs places
//     it. Once it runs and Options.MigrationDelay has passed, the VMI (same UID, Running throughout)
//     moves: nodeName, the kubevirt.io/nodeName label (kubevirt.io/migrationTargetNodeName meanwhile),
//     activePods and the pod network address are the target's, and the source launcher exits (pod
//     Succeeded). A migration fails when its VMI is missing, not Running, not LiveMigratable or being
//     deleted, when its target pod stays unschedulable for Options.MigrationPendingTimeout (or the
//     kubevirt.io/migrationUnschedulablePodTimeoutSeconds annotation) or ends, or on FailMigration; a
//     migration deleted before it completes is aborted. In every failure the target pod goes and the
//     VMI keeps running on its source;
//   - virt-handler and the guest agent: after Options.BootDelay from the pod's binding, VMI status
//     Running with nodeName, the kubevirt.io/nodeName label, Ready, AgentConnected, LiveMigratable (by
//     KubeVirt's volume and interface rules, see LiveMigratable), DataVolumesReady, interfaces with
//     addresses (10.<ID>.x.y from a per-simulator counter, unique across simulators with different IDs),
//     guest OS info, active pods, CPU topology and memory;
//   - the kubelet: launcher pod Running with an address and ready conditions, image pull failures on
//     request, and graceful pod deletions completed at once;
//   - CDI: DataVolume phases ImportScheduled/CloneScheduled → ImportInProgress/CloneInProgress with
//     progress in quarters → Succeeded over Options.ImportDelay, Bound/Running/Ready conditions,
//     claimName; blank DataVolumes finish at once, uploads wait for ever;
//   - the garbage collector, which envtest does not run: dependents (Secrets, DataVolumes, VMIs, Pods)
//     of VMs, VMIs and DataVolumes that are gone are deleted (a missing owner is confirmed against the
//     API server, not only the cache), dangling references dropped when another owner lives, and
//     propagationPolicy Foreground and Orphan honoured through their finalizers;
//   - with Options.SelfSchedule, kube-scheduler: first fit over Ready nodes (see FirstFit), binding
//     through pods/binding, PodScheduled=False with kube-scheduler's message when nothing fits, and a
//     retry when nodes change or pods go.
//
// Delays are timed with RequeueAfter, never with sleeping goroutines, and failures are injected with
// annotations (FailAnnotation, BootDelayAnnotation, ImportDelayAnnotation). Status writes go through the
// status subresource when the API server has one (the generated envtest CRDs of VirtualMachine and
// VirtualMachineInstance have none; KubeVirt's VirtualMachine CRD has one) and replace the whole status;
// those of VMIs and migrations, which two controllers write, only over the resourceVersion they read.
//
// Not simulated: there are no virtual machines, disks or guests; of live migration no evictions (an
// evicted launcher pod fails its VMI: no evacuation, no eviction-triggered migrations, no
// PodDisruptionBudgets for VMIs or migrations), no migration policies, bandwidth, post-copy or
// cluster-wide and per-node limits on parallel migrations, no 15-minute catch-all pending timeout, no
// decentralized or storage migration, and activePods lists only the current launcher; no
// instancetypes or preferences, no KubeVirt admission webhooks (no defaulting: the guest memory stands
// in for a missing memory request), no hotplug, pause, snapshots, state change requests or crash-loop
// backoff; no PersistentVolumeClaims or PersistentVolumes (a DataVolume's access modes come from its
// spec, and its claimName names nothing); no events; no virt-handler node labelling or device plugins
// (package nodes labels Infra nodes and advertises the devices). The memory overhead follows KubeVirt's
// GetMemoryOverhead for KVM on x86_64 without additionalGuestMemoryOverheadRatio or network binding
// plugins, an estimate in KubeVirt itself; hugepages, sidecars and auto memory limits are not rendered.
// In-memory state (delays, hook calls, addresses handed out) starts over when a simulator restarts:
// hooks must be idempotent.
package kubevirt
