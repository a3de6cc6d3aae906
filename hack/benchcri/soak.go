package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// sample is one look at the runtime's processes during the soak.
type sample struct {
	at                  time.Duration // since the soak began
	daemonRSS, daemonFD int
	shims               int
	shimRSS, shimFD     int // averages over the shims then running
}

// soak churns pods from clients concurrent clients for d (run a pod with a
// busybox container, stop and remove it, again), sampling the daemon's and
// the shims' resident memory and open fds every interval; it reports the
// first minute against the last, which should be flat.
func (b *bench) soak(d, interval time.Duration, clients int, p procs) {
	var cycles, errs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.cycle(c*1_000_000 + n); err != nil {
					errs.Add(1)
					log.Printf("soak: %v", err)
					continue
				}
				cycles.Add(1)
			}
		}()
	}
	t0 := time.Now()
	var samples []sample
	for time.Since(t0) < d {
		time.Sleep(interval)
		samples = append(samples, look(time.Since(t0), p))
	}
	close(stop)
	wg.Wait()
	fmt.Printf("soak_minutes %.1f soak_clients %d soak_cycles %d soak_errors %d\n", d.Minutes(), clients, cycles.Load(), errs.Load())
	first, last := window(samples, 0, time.Minute), window(samples, d-time.Minute, d+interval)
	for _, w := range []struct {
		name string
		s    sample
	}{{"first_minute", first}, {"last_minute", last}} {
		fmt.Printf("soak_%s daemon_rss_kib %d daemon_fds %d shims %d shim_rss_kib_avg %d shim_fds_avg %d\n",
			w.name, w.s.daemonRSS, w.s.daemonFD, w.s.shims, w.s.shimRSS, w.s.shimFD)
	}
	b.densityLeftovers(p)
}

// cycle runs one pod with its container, then stops and removes it.
func (b *bench) cycle(i int) error {
	s := b.place(i)
	if s.pod != "" {
		if err := b.unplace(s.pod); err != nil && s.err == nil {
			return err
		}
	}
	return s.err
}

func look(at time.Duration, p procs) sample {
	s := sample{at: at, daemonRSS: rssKiB(p.daemon), daemonFD: openFDs(p.daemon)}
	for _, pid := range findShims(p.shim, p.under) {
		s.shims++
		s.shimRSS += rssKiB(pid)
		s.shimFD += openFDs(pid)
	}
	if s.shims > 0 {
		s.shimRSS /= s.shims
		s.shimFD /= s.shims
	}
	return s
}

// window averages the samples taken in [from, to).
func window(samples []sample, from, to time.Duration) sample {
	var sum sample
	n := 0
	for _, s := range samples {
		if s.at < from || s.at >= to {
			continue
		}
		n++
		sum.daemonRSS += s.daemonRSS
		sum.daemonFD += s.daemonFD
		sum.shims += s.shims
		sum.shimRSS += s.shimRSS
		sum.shimFD += s.shimFD
	}
	if n == 0 {
		return sum
	}
	return sample{daemonRSS: sum.daemonRSS / n, daemonFD: sum.daemonFD / n, shims: sum.shims / n,
		shimRSS: sum.shimRSS / n, shimFD: sum.shimFD / n}
}

func openFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(entries)
}
