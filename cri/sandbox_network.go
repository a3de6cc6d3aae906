package cri

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/sandbox"
)

// PodNetwork attaches pods to the pod network (cni.Manager).
type PodNetwork interface {
	NetworkStatus
	Setup(ctx context.Context, p cni.Pod) (*cni.Attachment, error)
	Teardown(ctx context.Context, p cni.Pod) error
	// SetPodCIDR takes the node's pod CIDRs from the kubelet.
	SetPodCIDR(ctx context.Context, cidrs string) error
}

// Pod annotations that limit a pod's bandwidth, as the kubelet writes them.
const (
	ingressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	egressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// cniPod describes a pod to the network plugins.
func cniPod(p *sandbox.Pod, cfg *runtime.PodSandboxConfig) (cni.Pod, error) {
	out := cni.Pod{ID: p.ID, Name: p.Spec.Name, Namespace: p.Spec.Namespace, UID: p.Spec.UID, NetNS: p.Pins[sandbox.NetNS]}
	if d := p.Spec.DNS; len(d.Servers)+len(d.Searches)+len(d.Options) > 0 {
		out.DNS = &cni.DNS{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		out.PortMappings = append(out.PortMappings, cni.PortMapping{HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(),
			Protocol: strings.ToLower(pm.GetProtocol().String()), HostIP: pm.GetHostIp()})
	}
	var err error
	if out.IngressRate, err = bandwidth(p.Spec.Annotations[ingressBandwidthAnnotation]); err != nil {
		return out, err
	}
	out.EgressRate, err = bandwidth(p.Spec.Annotations[egressBandwidthAnnotation])
	return out, err
}

// bandwidth parses a Kubernetes quantity in bits per second ("10M", "1Gi").
func bandwidth(q string) (int64, error) {
	if q == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(q, u.suffix) {
			q, mult = strings.TrimSuffix(q, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bandwidth %q is not a positive quantity such as 10M: %w", q, errdefs.ErrInvalidArgument)
	}
	return n * mult, nil
}

// attachNetwork attaches a new pod and records the attachment; on failure
// the network is detached again. Host-network pods get nothing.
func (s *Server) attachNetwork(ctx context.Context, p *sandbox.Pod, cfg *runtime.PodSandboxConfig) error {
	if p.Spec.NetworkMode == sandbox.ModeNode {
		return nil
	}
	cp, err := cniPod(p, cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	att, err := s.network.Setup(ctx, cp)
	if err != nil {
		return err
	}
	took := time.Since(start)
	if err := s.pods.SetNetwork(p.ID, &sandbox.Network{IPs: att.IPs, Result: att.Result}); err != nil {
		undo, cancel := cleanupContext(ctx)
		defer cancel()
		if derr := s.network.Teardown(undo, cp); derr != nil {
			log.G(ctx).WithError(derr).Error("detach after a failed record")
		}
		return err
	}
	log.G(ctx).WithFields(log.Fields{"ips": att.IPs, "cni_add": took.String()}).Info("pod attached to the network")
	return nil
}

// detachNetwork runs the network teardown of a pod; it is idempotent.
func (s *Server) detachNetwork(ctx context.Context, p *sandbox.Pod) error {
	if p.Spec.NetworkMode == sandbox.ModeNode {
		return nil
	}
	start := time.Now()
	err := s.network.Teardown(ctx, cni.Pod{ID: p.ID, Name: p.Spec.Name, Namespace: p.Spec.Namespace, UID: p.Spec.UID, NetNS: p.Pins[sandbox.NetNS]})
	log.G(ctx).WithFields(log.Fields{"pod": p.ID, "cni_del": time.Since(start).String()}).Debug("pod detached from the network")
	return err
}
