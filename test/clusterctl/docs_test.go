package clusterctl_test

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// variable is one clusterctl variable of a template: required, set by clusterctl, or with a default.
type variable struct {
	required bool
	// byClusterctl: clusterctl always sets it (cluster name, namespace, machine counts).
	byClusterctl bool
	def          string
}

// listVariables runs `clusterctl generate cluster --list-variables` on a template.
func listVariables(t *testing.T, file string) map[string]variable {
	t.Helper()
	out := clusterctl(t, nil, "generate", "cluster", "t1", "--from", file, "--target-namespace", "ns1", "--list-variables")
	vars := map[string]variable{}
	section := ""
	line := regexp.MustCompile(`^\s+- (\S+)(?:\s+\(defaults to (.*)\))?$`)
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		text := s.Text()
		switch {
		case strings.HasPrefix(text, "Required Variables:"), strings.HasPrefix(text, "Optional Variables:"), strings.HasPrefix(text, "Variables:"):
			section = text
		case line.MatchString(text):
			m := line.FindStringSubmatch(text)
			v := variable{required: strings.HasPrefix(section, "Required")}
			if def := m[2]; strings.HasPrefix(def, `"`) {
				v.def = strings.Trim(def, `"`)
			} else if def != "" {
				v.byClusterctl = true
			}
			vars[m[1]] = v
		case strings.TrimSpace(text) != "":
			t.Fatalf("unexpected line in clusterctl's --list-variables output of %s: %q", file, text)
		}
	}
	return vars
}

// documentedVariables parses docs/templates.md: for each section whose heading names a template file,
// the rows of the first table after it.
func documentedVariables(t *testing.T) map[string]map[string]variable {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtest.RepoRoot(), "docs", "templates.md"))
	if err != nil {
		t.Fatalf("reading docs/templates.md: %v", err)
	}
	heading := regexp.MustCompile("^##+ .*`(cluster-template[-a-z0-9]*\\.yaml)`")
	row := regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| ([^|]+) \\|")
	docs := map[string]map[string]variable{}
	var current map[string]variable
	section := ""
	for _, text := range strings.Split(string(data), "\n") {
		if m := heading.FindStringSubmatch(text); m != nil {
			current, section = map[string]variable{}, m[1]
			docs[m[1]] = current
			continue
		}
		if strings.HasPrefix(text, "#") {
			current = nil
			continue
		}
		m := row.FindStringSubmatch(text)
		if m == nil || current == nil {
			continue
		}
		def := strings.TrimSpace(m[2])
		switch {
		case def == "required":
			current[m[1]] = variable{required: true}
		case def == "set by clusterctl":
			current[m[1]] = variable{byClusterctl: true}
		case def == "`\"\"`":
			// The empty string, as clusterctl prints it: `` is no Markdown.
			current[m[1]] = variable{}
		case strings.HasPrefix(def, "`") && strings.HasSuffix(def, "`"):
			current[m[1]] = variable{def: strings.Trim(def, "`")}
		default:
			t.Errorf("docs/templates.md, %s: the default of %s must be `value` (`\"\"` for the empty string), required or set by clusterctl, not %q", section, m[1], def)
		}
	}
	return docs
}

// TestDocsListEveryVariableOfEveryFlavorAsClusterctlDoes compares the variable tables of
// docs/templates.md with `clusterctl generate cluster --list-variables` for every flavor: the same
// variables, the same required ones, the same defaults.
func TestDocsListEveryVariableOfEveryFlavorAsClusterctlDoes(t *testing.T) {
	t.Parallel()
	docs := documentedVariables(t)
	files := map[string]bool{}
	for _, file := range flavors(t) {
		name := filepath.Base(file)
		files[name] = true
		t.Run(name, func(t *testing.T) {
			documented, ok := docs[name]
			if !ok {
				t.Fatalf("docs/templates.md has no section whose heading names `%s`", name)
			}
			listed := listVariables(t, file)
			for _, v := range slices.Sorted(maps.Keys(listed)) {
				d, ok := documented[v]
				switch {
				case !ok:
					t.Errorf("%s is a variable of %s (clusterctl --list-variables) but docs/templates.md does not list it", v, name)
				case d != listed[v]:
					t.Errorf("%s of %s: docs/templates.md says %s, clusterctl --list-variables says %s", v, name, describe(d), describe(listed[v]))
				}
			}
			for _, v := range slices.Sorted(maps.Keys(documented)) {
				if _, ok := listed[v]; !ok {
					t.Errorf("docs/templates.md lists %s for %s, but the template does not use it", v, name)
				}
			}
		})
	}
	for name := range docs {
		if !files[name] {
			t.Errorf("docs/templates.md documents %s, which is not in templates/", name)
		}
	}
}

func describe(v variable) string {
	switch {
	case v.required:
		return "required"
	case v.byClusterctl:
		return "set by clusterctl"
	default:
		return "default " + v.def
	}
}
