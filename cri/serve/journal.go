package serve

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/sirupsen/logrus"
)

// JournalSocket is where journald takes native messages.
const JournalSocket = "/run/systemd/journal/socket"

// JournalHook sends each log entry to journald in its native protocol, with
// every field of the entry as a journal field of its own (pod → POD,
// container → CONTAINER, rpc → RPC, error → ERROR), so that
// `journalctl -u berth POD=<id>` lists what Berth did to a pod. berthd uses
// it with log_format = "journald" (the unit file sets it), and writes
// nothing else then: stderr would give journald each line a second time.
type JournalHook struct {
	conn *net.UnixConn
}

// NewJournalHook connects to journald's socket (JournalSocket; another path
// in tests): a journal that is not there is an error at start-up, not lost
// logs.
func NewJournalHook(socket string) (*JournalHook, error) {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("log to journald: %w", err)
	}
	return &JournalHook{conn: conn}, nil
}

// Levels says the hook takes every entry.
func (h *JournalHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire sends one entry.
func (h *JournalHook) Fire(e *logrus.Entry) error {
	_, err := h.conn.Write(journalMessage(e))
	return err
}

// journalMessage encodes an entry as journald's native datagram: KEY=value
// lines, or KEY, a little-endian 64-bit length and the bytes where a value
// holds a newline.
func journalMessage(e *logrus.Entry) []byte {
	var b bytes.Buffer
	writeField(&b, "MESSAGE", e.Message)
	writeField(&b, "PRIORITY", fmt.Sprint(syslogPriority(e.Level)))
	writeField(&b, "SYSLOG_IDENTIFIER", "berthd")
	for k, v := range e.Data {
		writeField(&b, journalKey(k), fmt.Sprint(v))
	}
	return b.Bytes()
}

func writeField(b *bytes.Buffer, key, value string) {
	if !strings.Contains(value, "\n") {
		fmt.Fprintf(b, "%s=%s\n", key, value)
		return
	}
	b.WriteString(key)
	b.WriteByte('\n')
	_ = binary.Write(b, binary.LittleEndian, uint64(len(value)))
	b.WriteString(value)
	b.WriteByte('\n')
}

// reserved are the journal fields the hook sets itself, and the trusted ones
// journald sets; a log field of that name gets a BERTH_ prefix.
var reserved = map[string]bool{"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true, "MESSAGE_ID": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true, "ERRNO": true}

// journalKey makes a log field's name a journal field name: upper case
// letters, digits and underscores, starting with a letter, at most 64 bytes.
func journalKey(k string) string {
	key := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, k)
	if key == "" || key[0] < 'A' || key[0] > 'Z' || reserved[key] {
		key = "BERTH_" + key
	}
	return key[:min(len(key), 64)]
}

// syslogPriority maps logrus levels to syslog's (journald's PRIORITY).
func syslogPriority(l logrus.Level) int {
	switch l {
	case logrus.PanicLevel:
		return 0
	case logrus.FatalLevel:
		return 2
	case logrus.ErrorLevel:
		return 3
	case logrus.WarnLevel:
		return 4
	case logrus.InfoLevel:
		return 6
	}
	return 7
}
