package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

// A pending attachment is an ADD in flight, noted durably before the plugins
// run. libcni caches an attachment only once its ADD succeeded, so a crash in
// the middle of one (berthd killed, the node rebooted) would leave what the
// plugins did so far with no record to DEL it by; and not everything can be
// found again without one: the bridge plugin removes a pod's masquerade
// rules only on a DEL that finds the pod's interface, and its iptables GC is
// a no-op. Teardown and Collect DEL pending attachments as they do cached
// ones, then drop their notes.

func (m *Manager) pendingDir() string { return filepath.Join(m.opts.CacheDir, "pending") }

func (m *Manager) pendingFile(podID, ifName string) string {
	return filepath.Join(m.pendingDir(), podID+"-"+ifName)
}

// notePending records, durably, the ADD of list that rt is about to run.
func (m *Manager) notePending(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	if m.opts.CacheDir == "" {
		return nil
	}
	data, err := json.Marshal(cached{ContainerID: rt.ContainerID, Config: list.Bytes, IfName: rt.IfName,
		NetworkName: list.Name, NetNS: rt.NetNS, CniArgs: rt.Args, CapabilityArgs: rt.CapabilityArgs})
	if err != nil {
		return err
	}
	if err := writeFileDurably(m.pendingFile(rt.ContainerID, rt.IfName), data); err != nil {
		return fmt.Errorf("note the network ADD of pod %s: %w", rt.ContainerID, err)
	}
	return nil
}

// settlePending drops the note of an ADD that libcni cached or that was
// undone.
func (m *Manager) settlePending(podID, ifName string) error {
	if m.opts.CacheDir == "" {
		return nil
	}
	err := os.Remove(m.pendingFile(podID, ifName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileDurably writes data to path: a temp file beside it, fsync,
// rename, fsync of the dir.
func writeFileDurably(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
