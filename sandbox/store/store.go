package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// Store is a directory of records of one kind.
type Store struct {
	dir     string
	version int
}

// validID keeps ids to safe file names (CRI ids are hex; names are not ids).
var validID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// New opens (creating) dir for records whose current schema is version.
func New(dir string, version int) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create record dir %s: %w", dir, err)
	}
	return &Store{dir: dir, version: version}, nil
}

type envelope struct {
	Version int             `json:"version"`
	Record  json.RawMessage `json:"record"`
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+".json") }

// File is the path of id's record, for messages (an unreadable record is
// named by its file, which recovery leaves for inspection).
func (s *Store) File(id string) string { return s.path(id) }

func checkID(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("record id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Put writes v as id's record, atomically and durably.
func (s *Store) Put(id string, v any) error {
	if err := checkID(id); err != nil {
		return err
	}
	rec, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", id, err)
	}
	data, err := json.Marshal(envelope{Version: s.version, Record: rec})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "."+id+".json.tmp-")
	if err != nil {
		return fmt.Errorf("write record %s: %w", id, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write record %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync record %s: %w", id, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path(id)); err != nil {
		return fmt.Errorf("commit record %s: %w", id, err)
	}
	return s.syncDir()
}

// Get decodes id's record into v. A missing record is ErrNotFound; a record
// of another schema version is ErrFailedPrecondition (Migrate decides).
func (s *Store) Get(id string, v any) error {
	if err := checkID(id); err != nil {
		return err
	}
	data, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("record %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return s.decode(id, data, v)
}

func (s *Store) decode(id string, data []byte, v any) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("record %s: %v: %w", id, err, errdefs.ErrDataLoss)
	}
	if env.Version != s.version {
		return fmt.Errorf("record %s has schema version %d, want %d: %w", id, env.Version, s.version, errdefs.ErrFailedPrecondition)
	}
	if err := json.Unmarshal(env.Record, v); err != nil {
		return fmt.Errorf("record %s: %v: %w", id, err, errdefs.ErrDataLoss)
	}
	return nil
}

// Remove deletes id's record; a missing record is not an error.
func (s *Store) Remove(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	doomed := filepath.Join(s.dir, "."+id+".json.removing")
	if err := os.Rename(s.path(id), doomed); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove record %s: %w", id, err)
	}
	if err := s.syncDir(); err != nil {
		return err
	}
	return os.Remove(doomed)
}

// LoadAll calls fn with every record's id and raw decoder, after removing the
// leftovers of interrupted writes and removals. Records that do not decode (a
// torn or corrupt file: ErrDataLoss; a schema from another Berth:
// ErrFailedPrecondition) are reported to fn through the decode error and
// never touched: the caller keeps what they describe and leaves the file for
// inspection, instead of failing start-up.
func (s *Store) LoadAll(fn func(id string, decode func(v any) error) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read record dir %s: %w", s.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || checkID(id) != nil {
			continue // not ours
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			return err
		}
		if err := fn(id, func(v any) error { return s.decode(id, data, v) }); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
