package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// execProcess is the init's process (user, env, working dir, labels) with
// args instead, on no terminal.
func execProcess(init *specs.Process, args []string) *specs.Process {
	p := *init
	p.Args, p.Terminal, p.ConsoleSize = args, false, nil
	return &p
}
