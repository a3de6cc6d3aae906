// Package util holds helpers for Berth's integration tests: starting a real
// berthd on a temp root, state dir and socket, and talking CRI to it.
package util
