package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/berth-cri/berth/sandbox/runner"
)

// helperCall is one berth-runtime process running an operation.
type helperCall struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startHelper starts "<runtime> op" on req, the files as its descriptors
// from 3 on (req names them by number), and registers its pid so that the
// orphan reaper leaves it to finish; it counts as starting until then.
func (cs *Containers) startHelper(op string, req runner.HelperRequest, files []*os.File) (*helperCall, error) {
	cs.beginStart()
	defer cs.endStart()
	req.Root = cs.root
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	h := &helperCall{cmd: exec.Command(cs.runtime, op)}
	h.cmd.Stdin, h.cmd.Stdout, h.cmd.Stderr = bytes.NewReader(data), &h.out, os.Stderr
	h.cmd.ExtraFiles = files
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", cs.runtime, op, err)
	}
	cs.setWaited(h.cmd.Process.Pid, true)
	return h, nil
}

// waitHelper waits for the helper and returns its reply.
func (cs *Containers) waitHelper(h *helperCall) (runner.HelperReply, error) {
	werr := h.cmd.Wait()
	cs.setWaited(h.cmd.Process.Pid, false)
	var reply runner.HelperReply
	if err := json.Unmarshal(h.out.Bytes(), &reply); err != nil {
		return reply, fmt.Errorf("%s %s: no reply (%v, %v)", cs.runtime, h.cmd.Args[1], werr, err)
	}
	return reply, reply.Err()
}

// helper runs op on req and returns its reply.
func (cs *Containers) helper(op string, req runner.HelperRequest) (runner.HelperReply, error) {
	h, err := cs.startHelper(op, req, nil)
	if err != nil {
		return runner.HelperReply{}, err
	}
	return cs.waitHelper(h)
}

// setWaited says whether a waiter of the shim's reaps pid (see reap.go).
func (cs *Containers) setWaited(pid int, waited bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if waited {
		cs.waited[pid] = true
	} else {
		delete(cs.waited, pid)
	}
}

// kill asks the helper to kill the process it runs (exec).
func (h *helperCall) kill() error {
	err := h.cmd.Process.Signal(syscall.SIGTERM)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}
