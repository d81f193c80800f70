package clusterctl_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nestcapi/cluster-api-provider-nest/test/envtest"
)

// The images of config/: what a release names when IMG and SCHEDULER_IMG are not given.
const (
	defaultManagerImage   = "ghcr.io/nestcapi/cluster-api-provider-nest:dev"
	defaultSchedulerImage = "ghcr.io/nestcapi/nest-scheduler:dev"
)

// TestReleaseManifestsNameTheImagesGiven runs `make release-manifests IMG=... SCHEDULER_IMG=...` and
// reads the image of the manager Deployment (infrastructure-components.yaml) and of the nest-scheduler
// and nest-consolidator Deployments (nest-scheduler.yaml, nest-consolidator.yaml: one image carries
// both): tags, registry ports, digests and the defaults of config/.
func TestReleaseManifestsNameTheImagesGiven(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, img, schedulerImg string
		wantManager, wantSched  string
	}{
		{name: "defaults", wantManager: defaultManagerImage, wantSched: defaultSchedulerImage},
		{
			name: "tags", img: "registry.example.com/nest/manager:v0.2.0", schedulerImg: "registry.example.com/nest/scheduler:v0.2.0",
			wantManager: "registry.example.com/nest/manager:v0.2.0", wantSched: "registry.example.com/nest/scheduler:v0.2.0",
		},
		{
			name: "registry port, no tag", img: "localhost:5000/manager", schedulerImg: "localhost:5000/scheduler:v1",
			wantManager: "localhost:5000/manager:dev", wantSched: "localhost:5000/scheduler:v1",
		},
		{
			name: "digests", img: "quay.io/nest/manager@sha256:" + strings.Repeat("a", 64), schedulerImg: "quay.io/nest/scheduler@sha256:" + strings.Repeat("b", 64),
			wantManager: "quay.io/nest/manager@sha256:" + strings.Repeat("a", 64), wantSched: "quay.io/nest/scheduler@sha256:" + strings.Repeat("b", 64),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			tool(t, "kustomize", "kustomize")
			run(t, nil, "make", "--no-print-directory", "release-manifests", "RELEASE_DIR="+out, "IMG="+tc.img, "SCHEDULER_IMG="+tc.schedulerImg)

			if got := deploymentImages(t, filepath.Join(out, "infrastructure-components.yaml")); !slices.Equal(got, []string{tc.wantManager}) {
				t.Errorf("infrastructure-components.yaml has images %v, want [%s]", got, tc.wantManager)
			}
			for _, file := range []string{"nest-scheduler.yaml", "nest-consolidator.yaml"} {
				if got := deploymentImages(t, filepath.Join(out, file)); !slices.Equal(got, []string{tc.wantSched}) {
					t.Errorf("%s has images %v, want [%s]", file, got, tc.wantSched)
				}
			}
			// The Infra clusters' grants for the provider ship with the release too, image-free.
			var kinds []string
			for _, obj := range objects(t, read(t, filepath.Join(out, "nest-infra-rbac.yaml"))) {
				kinds = append(kinds, obj.GetKind()+"/"+obj.GetName())
			}
			if !slices.Contains(kinds, "ClusterRole/nest-infra") || !slices.Contains(kinds, "ServiceAccount/nest-infra") {
				t.Errorf("nest-infra-rbac.yaml has %v, want config/infra-rbac's ServiceAccount and ClusterRole nest-infra", kinds)
			}
		})
	}
}

// deploymentImages lists the container images of every Deployment of a manifest file.
func deploymentImages(t *testing.T, file string) []string {
	t.Helper()
	var images []string
	for _, obj := range objects(t, read(t, file)) {
		if obj.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, d); err != nil {
			t.Fatalf("Deployment %s of %s: %v", obj.GetName(), file, err)
		}
		for _, c := range d.Spec.Template.Spec.InitContainers {
			images = append(images, c.Image)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
	}
	return images
}

// goBuild is one `go build` command: the directory it runs in, the package it builds and the name
// of the binary it writes.
type goBuild struct {
	dir, pkg, binary string
}

