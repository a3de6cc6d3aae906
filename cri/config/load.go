package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load reads the main config file at path and its drop-ins (berth.d/*.toml in
// the same directory, in name order) on top of the defaults. When mustExist is
// false, a missing main file means defaults (that is the case for the default
// path); a missing drop-in dir is never an error. Load does not validate: call
// Validate after applying flags.
func Load(path string, mustExist bool) (*Config, error) {
	c := Default()
	if err := c.decodeFile(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) || mustExist {
			return nil, err
		}
	}
	dropIns, err := filepath.Glob(filepath.Join(filepath.Dir(path), DropInDirName, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("config drop-ins: %w", err)
	}
	sort.Strings(dropIns)
	for _, f := range dropIns {
		if err := c.decodeFile(f); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// decodeFile decodes one TOML file on top of c. Keys the file does not set keep
// their current value.
func (c *Config) decodeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return c.decode(path, string(data))
}

func (c *Config) decode(name, data string) error {
	md, err := toml.Decode(data, c)
	if err != nil {
		return fmt.Errorf("config file %s: %s", name, describeDecodeError(err))
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = fmt.Sprintf("%q", k.String())
		}
		return fmt.Errorf("config file %s: unknown key %s", name, strings.Join(keys, ", "))
	}
	for _, k := range md.Keys() {
		c.Set(k.String(), "config file "+name)
	}
	return nil
}

// describeDecodeError turns BurntSushi/toml's errors into one line that names
// the key and position where the library knows them.
func describeDecodeError(err error) string {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		msg := perr.Message
		if perr.LastKey != "" {
			msg = fmt.Sprintf("key %q: %s", perr.LastKey, msg)
		}
		return fmt.Sprintf("line %d: %s", perr.Position.Line, msg)
	}
	return err.Error()
}
