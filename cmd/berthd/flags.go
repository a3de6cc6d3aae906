package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/berth-cri/berth/cri/config"
)

var errHelp = flag.ErrHelp

type flags struct {
	configFile     string
	configExplicit bool // --config was given: a missing file is an error
	version        bool
	// set holds the override flags given on the command line, with their values.
	set map[string]string
}

// overrides are the flags that override a config key.
var overrides = []struct {
	flag, key, usage string
	field            func(*config.Config) *string
}{
	{"root", "root", "persistent state directory (default /var/lib/berth)", func(c *config.Config) *string { return &c.Root }},
	{"state", "state", "volatile state directory (default /run/berth)", func(c *config.Config) *string { return &c.State }},
	{"listen", "listen", "CRI socket path (default /run/berth/berth.sock)", func(c *config.Config) *string { return &c.Listen }},
	{"log-level", "log_level", "log level: trace, debug, info, warn, error (default info)", func(c *config.Config) *string { return &c.LogLevel }},
	{"log-format", "log_format", "log format: text, json or journald (default text)", func(c *config.Config) *string { return &c.LogFormat }},
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]string{}}
	fs := flag.NewFlagSet("berthd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config", config.DefaultConfigFile, "config file; drop-ins are read from berth.d/*.toml beside it")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	values := map[string]*string{}
	for _, o := range overrides {
		values[o.flag] = fs.String(o.flag, "", o.usage)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: berthd [flags]\n       berthd config default   print the default config\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "berthd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return nil, errors.New("unexpected argument")
	}
	fs.Visit(func(fl *flag.Flag) {
		if v, ok := values[fl.Name]; ok {
			f.set[fl.Name] = *v
		}
		if fl.Name == "config" {
			f.configExplicit = true
		}
	})
	return f, nil
}

// loadConfig reads the config file and its drop-ins, applies the flags on top
// and validates the result.
func loadConfig(f *flags) (*config.Config, error) {
	cfg, err := config.Load(f.configFile, f.configExplicit)
	if err != nil {
		return nil, err
	}
	for _, o := range overrides {
		if v, ok := f.set[o.flag]; ok {
			*o.field(cfg) = v
			cfg.Set(o.key, "flag --"+o.flag)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}
