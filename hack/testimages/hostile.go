package main

import (
	"archive/tar"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// canaryDir is where test/integration/hostile_test.go makes the host files
// that hostile layers point at. The path is fixed because it is baked into
// the layers (their digests must not change between builds); the test makes
// it fresh and removes it, and tests run one at a time.
const canaryDir = "/tmp/berth-canary"

// escape climbs out of any root by "../" before naming a host path.
var escape = strings.Repeat("../", 32)

var (
	hostileTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fifoEntry   = entry{name: "etc/passwd", typ: tar.TypeFifo, mode: 0o644}
	devZero     = entry{name: "etc/group", typ: tar.TypeChar, mode: 0o644, major: 1, minor: 5}
)

// linkToSymlink is a symlink s to a host path and a hard link h to s: an
// applier that sets h's metadata through the link acts on the host file.
func linkToSymlink(hostPath string, h entry) []entry {
	h.name, h.link, h.typ = "h", "s", tar.TypeLink
	return []entry{symlink("s", hostPath), h}
}

// hostileImages are layers and images that try to act on the host: a pull
// must leave the canaries under canaryDir as they were, and CreateContainer
// must refuse user files that are not regular files, promptly.
func (b *builder) hostileImages() error {
	pulls := []struct {
		repo    string
		entries []entry
	}{
		{"hostile-chmod:1", linkToSymlink(canaryDir+"/chmod", entry{mode: 0o4777})},
		{"hostile-chown:1", linkToSymlink(canaryDir+"/chown", entry{mode: 0o600, uid: 1234, gid: 1234, mtime: hostileTime})},
		{"hostile-xattr:1", linkToSymlink(canaryDir+"/xattr", entry{mode: 0o600, xattrs: map[string]string{"user.berth": "x"}})},
		{"hostile-parent:1", []entry{symlink("d", canaryDir+"/dir"), file("d/f", "written through d\n", 0o777),
			symlink("e", escape+strings.TrimPrefix(canaryDir, "/")+"/dir"), file("e/g", "written through e\n", 0o777)}},
	}
	for _, p := range pulls {
		l, err := filesLayer(p.entries...)
		if err != nil {
			return err
		}
		m, err := marker(p.repo)
		if err != nil {
			return err
		}
		img, err := image(false, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, l, m)
		if err != nil {
			return err
		}
		if err := b.push(img, berthT+p.repo); err != nil {
			return err
		}
	}
	return b.hostileUserImages()
}

// hostileUserImages are busybox with a hostile /etc/passwd or /etc/group and
// the image user "hostile", so that CreateContainer must read them. The host
// canaries passwd and group name "hostile" as 4242; symlink-in-passwd's own
// files name it 4343.
func (b *builder) hostileUserImages() error {
	inRoot := "hostile:x:4343:4343::/:/bin/sh\n"
	users := []struct {
		repo    string
		entries []entry
	}{
		{"fifo-passwd:1", []entry{fifoEntry}},
		{"devzero-passwd:1", []entry{symlink("etc/passwd", "/dev/zero"), devZero}},
		{"symlink-passwd:1", []entry{symlink("etc/passwd", canaryDir+"/passwd"),
			symlink("etc/group", escape+strings.TrimPrefix(canaryDir, "/")+"/group")}},
		{"symlink-in-passwd:1", []entry{dir("tmp/"), dir("tmp/berth-canary/"),
			file("tmp/berth-canary/passwd", basePasswd+inRoot, 0o644), symlink("etc/passwd", canaryDir+"/passwd"),
			dir("usr/"), dir("usr/lib/"), file("usr/lib/group", baseGroup+"hostile:x:4343:\nextra:x:5555:hostile\n", 0o644),
			symlink("etc/group", "../usr/lib/group")}},
	}
	for _, u := range users {
		l, err := filesLayer(u.entries...)
		if err != nil {
			return err
		}
		img, err := b.busyboxImage(u.repo, v1.Config{User: "hostile"}, l)
		if err != nil {
			return err
		}
		if err := b.push(img, berthT+u.repo); err != nil {
			return err
		}
	}
	return nil
}
