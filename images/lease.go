package images

import (
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// leases are the blobs and layers that running pulls use before an image
// record does: GC keeps whatever a lease names. containerd protects a pull's
// content the same way (leases); ours live in memory only, since a restart
// ends every pull and start-up collects what they left.
//
// A pull takes its lease while holding gcLock shared, only for that moment,
// so a GC (which holds gcLock exclusively and reads the leases) has either
// finished before the pull looks at the store, or sees the lease. The lease
// is released after the image record, which then keeps the same things, is
// committed, or when the pull fails (the next GC collects what it left).
type leases struct {
	mu   sync.Mutex
	refs map[digest.Digest]int
}

// lease protects ds (blob digests and layer chain IDs) until release is called.
func (s *Service) lease(ds []digest.Digest) (release func()) {
	s.gcLock.RLock()
	defer s.gcLock.RUnlock()
	return s.leases.acquire(ds)
}

func (l *leases) acquire(ds []digest.Digest) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refs == nil {
		l.refs = map[digest.Digest]int{}
	}
	for _, d := range ds {
		l.refs[d]++
	}
	var once sync.Once
	return func() { once.Do(func() { l.drop(ds) }) }
}

func (l *leases) drop(ds []digest.Digest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range ds {
		if l.refs[d]--; l.refs[d] <= 0 {
			delete(l.refs, d)
		}
	}
}

// held returns what leases name now. GC calls it holding gcLock exclusively,
// so no lease can be added until it is done.
func (l *leases) held() map[digest.Digest]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[digest.Digest]bool, len(l.refs))
	for d := range l.refs {
		out[d] = true
	}
	return out
}
