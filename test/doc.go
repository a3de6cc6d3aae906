// Package test holds Berth's tests that look at the whole repository or drive a
// real berthd: the dependency rules of ../shared/DESIGN.md (depcheck_test.go),
// integration tests (integration/) and their helpers (util/).
//
// Integration tests need root and a built berthd: they run when BERTHD names the
// binary (make test sets it) and skip otherwise.
package test
