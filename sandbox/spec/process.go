package spec

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// ProcessArgs applies Docker's rules, which the kubelet relies on:
//   - a CRI command replaces the image's entrypoint and cmd; CRI args follow it;
//   - without a CRI command, the image entrypoint is used (an entrypoint of
//     [""] means none), followed by the CRI args, or by the image cmd when
//     there are no CRI args.
func ProcessArgs(command, args, entrypoint, cmd []string) ([]string, error) {
	var out []string
	if len(command) > 0 {
		out = append(append(out, command...), args...)
	} else {
		if !(len(entrypoint) == 1 && entrypoint[0] == "") {
			out = append(out, entrypoint...)
		}
		if len(args) > 0 {
			out = append(out, args...)
		} else {
			out = append(out, cmd...)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no command: neither the container config nor the image gives one: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// KeyValue is one CRI environment variable.
type KeyValue struct{ Key, Value string }

// MergeEnv starts from the image's environment ("KEY=value" entries) and
// applies the CRI variables on top: a CRI variable replaces the image's of the
// same name in place; new ones are appended in order; the last of duplicate
// CRI keys wins.
func MergeEnv(image []string, cri []KeyValue) []string {
	out := make([]string, 0, len(image)+len(cri))
	index := map[string]int{}
	set := func(key, entry string) {
		if i, ok := index[key]; ok {
			out[i] = entry
			return
		}
		index[key] = len(out)
		out = append(out, entry)
	}
	for _, e := range image {
		key, _, _ := strings.Cut(e, "=")
		set(key, e)
	}
	for _, kv := range cri {
		set(kv.Key, kv.Key+"="+kv.Value)
	}
	return out
}
