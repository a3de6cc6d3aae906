package helper

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A write that fails midway (here: the file size limit, EFBIG, hit after the
// first bytes; Go ignores SIGXFSZ) leaves the old berth-process.json whole and
// no temp file beside it.
func TestWriteProcessFailingMidwayKeepsTheOldFile(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeProcess(root, "c1", &specs.Process{Args: []string{"old"}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "c1", processFile)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	small := lim
	small.Cur = uint64(len(old)) / 2
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Fatal(err)
	}
	err = writeProcess(root, "c1", &specs.Process{Args: []string{strings.Repeat("new", 100)}})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("a write beyond the file size limit succeeded")
	}

	got, rerr := os.ReadFile(path)
	if rerr != nil || string(got) != string(old) {
		t.Fatalf("after a failed write the file holds %q (%v), want the old %q", got, rerr, old)
	}
	sp, rerr := readProcess(root, "c1")
	if rerr != nil || sp.Args[0] != "old" {
		t.Fatalf("readProcess = %+v, %v", sp, rerr)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "c1"))
	if len(entries) != 1 {
		t.Fatalf("dir holds %d files, want only %s", len(entries), processFile)
	}
}
