// Package config owns berth.toml: its schema, its defaults, loading the main file
// and its drop-ins, and validation.
//
// Loading order: Default(), then the main file (default /etc/berth/berth.toml; a
// missing default file means defaults), then every berth.d/*.toml beside it in
// name order. A later file overrides the keys it sets and leaves the others alone;
// arrays are replaced, not appended. The caller applies command-line flags last.
//
// Validation has no side effects: it never creates, opens or probes anything on
// the host. Every error names the file (or flag) that set the key, the key, the
// value and what is wrong with it, so that a user can fix berth.toml without
// reading Berth's source. Unknown keys are errors: a typo must not silently fall
// back to a default.
package config
