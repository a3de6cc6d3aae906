// Package store keeps Berth's small per-object records (pods, containers) on
// disk: one versioned JSON file per object, written crash-safely.
//
// Layout: <dir>/<id>.json, each {"version": N, "record": {...}}. A write goes
// to <dir>/.<id>.json.tmp-*, is fsynced, renamed over the record, and the dir
// is fsynced: after a crash the record is either the old or the new one, never
// a mix. Remove renames the record to <dir>/.<id>.json.removing-* before
// deleting it, so a crash midway leaves no half record under the real name.
// Load skips (and LoadAll removes) those dot-files: they are unfinished work.
//
// The store holds no lock of its own: the caller owns each record (one mutex
// per pod or container, see STYLE.md #6) and writes it from under that lock.
// Different ids may be written concurrently.
package store
