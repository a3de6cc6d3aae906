package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// fakeOS keeps pins and mounts in maps and fails where told.
type fakeOS struct {
	pinned  map[string]bool
	mounted map[string]bool
	failOn  string // "pin", "shm"
}

func newFakeOS() *fakeOS { return &fakeOS{pinned: map[string]bool{}, mounted: map[string]bool{}} }

func (f *fakeOS) PinNamespaces(dir string, req NamespaceRequest) (map[string]string, error) {
	pins := map[string]string{}
	kinds := req.Kinds
	for i, k := range kinds {
		if f.failOn == "pin" && i == len(kinds)-1 {
			return pins, errors.New("injected pin failure")
		}
		p := filepath.Join(dir, k)
		os.MkdirAll(dir, 0o700)
		os.WriteFile(p, nil, 0o400)
		f.pinned[p] = true
		pins[k] = p
	}
	return pins, nil
}

func (f *fakeOS) UnpinNamespaces(pins map[string]string) error {
	for _, p := range pins {
		delete(f.pinned, p)
		os.Remove(p)
	}
	return nil
}

func (f *fakeOS) MountShm(path string, size int64, _ string) error {
	if f.failOn == "shm" {
		return errors.New("injected shm failure")
	}
	f.mounted[path] = true
	return os.MkdirAll(path, 0o755)
}

func (f *fakeOS) Unmount(path string) error { delete(f.mounted, path); return nil }

func (f *fakeOS) IsMountPoint(path string) bool { return f.pinned[path] || f.mounted[path] }

func (f *fakeOS) ProbeUserNamespace(func(string) error) error {
	return errors.New("no user namespaces")
}

func newTestManager(t *testing.T, osys OS) (*Manager, string, string) {
	t.Helper()
	root, state := t.TempDir(), t.TempDir()
	m, err := NewManager(osys, root, state)
	if err != nil {
		t.Fatal(err)
	}
	m.hostDNS = filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(m.hostDNS, []byte("nameserver 192.0.2.1\n"), 0o644)
	return m, root, state
}

func testSpec() Spec {
	return Spec{Name: "web", Namespace: "default", UID: "u1", Hostname: "web-0", Labels: map[string]string{"app": "web"}}
}

func TestCreateStopRemove(t *testing.T) {
	f := newFakeOS()
	m, root, state := newTestManager(t, f)
	ctx := context.Background()
	spec := testSpec()
	spec.DNS = DNS{Servers: []string{"10.10.10.10"}, Searches: []string{"google.com"}, Options: []string{"ndots:8"}}
	p, err := m.Create(ctx, "pod1", spec)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != NotReady || !p.Creating || len(m.List()) != 0 {
		t.Fatalf("a pod being created is %s (creating %v) and listed %v", p.State, p.Creating, m.List())
	}
	if err := m.MarkReady("pod1"); err != nil {
		t.Fatal(err)
	}
	p, _ = m.Get("pod1")
	if p.State != Ready || p.Creating || len(m.List()) != 1 || len(p.Pins) != 3 || p.ShmPath == "" || !f.mounted[p.ShmPath] {
		t.Fatalf("pod = %+v", p)
	}
	resolv, _ := os.ReadFile(p.ResolvConfPath())
	if string(resolv) != "search google.com\nnameserver 10.10.10.10\noptions ndots:8\n" {
		t.Fatalf("resolv.conf = %q", resolv)
	}
	if h, _ := os.ReadFile(p.HostnamePath()); string(h) != "web-0\n" {
		t.Fatalf("hostname = %q", h)
	}
	if hosts, _ := os.ReadFile(p.HostsPath()); !strings.Contains(string(hosts), "web-0") {
		t.Fatalf("hosts = %q", hosts)
	}
	if err := m.Stop(ctx, "pod1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, "pod1"); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if got, _ := m.Get("pod1"); got.State != NotReady {
		t.Fatalf("state after stop = %s", got.State)
	}
	if err := m.Remove(ctx, "pod1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, "pod1"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if len(f.pinned) != 0 || len(f.mounted) != 0 {
		t.Fatalf("left pinned %v mounted %v", f.pinned, f.mounted)
	}
	assertEmpty(t, filepath.Join(state, "pods"), filepath.Join(root, "pods"))
}

// A pod stopped while it is being created is listed (NOTREADY) from then on,
// and its creator cannot mark it READY.
func TestStopWhileCreating(t *testing.T) {
	m, _, _ := newTestManager(t, newFakeOS())
	ctx := context.Background()
	if _, err := m.Create(ctx, "pod1", testSpec()); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, "pod1"); err != nil {
		t.Fatal(err)
	}
	if l := m.List(); len(l) != 1 || l[0].State != NotReady {
		t.Fatalf("list after a stop while creating: %v", l)
	}
	if err := m.MarkReady("pod1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("MarkReady of a stopped pod = %v, want FailedPrecondition", err)
	}
}

func assertEmpty(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Fatalf("%s holds %d entries", d, len(entries))
		}
	}
}

