package store

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
)

type pod struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pods")
	s, err := New(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestPutGetRemove(t *testing.T) {
	s, dir := newStore(t)
	if err := s.Put("abc", pod{Name: "web", State: "READY"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("abc", pod{Name: "web", State: "NOTREADY"}); err != nil {
		t.Fatal(err)
	}
	var got pod
	if err := s.Get("abc", &got); err != nil || got.State != "NOTREADY" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d files, want just the record", len(entries))
	}
	if err := s.Remove("abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("abc"); err != nil {
		t.Fatalf("removing a missing record: %v", err)
	}
	if err := s.Get("abc", &got); !errdefs.IsNotFound(err) {
		t.Fatalf("Get after Remove = %v", err)
	}
}

func TestBadIDs(t *testing.T) {
	s, _ := newStore(t)
	for _, id := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("a", 200)} {
		if err := s.Put(id, pod{}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Put(%q) = %v", id, err)
		}
	}
}

func TestVersionAndCorruption(t *testing.T) {
	s, dir := newStore(t)
	s.Put("old", pod{Name: "x"})
	v2, _ := New(dir, 2)
	var got pod
	if err := v2.Get("old", &got); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("reading a v1 record as v2 = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "torn.json"), []byte(`{"version":1,"rec`), 0o600)
	if err := s.Get("torn", &got); !errdefs.IsDataLoss(err) {
		t.Fatalf("torn record = %v", err)
	}
}

func TestLoadAllCleansLeftovers(t *testing.T) {
	s, dir := newStore(t)
	s.Put("a", pod{Name: "a"})
	s.Put("b", pod{Name: "b"})
	// What crashes leave: a temp write and a half removal.
	os.WriteFile(filepath.Join(dir, ".c.json.tmp-123"), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, ".d.json.removing"), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("not json"), 0o600)
	var ids []string
	var bad []string
	err := s.LoadAll(func(id string, decode func(any) error) error {
		var p pod
		if err := decode(&p); err != nil {
			bad = append(bad, id)
			return nil
		}
		ids = append(ids, p.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "a,b" || strings.Join(bad, ",") != "bad" {
		t.Fatalf("loaded %v, undecodable %v", ids, bad)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("leftover %s kept", e.Name())
		}
	}
}

func TestConcurrentPutsOfDifferentIDs(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := string(rune('a' + i))
			if err := s.Put(id, pod{Name: id}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	n := 0
	s.LoadAll(func(string, func(any) error) error { n++; return nil })
	if n != 16 {
		t.Fatalf("loaded %d records, want 16", n)
	}
}
