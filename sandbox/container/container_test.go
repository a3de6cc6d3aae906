package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/test/wait"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestLifecycleAndPersistence(t *testing.T) {
	s, dir := newStore(t)
	if err := s.Add(Container{ID: "c1", PodID: "p1", Name: "app", Labels: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Container{ID: "c1"}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate add = %v", err)
	}
	start := time.Now().UTC()
	if _, err := s.Update("c1", func(c *Container) error { c.State, c.StartedAt = Running, start; return nil }); err != nil {
		t.Fatal(err)
	}
	c, err := s.Update("c1", func(c *Container) error {
		c.State, c.ExitCode, c.Reason, c.FinishedAt = Exited, 137, "Error", time.Now().UTC()
		return nil
	})
	if err != nil || c.State != Exited || c.ExitCode != 137 {
		t.Fatalf("update = %+v, %v", c, err)
	}

	// Reopened: the record is what was last written.
	s2, _ := NewStore(dir)
	if err := s2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := s2.Find("c")
	if err != nil || got.State != Exited || got.ExitCode != 137 || !got.StartedAt.Equal(start) || got.Labels["a"] != "b" {
		t.Fatalf("reloaded = %+v, %v", got, err)
	}
	if err := s2.Delete("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete("c1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s2.Get("c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("get after delete = %v", err)
	}
}

func TestIllegalTransitions(t *testing.T) {
	s, _ := newStore(t)
	s.Add(Container{ID: "c1"})
	s.Update("c1", func(c *Container) error { c.State = Exited; return nil })
	for _, to := range []State{Running, Created} {
		if _, err := s.Update("c1", func(c *Container) error { c.State = to; return nil }); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("EXITED → %s = %v", to, err)
		}
	}
	got, _ := s.Get("c1")
	if got.State != Exited {
		t.Fatalf("a refused transition changed the state to %s", got.State)
	}
	boom := errors.New("boom")
	if _, err := s.Update("c1", func(c *Container) error { c.Reason = "changed"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error = %v", err)
	}
	if got, _ := s.Get("c1"); got.Reason != "" {
		t.Fatal("a failed update changed the record")
	}
}

func TestListFiltersNewestFirst(t *testing.T) {
	s, _ := newStore(t)
	base := time.Now().UTC()
	s.Add(Container{ID: "old", PodID: "p1", CreatedAt: base})
	s.Add(Container{ID: "new", PodID: "p1", CreatedAt: base.Add(time.Second)})
	s.Add(Container{ID: "other", PodID: "p2", CreatedAt: base.Add(2 * time.Second)})
	list := s.List(func(c *Container) bool { return c.PodID == "p1" })
	if len(list) != 2 || list[0].ID != "new" || list[1].ID != "old" {
		t.Fatalf("list = %v", list)
	}
	if n := len(s.List(nil)); n != 3 {
		t.Fatalf("unfiltered list has %d", n)
	}
}

// The store tells of each change of state once recorded, and of deletion.
func TestStoreNotifies(t *testing.T) {
	s, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	s.SetNotify(func(ch Change) {
		if _, err := s.Get("c1"); ch.Deleted == (err == nil) {
			t.Errorf("told of %v before it was recorded", ch)
		}
		got = append(got, fmt.Sprintf("%s/%v", ch.Container.State, ch.Deleted))
	})
	if err := s.Add(Container{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	s.Update("c1", func(c *Container) error { c.State = Running; return nil })
	s.Update("c1", func(c *Container) error { c.Message = "no change of state"; return nil })
	s.Update("c1", func(c *Container) error { c.State = Exited; return nil })
	s.Delete("c1")
	if strings.Join(got, " ") != "CREATED/false RUNNING/false EXITED/false EXITED/true" {
		t.Fatalf("told %v", got)
	}
}

// A container whose record cannot be read (corrupt; a newer Berth's schema)
// is not listed, is named by Unreadable for recovery to keep what it owns,
// keeps its file as it is, and its id stays taken.
func TestLoadKeepsUnreadableRecords(t *testing.T) {
	s, dir := newStore(t)
	if err := s.Add(Container{ID: "ok", PodID: "p"}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"torn":  `{"version":1,"record":{"id":"torn","sta`,
		"newer": `{"version":2,"record":{"id":"newer"}}`,
	}
	for id, content := range files {
		if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s2.Unreadable()
	slices.Sort(got)
	if strings.Join(got, ",") != "newer,torn" {
		t.Fatalf("Unreadable = %v", got)
	}
	if l := s2.List(nil); len(l) != 1 || l[0].ID != "ok" {
		t.Fatalf("List = %v", l)
	}
	okRecord, err := os.ReadFile(filepath.Join(dir, "ok.json"))
	if err != nil {
		t.Fatal(err)
	}
	s2.Hold("ok")
	if l := s2.List(nil); len(l) != 0 {
		t.Fatalf("List after Hold = %v", l)
	}
	if got := s2.Unreadable(); len(got) != 3 || !slices.Contains(got, "ok") {
		t.Fatalf("Unreadable after Hold = %v", got)
	}
	files["ok"] = string(okRecord)
	for id, content := range files {
		if err := s2.Add(Container{ID: id}); !errdefs.IsAlreadyExists(err) {
			t.Fatalf("Add(%s) over an unreadable record = %v", id, err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, id+".json")); string(b) != content {
			t.Fatalf("record %s rewritten: %q", id, b)
		}
	}
}

// A claim returns the record as it is once the claim is held; a container
// deleted under a claim ends the claims that wait for it with NotFound.
func TestClaimSeesTheStateOfItsTurn(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Add(Container{ID: "c1", PodID: "p1"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, release, err := s.Claim(ctx, "c1", claim.Starting)
	if err != nil || c.State != Created {
		t.Fatalf("claim: %v, %v", c, err)
	}
	// Two stops hold the container at once, once the start is done.
	stops, both := make(chan *Container, 2), make(chan struct{})
	for range 2 {
		go func() {
			c, done, err := s.Claim(ctx, "c1", claim.Stopping)
			if err != nil {
				t.Error(err)
				stops <- nil
				return
			}
			stops <- c
			<-both
			done()
		}()
	}
	if _, err := s.Update("c1", func(c *Container) error { c.State = Running; return nil }); err != nil {
		t.Fatal(err)
	}
	release()
	for range 2 {
		if c := wait.Receive(t, "a stop", stops); c == nil || c.State != Running {
			t.Fatalf("a stop's claim saw %v, want the container RUNNING", c)
		}
	}
	close(both)
	_, release, err = s.Claim(ctx, "c1", claim.Removing)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() {
		_, done, err := s.Claim(ctx, "c1", claim.Starting)
		if err == nil {
			done()
		}
		started <- err
	}()
	if err := s.Delete("c1"); err != nil {
		t.Fatal(err)
	}
	release()
	if err := wait.Receive(t, "the start", started); !errdefs.IsNotFound(err) {
		t.Fatalf("a start that waited for the removal: %v, want NotFound", err)
	}
}
