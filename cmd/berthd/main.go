// Command berthd is the Berth CRI runtime daemon. main only parses flags, loads
// the configuration and wires the packages together; see ../shared/DESIGN.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/cri/serve"
	"github.com/berth-cri/berth/sandbox/cgroups"
)

// version is Berth's semver version, set at build time with
// -ldflags "-X main.version=...".
var version = "0.0.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "config" {
		return configCommand(args[1:], stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		return 2
	}
	if f.version {
		fmt.Fprintf(stdout, "berthd %s\n", version)
		return 0
	}
	if err := daemon(f); err != nil {
		fmt.Fprintf(stderr, "berthd: %v\n", err)
		return 1
	}
	return 0
}

func configCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] != "default" {
		fmt.Fprintln(stderr, "usage: berthd config default")
		return 2
	}
	fmt.Fprint(stdout, config.DefaultTOML())
	return 0
}

// daemon runs berthd until SIGTERM or SIGINT.
func daemon(f *flags) error {
	if os.Geteuid() != 0 {
		return errors.New("berthd must run as root (it creates namespaces, mounts and cgroups)")
	}
	cfg, err := loadConfig(f)
	if err != nil {
		return err
	}
	if err := setupLogging(cfg); err != nil {
		return err
	}
	if cfg.CgroupDriver == config.SystemdDriver && !cgroups.SystemdRunning() {
		return fmt.Errorf("%s: cgroup_driver is \"systemd\" but systemd is not running on this host; use \"cgroupfs\"", cfg.Source("cgroup_driver"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	lock, err := serve.LockRoot(cfg.Root)
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := os.MkdirAll(cfg.State, 0o711); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}

	srv, closeAll, err := newServer(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeAll()

	l, err := serve.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"version": version, "root": cfg.Root, "state": cfg.State}).Info("berthd starting")
	if err := serve.Serve(ctx, l, srv); err != nil {
		return err
	}
	log.G(ctx).Info("berthd stopped")
	return nil
}

func setupLogging(cfg *config.Config) error {
	if err := log.SetLevel(cfg.LogLevel); err != nil {
		return err
	}
	if cfg.LogFormat == "journald" {
		hook, err := serve.NewJournalHook(serve.JournalSocket)
		if err != nil {
			return fmt.Errorf("log_format = \"journald\" (%s): %w", cfg.Source("log_format"), err)
		}
		logrus.AddHook(hook)
		logrus.SetOutput(io.Discard)
		return nil
	}
	format := log.TextFormat
	if cfg.LogFormat == "json" {
		format = log.JSONFormat
	}
	return log.SetFormat(format)
}
