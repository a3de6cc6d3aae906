package serve

import (
	"context"

	"github.com/containerd/log"
	"github.com/coreos/go-systemd/v22/daemon"
)

// notify tells systemd (a Type=notify unit: $NOTIFY_SOCKET) how berthd is
// doing: READY=1 once the CRI socket serves, STOPPING=1 when it begins to
// stop. Outside systemd it does nothing.
func notify(ctx context.Context, states ...string) {
	for _, state := range states {
		sent, err := daemon.SdNotify(false, state)
		if err != nil {
			log.G(ctx).WithError(err).WithField("state", state).Warn("notify systemd")
			continue
		}
		if sent {
			log.G(ctx).WithField("state", state).Debug("notified systemd")
		}
	}
}
