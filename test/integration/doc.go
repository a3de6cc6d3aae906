// Package integration drives a real berthd through the CRI client and crictl.
// Every test needs root and BERTHD (see test/util); crictl tests also need
// CRICTL, and tests of the network condition need the CNI plugins in
// /opt/cni/bin (hack/install-deps.sh installs them).
package integration