// TestDockerfilesBuildWhatMakeBuilds parses each image's Dockerfile and checks it against `make
// build` (dry run): every binary `make build` builds in the image's module (its build context) is
// built by the Dockerfile from the same package into a binary of the same name and copied into
// the runtime stage at /<binary>, and the Dockerfile builds nothing else; the ENTRYPOINT runs the
// image's main binary; every package of the module those binaries are built from is copied into
// the build stage and not excluded by .dockerignore; the runtime stage is distroless static and
// non-root; and `make docker-build` builds the Dockerfile with IMG or SCHEDULER_IMG.
func TestDockerfilesBuildWhatMakeBuilds(t *testing.T) {
	t.Parallel()
	root := envtest.RepoRoot()
	builds := makeBuilds(t, root)
	dockerBuilds := string(run(t, nil, "make", "--no-print-directory", "-n", "docker-build", "IMG=example.com/manager:t", "SCHEDULER_IMG=example.com/scheduler:t"))

	for _, tc := range []struct {
		dockerfile, image string
		// entrypoint is the binary the image runs; the others are run by naming them.
		entrypoint string
	}{
		{dockerfile: "Dockerfile", image: "example.com/manager:t", entrypoint: "manager"},
		{dockerfile: "scheduler-plugin/Dockerfile", image: "example.com/scheduler:t", entrypoint: "nest-scheduler"},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			t.Parallel()
			df := parseDockerfile(t, filepath.Join(root, tc.dockerfile))
			context := filepath.Dir(filepath.Join(root, tc.dockerfile))

			var want []goBuild
			for _, b := range builds {
				if b.dir == context {
					want = append(want, b)
				}
			}
			if len(want) == 0 {
				t.Fatalf("`make build` builds nothing in %s, the build context of %s: %+v", context, tc.dockerfile, builds)
			}
			got := df.goBuilds(t, context)
			for _, b := range want {
				if !slices.Contains(got, b) {
					t.Errorf("`make build` builds %s into %s; %s does not (it builds %+v)", b.pkg, b.binary, tc.dockerfile, got)
					continue
				}
				if c := "/workspace/" + b.binary + " /" + b.binary; !slices.Contains(df.final.copies, c) {
					t.Errorf("%s: the runtime stage copies %v, want the build stage's %s at /%s", tc.dockerfile, df.final.copies, b.binary, b.binary)
				}
			}
			for _, b := range got {
				if !slices.Contains(want, b) {
					t.Errorf("%s builds %s into %s, which `make build` does not build (it builds %+v)", tc.dockerfile, b.pkg, b.binary, want)
				}
			}
			for _, r := range df.buildRuns {
				if want := "CGO_ENABLED=0"; !strings.Contains(r, want) {
					t.Errorf("%s: a go build runs without %s: a cgo binary does not run on distroless static (RUN %s)", tc.dockerfile, want, r)
				}
			}
			if want := "gcr.io/distroless/static:nonroot"; df.final.from != want {
				t.Errorf("%s: the runtime stage is FROM %s, want %s", tc.dockerfile, df.final.from, want)
			}
			if df.final.user != "65532:65532" {
				t.Errorf("%s: the runtime stage runs as USER %q, want 65532:65532 (distroless nonroot, numeric for runAsNonRoot)", tc.dockerfile, df.final.user)
			}
			if !slices.ContainsFunc(want, func(b goBuild) bool { return b.binary == tc.entrypoint }) {
				t.Errorf("`make build` does not build %s, the binary %s runs", tc.entrypoint, tc.dockerfile)
			}
			if entrypoint := "/" + tc.entrypoint; df.final.entrypoint != `["`+entrypoint+`"]` {
				t.Errorf("%s: ENTRYPOINT %s, want [%q]", tc.dockerfile, df.final.entrypoint, entrypoint)
			}

			ignored := dockerignore(t, filepath.Join(context, ".dockerignore"))
			for _, b := range want {
				for _, dir := range modulePackageDirs(t, context, b.pkg) {
					rel, _ := filepath.Rel(context, dir)
					rel = filepath.ToSlash(rel)
					if !slices.ContainsFunc(df.copied, func(src string) bool { return within(rel, src) }) {
						t.Errorf("%s does not copy %s, a package %s is built from (it copies %v)", tc.dockerfile, rel, b.binary, df.copied)
					}
					if i := slices.IndexFunc(ignored, func(pattern string) bool { return within(rel, pattern) }); i >= 0 {
						t.Errorf("%s: .dockerignore excludes %s (%q), a package %s is built from", tc.dockerfile, rel, ignored[i], b.binary)
					}
				}
			}

			rel, _ := filepath.Rel(root, context)
			if want := "docker build -t " + tc.image + " " + rel; !strings.Contains(dockerBuilds, want+"\n") {
				t.Errorf("`make docker-build` does not run %q:\n%s", want, dockerBuilds)
			}
		})
	}
}

// makeBuilds runs `make -n build` in the repository root and returns the go builds it would run,
// following make's "Entering directory" lines into sub-makes.
func makeBuilds(t *testing.T, root string) []goBuild {
	t.Helper()
	out := run(t, nil, "make", "-w", "-n", "build")
	dirs := []string{root}
	entering := regexp.MustCompile(`^make(?:\[\d+\])?: Entering directory '(.*)'$`)
	leaving := regexp.MustCompile(`^make(?:\[\d+\])?: Leaving directory`)
	var builds []goBuild
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		line := s.Text()
		switch {
		case entering.MatchString(line):
			dirs = append(dirs, entering.FindStringSubmatch(line)[1])
		case leaving.MatchString(line):
			dirs = dirs[:len(dirs)-1]
		case strings.HasPrefix(line, "go build "):
			b := parseGoBuild(t, shellWords(line))
			b.dir = dirs[len(dirs)-1]
			builds = append(builds, b)
		}
	}
	if len(builds) == 0 {
		t.Fatalf("`make -n build` runs no go build:\n%s", out)
	}
	return builds
}

