package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// The kubelet gives the node's pod CIDRs (UpdateRuntimeConfig, a comma
// separated list on dual-stack nodes) once it knows them, and again only when
// they change or the kubelet restarts: so they are kept in a file. The
// embedded default network allocates from them unless the config chose its
// subnet (a non-empty default_subnet): an explicit choice wins, as containerd's CNI
// config template only uses {{.PodCIDR}} where the template asks for it.
// New pods get addresses from the new ranges; pods keep theirs.

// SetPodCIDR records the node's pod CIDRs. An empty value changes nothing;
// a malformed one is ErrInvalidArgument.
func (m *Manager) SetPodCIDR(ctx context.Context, cidrs string) error {
	if strings.TrimSpace(cidrs) == "" {
		return nil
	}
	var list []string
	for _, c := range strings.Split(cidrs, ",") {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("pod CIDR %q is not a CIDR such as 10.244.1.0/24: %w", c, errdefs.ErrInvalidArgument)
		}
		list = append(list, n.String())
	}
	m.cidrMu.Lock()
	defer m.cidrMu.Unlock()
	m.loadPodCIDRLocked(ctx)
	if slices.Equal(list, m.podCIDRs) {
		return nil
	}
	if err := m.savePodCIDRLocked(list); err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"pod_cidr": list, "was": m.podCIDRs, "used": m.opts.DefaultSubnet == ""}).Info("pod CIDR set")
	m.podCIDRs = list
	return nil
}

// defaultSubnets are the ranges of the embedded network: the config's
// default_subnet when chosen there, else the kubelet's pod CIDRs, else the
// default subnet.
func (m *Manager) defaultSubnets(ctx context.Context) []string {
	if m.opts.DefaultSubnet != "" {
		return []string{m.opts.DefaultSubnet}
	}
	m.cidrMu.Lock()
	defer m.cidrMu.Unlock()
	m.loadPodCIDRLocked(ctx)
	if len(m.podCIDRs) > 0 {
		return slices.Clone(m.podCIDRs)
	}
	return []string{FallbackSubnet}
}

// loadPodCIDRLocked reads the kept pod CIDRs once; an unreadable file is
// logged and ignored (the kubelet sends them again when it restarts).
func (m *Manager) loadPodCIDRLocked(ctx context.Context) {
	if m.cidrLoaded || m.opts.PodCIDRFile == "" {
		return
	}
	m.cidrLoaded = true
	data, err := os.ReadFile(m.opts.PodCIDRFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var list []string
	for _, c := range strings.Fields(string(data)) {
		if _, n, perr := net.ParseCIDR(c); perr == nil {
			list = append(list, n.String())
		} else if err == nil {
			err = perr
		}
	}
	if err != nil {
		log.G(ctx).WithError(err).WithField("file", m.opts.PodCIDRFile).Warn("the kept pod CIDR is unreadable; ignored")
		return
	}
	m.podCIDRs = list
}

// savePodCIDRLocked writes the pod CIDRs durably.
func (m *Manager) savePodCIDRLocked(list []string) error {
	if m.opts.PodCIDRFile == "" {
		return nil
	}
	if err := writeFileDurably(m.opts.PodCIDRFile, []byte(strings.Join(list, "\n")+"\n")); err != nil {
		return fmt.Errorf("keep the pod CIDR: %w", err)
	}
	return nil
}
