package test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

const (
	module     = "github.com/berth-cri/berth"
	runcModule = "github.com/opencontainers/runc"
)

type goPackage struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list` over the module and returns every package with
// its direct imports (of non-test files).
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// under reports whether pkg is dir or inside it (dir relative to the module).
func under(pkg, dir string) bool {
	p := module + "/" + dir
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

func anyUnder(pkg string, dirs ...string) bool {
	for _, d := range dirs {
		if under(pkg, d) {
			return true
		}
	}
	return false
}

// rule: packages matching `who` may import `what` only if `allowed` says so.
type rule struct {
	name    string
	what    func(imp string) bool
	allowed func(pkg string) bool
}

func importPrefix(prefix string) func(string) bool {
	return func(imp string) bool { return imp == prefix || strings.HasPrefix(imp, prefix+"/") }
}

func berth(dir string) func(string) bool {
	return func(imp string) bool { return under(imp, dir) }
}

// The rules of DESIGN.md, "Dependency rules".
var rules = []rule{
	// test/ and hack/ (benchmark tools) are CRI clients, not parts of Berth.
	{"grpc only in cri/ and cmd/", importPrefix("google.golang.org/grpc"),
		func(p string) bool { return anyUnder(p, "cri", "cmd", "test", "hack") }},
	// berth-shim lives as long as its pod: it links no libcontainer (its
	// memory would be every pod's), berth-runtime does the work.
	{"libcontainer only in sandbox/runner/helper and cmd/berth-runtime", importPrefix(runcModule),
		func(p string) bool { return anyUnder(p, "sandbox/runner/helper", "cmd/berth-runtime") }},
	{"containerd/cgroups only in sandbox/cgroups", importPrefix("github.com/containerd/cgroups"),
		func(p string) bool { return anyUnder(p, "sandbox/cgroups") }},
	{"CRI types stop at cri/ (and sandbox/spec, volumes as input)", importPrefix("k8s.io/cri-api"),
		func(p string) bool { return anyUnder(p, "cri", "cmd", "test", "hack", "sandbox/spec", "volumes") }},
	// NRI's API types are cri/'s business, as CRI's are.
	{"containerd/nri only in cri/ and cmd/", importPrefix("github.com/containerd/nri"),
		func(p string) bool { return anyUnder(p, "cri", "cmd", "test") }},
	// The NRI host takes plain values and NRI types from cri/ and reaches the
	// domains only through its Domain interface.
	{"cri/nri imports no Berth package but cri/config", func(imp string) bool {
		return strings.HasPrefix(imp, module+"/") && !anyUnder(imp, "cri/nri", "cri/config")
	}, func(p string) bool { return !under(p, "cri/nri") }},
	{"nothing imports cmd/", berth("cmd"), func(p string) bool { return false }},
	{"nothing imports test/ but tests", berth("test"), func(p string) bool { return under(p, "test") }},
	{"sandbox/ does not import sandbox/container", berth("sandbox/container"),
		func(p string) bool { return p != module+"/sandbox" }},
	{"sandbox/container does not import sandbox/", func(imp string) bool { return imp == module+"/sandbox" },
		func(p string) bool { return !under(p, "sandbox/container") }},
	// The container service knows snapshots through its own small
	// interface (container.Snapshots), not the image store.
	{"sandbox/container does not import images/", berth("images"),
		func(p string) bool { return !under(p, "sandbox/container") }},
}

// leaves may import Berth packages only inside their own subtree.
var leaves = []string{"images", "cni", "volumes", "sandbox/runner", "sandbox/store", "sandbox/cgroups", "sandbox/spec", "sandbox/claim"}

func TestDependencyRules(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			for _, r := range rules {
				if r.what(imp) && !r.allowed(p.ImportPath) {
					t.Errorf("%s imports %s: breaks %q", p.ImportPath, imp, r.name)
				}
			}
			checkLeaf(t, p.ImportPath, imp)
		}
	}
}

func checkLeaf(t *testing.T, pkg, imp string) {
	if violatesLeaf(pkg, imp) {
		t.Errorf("%s imports %s: a leaf imports no Berth package outside its own subtree", pkg, imp)
	}
}

// berth-shim links neither libcontainer nor cgo, through any package.
func TestShimIsLean(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", module+"/cmd/berth-shim")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, runcModule) || d == "runtime/cgo" || d == module+"/sandbox/runner/helper" {
			t.Errorf("berth-shim links %s", d)
		}
	}
}

// The rules must catch what they are written for.
func TestDependencyRulesCatchViolations(t *testing.T) {
	bad := []struct{ pkg, imp string }{
		{module + "/images", "google.golang.org/grpc"},
		{module + "/sandbox/store", runcModule + "/libcontainer"},
		{module + "/sandbox/runner/shim", runcModule + "/libcontainer"},
		{module + "/cri", "github.com/containerd/cgroups/v3"},
		{module + "/cni", "k8s.io/cri-api/pkg/apis/runtime/v1"},
		{module + "/cri", module + "/cmd/berthd"},
		{module + "/sandbox", module + "/sandbox/container"},
		{module + "/sandbox/container", module + "/sandbox"},
		{module + "/sandbox/container", module + "/images"},
		{module + "/sandbox/container", "k8s.io/cri-api/pkg/apis/runtime/v1"},
		{module + "/sandbox/container", "google.golang.org/grpc"},
		{module + "/sandbox/spec", "github.com/containerd/nri/pkg/api"},
		{module + "/cri/nri", module + "/sandbox"},
		{module + "/cri/nri", module + "/sandbox/container"},
		{module + "/cri/nri", module + "/cri"},
	}
	for _, b := range bad {
		caught := false
		for _, r := range rules {
			if r.what(b.imp) && !r.allowed(b.pkg) {
				caught = true
			}
		}
		if !caught {
			t.Errorf("no rule catches %s importing %s", b.pkg, b.imp)
		}
	}
	for _, l := range []struct{ pkg, imp string }{
		{module + "/images/content", module + "/cri/config"},
		{module + "/cni", module + "/sandbox"},
		{module + "/sandbox/spec", module + "/volumes"},
	} {
		if !violatesLeaf(l.pkg, l.imp) {
			t.Errorf("leaf rule does not catch %s importing %s", l.pkg, l.imp)
		}
	}
	if violatesLeaf(module+"/images", module+"/images/content") {
		t.Error("leaf rule forbids images importing its own subpackage")
	}
}

func violatesLeaf(pkg, imp string) bool {
	if !strings.HasPrefix(imp, module+"/") {
		return false
	}
	for _, leaf := range leaves {
		if under(pkg, leaf) && !under(imp, leaf) {
			return true
		}
	}
	return false
}