func TestCreateRollsBack(t *testing.T) {
	for _, fail := range []string{"pin", "shm"} {
		t.Run(fail, func(t *testing.T) {
			f := newFakeOS()
			f.failOn = fail
			m, root, state := newTestManager(t, f)
			if _, err := m.Create(context.Background(), "pod1", testSpec()); err == nil {
				t.Fatal("Create succeeded despite the failure")
			}
			if len(f.pinned) != 0 || len(f.mounted) != 0 {
				t.Fatalf("left pinned %v mounted %v", f.pinned, f.mounted)
			}
			assertEmpty(t, filepath.Join(state, "pods"), filepath.Join(root, "pods"))
			if _, err := m.Get("pod1"); !errdefs.IsNotFound(err) {
				t.Fatalf("half-created pod visible: %v", err)
			}
		})
	}
}

func TestHostNamespaces(t *testing.T) {
	f := newFakeOS()
	m, _, _ := newTestManager(t, f)
	spec := testSpec()
	spec.NetworkMode, spec.IPCMode = ModeNode, ModeNode
	p, err := m.Create(context.Background(), "hostpod", spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Pins) != 0 || p.ShmPath != "" {
		t.Fatalf("host-namespace pod got pins %v / shm %q", p.Pins, p.ShmPath)
	}
	if resolv, _ := os.ReadFile(p.ResolvConfPath()); string(resolv) != "nameserver 192.0.2.1\n" {
		t.Fatalf("resolv.conf = %q, want the host's", resolv)
	}
}

func TestRecover(t *testing.T) {
	f := newFakeOS()
	m, root, state := newTestManager(t, f)
	ctx := context.Background()
	for _, id := range []string{"intact", "lost", "stopped", "cut"} {
		if _, err := m.Create(ctx, id, testSpec()); err != nil {
			t.Fatal(err)
		}
		if id != "cut" { // berthd died in its RunPodSandbox
			m.MarkReady(id)
		}
	}
	lost, _ := m.Get("lost")
	cut, _ := m.Get("cut")
	m.Stop(ctx, "stopped")
	// The "lost" pod's namespaces vanished (reboot); a half-created pod left a dir.
	f.UnpinNamespaces(lost.Pins)
	os.MkdirAll(filepath.Join(state, "pods", "half", "ns"), 0o700)

	m2, err := NewManager(f, root, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.RemoveOrphans(ctx); err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, p := range m2.List() {
		states[p.ID] = p.State
	}
	if states["intact"] != Ready || states["lost"] != NotReady || states["stopped"] != NotReady || len(states) != 3 {
		t.Fatalf("recovered states %v", states)
	}
	if _, err := os.Stat(filepath.Join(state, "pods", "half")); !os.IsNotExist(err) {
		t.Fatal("half-created pod dir kept")
	}
	if _, err := m2.Get("cut"); !errdefs.IsNotFound(err) {
		t.Fatalf("the pod whose RunPodSandbox was cut short: %v, want it gone", err)
	}
	if _, err := os.Stat(cut.Dir); !os.IsNotExist(err) || f.mounted[cut.ShmPath] || f.pinned[cut.Pins[NetNS]] {
		t.Fatalf("the cut pod left its dir (%v), shm or pins", err)
	}
	if p, err := m2.Find("int"); err != nil || p.ID != "intact" {
		t.Fatalf("Find by prefix = %v, %v", p, err)
	}
}

func TestResolvConfRejectsInjection(t *testing.T) {
	if _, err := resolvConf(DNS{Servers: []string{"1.1.1.1\nnameserver 6.6.6.6"}}, ""); err == nil {
		t.Fatal("a line break in a DNS value was accepted")
	}
}

// A pod whose record cannot be read (corrupt; a newer Berth's schema) is not
// a half-created pod: recovery keeps its dir, pins and shm and the file as it
// is, does not list it, and names it in Unreadable; its id stays taken.
func TestRecoverKeepsPodsWithUnreadableRecords(t *testing.T) {
	for name, content := range map[string]string{
		"corrupt":      `{"version":1,"record":{"id":`,
		"newer schema": `{"version":99,"record":{"id":"x","future":true}}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeOS()
			m, root, state := newTestManager(t, f)
			ctx := context.Background()
			p, err := m.Create(ctx, "kept", testSpec())
			if err != nil {
				t.Fatal(err)
			}
			record := filepath.Join(root, "pods", "kept.json")
			if err := os.WriteFile(record, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}

			m2, err := NewManager(f, root, state)
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if err := m2.RemoveOrphans(ctx); err != nil {
				t.Fatal(err)
			}
			if got := m2.Unreadable(); len(got) != 1 || got[0] != "kept" {
				t.Fatalf("Unreadable = %v", got)
			}
			if len(m2.List()) != 0 {
				t.Fatalf("an unreadable pod is listed: %v", m2.List())
			}
			for _, pin := range p.Pins {
				if !f.pinned[pin] {
					t.Fatalf("pin %s of the unreadable pod was released", pin)
				}
			}
			if !f.mounted[p.ShmPath] {
				t.Fatal("shm of the unreadable pod was unmounted")
			}
			if _, err := os.Stat(p.Dir); err != nil {
				t.Fatalf("dir of the unreadable pod: %v", err)
			}
			if got, _ := os.ReadFile(record); string(got) != content {
				t.Fatalf("record rewritten: %q", got)
			}
			if _, err := m2.Create(ctx, "kept", testSpec()); !errdefs.IsAlreadyExists(err) {
				t.Fatalf("Create with the unreadable pod's id = %v", err)
			}
			if !f.pinned[p.Pins[NetNS]] {
				t.Fatal("a refused Create released the unreadable pod's pins")
			}
		})
	}
}
