package cri

import (
	"testing"
	"time"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

func TestCPURate(t *testing.T) {
	var c cpuSamples
	t0 := time.Unix(1000, 0)
	if _, ok := c.rate("a", 5e9, t0); ok {
		t.Fatal("a rate from one sample")
	}
	// Half a core: 1 s of CPU over 2 s.
	if r, ok := c.rate("a", 6e9, t0.Add(2*time.Second)); !ok || r != 5e8 {
		t.Fatalf("rate = %d, %v", r, ok)
	}
	if _, ok := c.rate("a", 6e9, t0.Add(2*time.Second)); ok {
		t.Fatal("a rate over no time")
	}
	c.forget("a")
	if _, ok := c.rate("a", 7e9, t0.Add(3*time.Second)); ok {
		t.Fatal("a rate after forget")
	}
	if _, ok := c.rate("a", 1e9, t0.Add(4*time.Second)); ok {
		t.Fatal("a rate from a counter that went back (a new cgroup)")
	}
}

func TestMemoryUsage(t *testing.T) {
	cg := &cgroups.Stats{At: time.Unix(1, 0), MemoryUsage: 300, MemoryWorkingSet: 200, MemoryRSS: 100, PageFaults: 7}
	m := memoryUsage(cg, 0)
	if m.GetWorkingSetBytes().GetValue() != 200 || m.GetUsageBytes().GetValue() != 300 || m.GetRssBytes().GetValue() != 100 ||
		m.GetPageFaults().GetValue() != 7 || m.AvailableBytes != nil || m.GetTimestamp() != 1e9 {
		t.Fatalf("without a limit: %v", m)
	}
	if m := memoryUsage(cg, 1000); m.GetAvailableBytes().GetValue() != 800 {
		t.Fatalf("available under a 1000-byte limit: %v", m.GetAvailableBytes())
	}
	if m := memoryUsage(cg, 150); m.GetAvailableBytes().GetValue() != 0 {
		t.Fatalf("available over the limit: %v", m.GetAvailableBytes())
	}
}
