package spec

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// envsFromCRI reads the CRI's variables. Since cri-api v0.37 a value is bytes;
// what a process environment cannot carry is refused, not mangled: a NUL
// (execve ends the string there), a key that is empty or holds "=" (the
// entry would split elsewhere), a value that is not UTF-8 (the OCI spec is
// JSON, whose encoder would replace the bytes).
func envsFromCRI(in []*runtime.KeyValue) ([]KeyValue, error) {
	out := make([]KeyValue, 0, len(in))
	for _, kv := range in {
		key, value := kv.GetKey(), kv.GetValue()
		switch {
		case key == "" || strings.ContainsAny(key, "=\x00"):
			return nil, fmt.Errorf("envs: key %q is empty or holds '=' or NUL: %w", key, errdefs.ErrInvalidArgument)
		case bytes.IndexByte(value, 0) >= 0:
			return nil, fmt.Errorf("envs: value of %s holds a NUL byte: %w", key, errdefs.ErrInvalidArgument)
		case !utf8.Valid(value):
			return nil, fmt.Errorf("envs: value of %s is not UTF-8: %w", key, errdefs.ErrInvalidArgument)
		}
		out = append(out, KeyValue{key, string(value)})
	}
	return out, nil
}
