package util

import (
	"os/exec"
	"path/filepath"
	"strings"
)

// NetworkLeftovers lists what b's pods left of their network once they are
// all removed: IP leases, cached or pending attachments, veths on the test
// bridge, nat rules for the test subnet, and nat chains that were not there
// before (chainsBefore, from NatChains; nil skips that check).
func NetworkLeftovers(b *Berthd, chainsBefore map[string]bool) []string {
	var left []string
	leases, _ := filepath.Glob(filepath.Join(b.Root, "cni", "networks", "*", "10.*"))
	cache, _ := filepath.Glob(filepath.Join(b.Root, "cni", "cache", "*", "*"))
	for _, f := range append(leases, cache...) {
		left = append(left, "file "+f)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", TestBridge).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		left = append(left, "veths on "+TestBridge+": "+strings.TrimSpace(string(out)))
	}
	prefix := strings.TrimSuffix(TestSubnet, "0/24") // "10.201.0."
	for _, rule := range strings.Split(natRules(), "\n") {
		if strings.Contains(rule, prefix) {
			left = append(left, "nat rule "+rule)
		}
	}
	if chainsBefore != nil {
		for c := range NatChains() {
			if !chainsBefore[c] && !strings.HasPrefix(c, "CNI-HOSTPORT-") {
				left = append(left, "nat chain "+c)
			}
		}
	}
	return left
}

// NatChains is the set of the nat table's CNI chains (CNI-...).
func NatChains() map[string]bool {
	chains := map[string]bool{}
	for _, line := range strings.Split(natRules(), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "CNI-") {
			chains[f[1]] = true
		}
	}
	return chains
}
