package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Manager is the provider's manager binary running as a child process, so that its memory and its
// metrics are its own and not mixed with the API servers and simulators of the benchmark process.
type Manager struct {
	cmd       *exec.Cmd
	metrics   string
	health    string
	logPath   string
	exited    chan struct{}
	exitError error
}

// managerStopTimeout bounds the manager's graceful shutdown (controller-runtime's own default is 30 s).
const managerStopTimeout = 40 * time.Second

// StartManager runs binary against the management cluster of kubeconfig with webhooks off and plain-HTTP
// diagnostics on free local ports, its output in logPath, and waits until it reports ready.
func StartManager(ctx context.Context, binary, kubeconfig, logPath string, extraArgs []string) (*Manager, error) {
	metricsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	healthPort, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the manager's log: %w", err)
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--webhook-port=0",
		"--insecure-diagnostics",
		fmt.Sprintf("--diagnostics-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-addr=127.0.0.1:%d", healthPort),
		"--provider-namespace=" + ProviderNamespace,
	}, extraArgs...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a Ctrl-C reaches the benchmark, which stops the manager before the API
		// servers it talks to, rather than both at once.
		Setpgid: true,
		// A benchmark that dies without cleaning up takes the manager with it.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (run 'go build -o bin/manager .'): %w", binary, err)
	}
	m := &Manager{
		cmd:     cmd,
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		health:  fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort),
		logPath: logPath,
		exited:  make(chan struct{}),
	}
	go func() {
		m.exitError = cmd.Wait()
		logFile.Close()
		close(m.exited)
	}()
	if err := m.waitReady(ctx); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

func (m *Manager) waitReady(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-m.exited:
			return false, fmt.Errorf("the manager exited (%v); its log is %s", m.exitError, m.logPath)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.health, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager to be ready: %w", err)
	}
	return nil
}

// Pid is the manager's process id.
func (m *Manager) Pid() int { return m.cmd.Process.Pid }

// LogPath is where the manager's output goes.
func (m *Manager) LogPath() string { return m.logPath }

// Stop asks the manager to shut down (SIGTERM) and kills it if it has not within managerStopTimeout.
func (m *Manager) Stop() error {
	select {
	case <-m.exited:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping the manager: %w", err)
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(managerStopTimeout):
		if err := m.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("killing the manager: %w", err)
		}
		<-m.exited
		return fmt.Errorf("the manager did not stop within %s and was killed", managerStopTimeout)
	}
}

// Memory is the manager's resident set size now (VmRSS) and at its peak (VmHWM), in bytes.
func (m *Manager) Memory() (rss, peak uint64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", m.Pid()))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the manager's memory: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		key, value, ok := strings.Cut(s.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s of the manager: %w", key, err)
		}
		if key == "VmRSS" {
			rss = kb * 1024
		} else {
			peak = kb * 1024
		}
	}
	return rss, peak, s.Err()
}

// freePort asks the kernel for a free local port. Another process could take it before the manager
// binds it; on a benchmark machine that is unlikely enough.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
