package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// CPUTimes is CPU time (user + system) used so far, by role: "manager"; "bench" (this process: the
// simulators, informers and clients); the management and the Infra kube-apiservers and etcds.
type CPUTimes map[string]time.Duration

// Roles of CPUTimes, in the order String lists them.
var cpuRoles = []string{"manager", "bench", "kube-apiserver/management", "etcd/management", "kube-apiserver/infra", "etcd/infra", "kube-apiserver/tenant", "etcd/tenant"}

// CPUTimes reads the CPU time of this process and its children from /proc. The benchmarks share the
// machine with the API servers they start (and with whatever else runs): this tells the manager's
// share from the rest.
func (e *Env) CPUTimes() (CPUTimes, error) {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	type child struct {
		comm string
		args []string
		cpu  time.Duration
	}
	var children []child
	out := CPUTimes{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, ppid, cpu, err := readStat(pid)
		if err != nil {
			continue // the process exited in between
		}
		if pid == self {
			out["bench"] += cpu
			continue
		}
		if ppid != self {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		children = append(children, child{comm: comm, args: strings.Split(string(cmdline), "\x00"), cpu: cpu})
	}
	// The management (and the tenant) API server is the one on its port; its etcd is the one it
	// talks to. The other API servers and etcds are the Infra clusters'.
	ports := map[string]string{portOf(e.Topology.Management.Config): "management"}
	if e.Tenant != nil {
		ports[portOf(e.Tenant.Config)] = "tenant"
	}
	etcds := map[string]string{}
	for _, c := range children {
		if role, ok := ports[argValue(c.args, "--secure-port")]; ok && c.comm == "kube-apiserver" {
			etcds[argValue(c.args, "--etcd-servers")] = role
		}
	}
	for _, c := range children {
		switch c.comm {
		case "kube-apiserver":
			role, ok := ports[argValue(c.args, "--secure-port")]
			if !ok {
				role = "infra"
			}
			out["kube-apiserver/"+role] += c.cpu
		case "etcd":
			role, ok := etcds[argValue(c.args, "--listen-client-urls")]
			if !ok {
				role = "infra"
			}
			out["etcd/"+role] += c.cpu
		default:
			out[c.comm] += c.cpu
		}
	}
	return out, nil
}

func portOf(cfg *rest.Config) string {
	_, port, _ := strings.Cut(hostOf(cfg), ":")
	return port
}

func argValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// Sub is t minus an earlier reading.
func (t CPUTimes) Sub(earlier CPUTimes) CPUTimes {
	out := CPUTimes{}
	for k, v := range t {
		out[k] = v - earlier[k]
	}
	return out
}

// String lists the CPU seconds per role.
func (t CPUTimes) String() string {
	parts := make([]string, 0, len(cpuRoles))
	for _, role := range cpuRoles {
		parts = append(parts, fmt.Sprintf("%s %.1f", role, t[role].Seconds()))
	}
	return strings.Join(parts, ", ")
}

// readStat reads a process's command name, parent and CPU time from /proc/<pid>/stat.
func readStat(pid int) (comm string, ppid int, cpu time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, err
	}
	// The command name is field 2, in parentheses, and may hold spaces: count the other fields from
	// its closing parenthesis. ppid is field 4, utime and stime are fields 14 and 15.
	open, closing := strings.IndexByte(string(data), '('), strings.LastIndexByte(string(data), ')')
	if open < 0 || closing < open {
		return "", 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	comm = string(data[open+1 : closing])
	fields := strings.Fields(string(data[closing+1:]))
	if len(fields) < 13 {
		return "", 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	if ppid, err = strconv.Atoi(fields[1]); err != nil {
		return "", 0, 0, err
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return "", 0, 0, err
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux platform Go supports.
	return comm, ppid, time.Duration(ticks) * 10 * time.Millisecond, nil
}

// MachineCPU is a reading of the whole machine's CPU time (every process, not only the benchmark's),
// from /proc/stat.
type MachineCPU struct {
	idle, total uint64
}

// ReadMachineCPU reads the machine's CPU time so far.
func ReadMachineCPU() (MachineCPU, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, fmt.Errorf("reading the machine's CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var m MachineCPU
	// user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice].
	for i, f := range fields[1:min(len(fields), 9)] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("parsing /proc/stat: %w", err)
		}
		m.total += n
		if i == 3 || i == 4 { // idle, iowait
			m.idle += n
		}
	}
	return m, nil
}

// IdlePercent is the share of the machine's CPU time that was idle from earlier to m.
func (m MachineCPU) IdlePercent(earlier MachineCPU) float64 {
	if m.total <= earlier.total {
		return 0
	}
	return 100 * float64(m.idle-earlier.idle) / float64(m.total-earlier.total)
}

// LoadAverage is the 1, 5 and 15 minute load averages of the machine: the benchmarks share it.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}
