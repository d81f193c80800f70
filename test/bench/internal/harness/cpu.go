package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTimes is CPU time (user + system) used so far, by role: "manager"; "bench" (this process: the
// simulators, informers and clients); the management and the Infra kube-apiservers and etcds.
type CPUTimes map[string]time.Duration

// Roles of CPUTimes, in the order String lists them.
var cpuRoles = []string{"manager", "bench", "kube-apiserver/management", "etcd/management", "kube-apiserver/infra", "etcd/infra"}

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
	// The management API server is the one on the management port; its etcd is the one it talks to.
	mgmtEtcd := ""
	for _, c := range children {
		if c.comm == "kube-apiserver" && hasArg(c.args, "--secure-port", e.managementPort()) {
			mgmtEtcd = argValue(c.args, "--etcd-servers")
		}
	}
	for _, c := range children {
		switch c.comm {
		case "kube-apiserver":
			if hasArg(c.args, "--secure-port", e.managementPort()) {
				out["kube-apiserver/management"] += c.cpu
			} else {
				out["kube-apiserver/infra"] += c.cpu
			}
		case "etcd":
			if hasArg(c.args, "--listen-client-urls", mgmtEtcd) {
				out["etcd/management"] += c.cpu
			} else {
				out["etcd/infra"] += c.cpu
			}
		default:
			out[c.comm] += c.cpu
		}
	}
	return out, nil
}

func (e *Env) managementPort() string {
	_, port, _ := strings.Cut(e.ManagementHost(), ":")
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

func hasArg(args []string, name, value string) bool {
	return value != "" && argValue(args, name) == value
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
