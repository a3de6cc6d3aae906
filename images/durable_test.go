package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-cri/berth/images/remote"
)

// countLayers returns the layer records and the layer dirs in place.
func countLayers(t *testing.T, s *Service) (records, dirs int) {
	t.Helper()
	ls, err := s.meta.layers()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(s.layersDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpLayerPrefix) {
			dirs++
		}
	}
	return len(ls), dirs
}

// Each layer is synced in its tmp dir, renamed, the rename synced, and only
// then recorded. The seam sees the store at each sync; the rename itself is
// inferred from the dirs in place (what a power loss would leave cannot be
// observed in a unit test).
func TestLayerSyncedBeforeRecord(t *testing.T) {
	reg := newPullRegistry(t)
	reg.pushImage(t, "test/app:v1", "sync")
	s := newService(t, t.TempDir())
	s.opts.MaxConcurrentDownloads = 1 // one layer after another: a fixed order
	var events []string
	s.disk = diskSync{
		fs: func(dir string) error {
			if !strings.HasPrefix(filepath.Base(dir), tmpLayerPrefix) {
				t.Errorf("syncfs of %s, want the layer's tmp dir", dir)
			}
			if entries, _ := os.ReadDir(dir); len(entries) == 0 {
				t.Errorf("syncfs of an empty layer dir %s", dir)
			}
			rec, dirs := countLayers(t, s)
			events = append(events, fmt.Sprintf("syncfs: %d in place, %d recorded", dirs, rec))
			return syncFS(dir)
		},
		dir: func(dir string) error {
			if dir != s.layersDir {
				t.Errorf("fsync of %s, want %s", dir, s.layersDir)
			}
			rec, dirs := countLayers(t, s)
			events = append(events, fmt.Sprintf("fsync dir: %d in place, %d recorded", dirs, rec))
			return syncDir(dir)
		},
	}
	if _, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		want = append(want,
			fmt.Sprintf("syncfs: %d in place, %d recorded", i, i),
			fmt.Sprintf("fsync dir: %d in place, %d recorded", i+1, i))
	}
	if !slices.Equal(events, want) {
		t.Fatalf("syncs saw\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if rec, dirs := countLayers(t, s); rec != 3 || dirs != 3 {
		t.Fatalf("after the pull: %d records, %d dirs", rec, dirs)
	}
}

// A failed sync leaves no record of the layer it was to make durable, and
// no dir: one renamed before its rename failed to sync is removed again (a
// crash there would leave it to start-up, as no record owns it).
func TestLayerSyncFailureRecordsNothing(t *testing.T) {
	boom := errors.New("injected sync failure")
	for _, tt := range []struct {
		name string
		disk func() diskSync
	}{
		{"syncfs", func() diskSync { return diskSync{fs: func(string) error { return boom }, dir: syncDir} }},
		{"fsync dir", func() diskSync { return diskSync{fs: syncFS, dir: func(string) error { return boom }} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newPullRegistry(t)
			reg.pushImage(t, "test/app:v1", "syncfail")
			s := newService(t, t.TempDir())
			s.disk = tt.disk()
			_, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{})
			if !errors.Is(err, boom) {
				t.Fatalf("pull = %v, want the sync failure", err)
			}
			if rec, dirs := countLayers(t, s); rec != 0 || dirs != 0 {
				t.Fatalf("%d layer records and %d dirs after every sync failed", rec, dirs)
			}
			s.Close()
			assertNothingStored(t, newService(t, s.opts.Root))
		})
	}
}