// parseGoBuild reads the package and the output binary's name of `go build` arguments.
func parseGoBuild(t *testing.T, words []string) goBuild {
	t.Helper()
	i := slices.Index(words, "build")
	if i < 1 || words[i-1] != "go" {
		t.Fatalf("not a go build command: %q", words)
	}
	var b goBuild
	args := words[i+1:]
	for j := 0; j < len(args); j++ {
		switch a := args[j]; {
		case a == "-o" && j+1 < len(args):
			b.binary = filepath.Base(args[j+1])
			j++
		case a == "-ldflags" || a == "-tags" || a == "-gcflags":
			j++
		case strings.HasPrefix(a, "-"):
		default:
			b.pkg = a
		}
	}
	if b.pkg == "" || b.binary == "" {
		t.Fatalf("go build %q: want -o <binary> and one package", args)
	}
	return b
}

// dockerfile is what the test reads of a Dockerfile.
type dockerfile struct {
	// buildRuns are the RUN instructions that run go build.
	buildRuns []string
	// copied are the sources the build stage copies from the build context.
	copied []string
	final  stage
}

type stage struct {
	from, user, entrypoint string
	// copies are the "<source> <destination>" of the stage's COPY --from instructions.
	copies []string
}

// parseDockerfile reads the instructions of a Dockerfile: comments dropped, continuation lines
// joined.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	var instructions []string
	var current strings.Builder
	for _, line := range strings.Split(string(read(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && current.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			current.WriteString(cont + " ")
			continue
		}
		current.WriteString(trimmed)
		instructions = append(instructions, current.String())
		current.Reset()
	}

	var df dockerfile
	stages := 0
	var st stage
	for _, ins := range instructions {
		keyword, rest, _ := strings.Cut(ins, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(keyword) {
		case "FROM":
			stages++
			words := strings.Fields(rest)
			words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
			st = stage{from: words[0]}
		case "RUN":
			if strings.Contains(rest, "go build ") {
				df.buildRuns = append(df.buildRuns, rest)
			}
		case "COPY":
			words := strings.Fields(rest)
			if strings.HasPrefix(words[0], "--from=") {
				st.copies = append(st.copies, strings.Join(words[1:], " "))
				continue
			}
			words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
			df.copied = append(df.copied, words[:len(words)-1]...)
		case "USER":
			st.user = rest
		case "ENTRYPOINT":
			st.entrypoint = strings.ReplaceAll(rest, " ", "")
		}
	}
	if stages < 2 || len(df.buildRuns) == 0 {
		t.Fatalf("%s: want a multi-stage build with a go build stage (%d stages)", path, stages)
	}
	df.final = st
	return df
}

// goBuilds are the go builds of the Dockerfile, run in the build context.
func (df dockerfile) goBuilds(t *testing.T, context string) []goBuild {
	t.Helper()
	var builds []goBuild
	for _, r := range df.buildRuns {
		words := shellWords(r)
		i := slices.Index(words, "go")
		if i < 0 {
			t.Fatalf("no go command in RUN %s", r)
		}
		b := parseGoBuild(t, words[i:])
		b.dir = context
		builds = append(builds, b)
	}
	return builds
}

// shellWords splits a command line into words, keeping double-quoted strings whole.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	quoted, inWord := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// modulePackageDirs lists the directories of the packages of the module in dir that pkg is built
// from (its dependencies inside the module, itself included).
func modulePackageDirs(t *testing.T, dir, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s in %s: %v\n%s", pkg, dir, err, stderr.String())
	}
	dirs := strings.Fields(string(out))
	if len(dirs) == 0 {
		t.Fatalf("go list -deps %s in %s lists no package of the module", pkg, dir)
	}
	return dirs
}

// dockerignore reads the patterns of a .dockerignore (none when there is no file).
func dockerignore(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	return patterns
}

// within reports whether the package directory rel (relative to the build context, "." for its
// root) lies under the path src of a COPY or .dockerignore ("." and "./" cover everything; a
// file such as main.go covers the root package, whose files it names).
func within(rel, src string) bool {
	src = strings.TrimPrefix(strings.TrimSuffix(src, "/"), "./")
	switch {
	case src == "." || src == "":
		return true
	case rel == ".":
		return !strings.Contains(src, "/") && strings.HasSuffix(src, ".go")
	default:
		return rel == src || strings.HasPrefix(rel, src+"/")
	}
}
