package serve

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// The hook sends journald one datagram per entry, each field a journal field
// of its own; a value with a newline goes in the binary form.
func TestJournalHookSendsFields(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "journal")
	journal, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	hook, err := NewJournalHook(socket)
	if err != nil {
		t.Fatal(err)
	}
	logger := logrus.New()
	logger.AddHook(hook)
	logger.Out = &bytes.Buffer{}
	logger.WithFields(logrus.Fields{"pod": "p1", "container": "c1", "message": "clash", "9lives": 1}).
		WithError(errors.New("first line\nsecond line")).Warn("stopping container")
	buf := make([]byte, 65536)
	n, err := journal.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := parseJournal(t, buf[:n])
	want := map[string]string{"MESSAGE": "stopping container", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "berthd", "POD": "p1",
		"CONTAINER": "c1", "BERTH_MESSAGE": "clash", "BERTH_9LIVES": "1", "ERROR": "first line\nsecond line"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %q)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("fields %q, want exactly %q", got, want)
	}
}

// A journal that is not there fails at once.
func TestJournalHookWithoutJournal(t *testing.T) {
	if _, err := NewJournalHook(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("no error without a journal socket")
	}
}

// parseJournal reads journald's native format back.
func parseJournal(t *testing.T, data []byte) map[string]string {
	fields := map[string]string{}
	for len(data) > 0 {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			t.Fatalf("unterminated field in %q", data)
		}
		line := string(data[:nl])
		data = data[nl+1:]
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
			continue
		}
		size := binary.LittleEndian.Uint64(data[:8])
		fields[line] = string(data[8 : 8+size])
		data = data[8+size+1:]
	}
	return fields
}
