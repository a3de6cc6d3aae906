// Package spec builds the OCI runtime spec of a container from the CRI config,
// the image config and the paths the runtime prepared. It is pure: no I/O, no
// state, no locks; every rule is a table test.
//
// Today it holds the rules that turn the CRI and image configs into a process:
// its arguments (Docker's entrypoint/cmd rules, as the kubelet expects them),
// its environment, and its user and groups resolved through the image's
// /etc/passwd and /etc/group (given as bytes by the caller).
package spec
