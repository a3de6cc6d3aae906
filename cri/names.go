package cri

import (
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// names reserves pod (and later container) names. A name is held from the
// start of a Run/Create until the object is removed. When a Run finishes after
// its caller gave up (the kubelet's RPC timed out), the result is kept for the
// caller's retry, which gets the finished object instead of an error
// (STYLE.md #5); any other duplicate is AlreadyExists.
type names struct {
	mu      sync.Mutex
	owner   map[string]string // name → id
	orphans map[string]string // name → id finished after its caller left
}

func newNames() *names {
	return &names{owner: map[string]string{}, orphans: map[string]string{}}
}

// reserve claims name for id. If a Run for this name finished after its caller
// left, it returns that object's id and ok=true instead.
func (n *names) reserve(name, id string) (existing string, ok bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if prev, done := n.orphans[name]; done {
		delete(n.orphans, name)
		return prev, true, nil
	}
	if prev, taken := n.owner[name]; taken {
		return "", false, fmt.Errorf("name %q is reserved for %s: %w", name, prev, errdefs.ErrAlreadyExists)
	}
	n.owner[name] = id
	return "", false, nil
}

// orphaned records that the object made for name was finished after its
// caller left, so that the retry gets it.
func (n *names) orphaned(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.orphans[name] = id
}

// release frees name if id holds it.
func (n *names) release(name, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.owner[name] == id {
		delete(n.owner, name)
	}
	if n.orphans[name] == id {
		delete(n.orphans, name)
	}
}
