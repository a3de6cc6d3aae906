package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// User is the identity a container process runs as.
type User struct {
	UID, GID       uint32
	Username       string // empty when the uid has no passwd entry
	AdditionalGids []uint32
}

// UserSpec is what asks for an identity: the CRI security context first
// (RunAsUser / RunAsUsername / RunAsGroup), else the image config's User.
type UserSpec struct {
	RunAsUser     *int64
	RunAsUsername string
	RunAsGroup    *int64
	ImageUser     string // "name", "uid", "name:group", "uid:gid"
	// SupplementalGroups come from the pod (fsGroup and the like).
	SupplementalGroups []int64
	// StrictGroups skips the groups the image's /etc/group lists for the user
	// (SupplementalGroupsPolicy Strict); Merge (false) adds them.
	StrictGroups bool
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser resolves spec against the image's /etc/passwd and /etc/group
// (either may be nil: an image without them can still run numeric ids).
func ResolveUser(spec UserSpec, passwd, group []byte) (User, error) {
	if spec.RunAsGroup != nil && spec.RunAsUser == nil && spec.RunAsUsername == "" {
		return User{}, fmt.Errorf("RunAsGroup is set without RunAsUser or RunAsUsername: %w", errdefs.ErrInvalidArgument)
	}
	users, groups := parsePasswd(passwd), parseGroup(group)
	userPart, groupPart := spec.ImageUser, ""
	if spec.RunAsUser == nil && spec.RunAsUsername == "" {
		userPart, groupPart, _ = strings.Cut(spec.ImageUser, ":")
	}
	u, err := resolveUID(spec, userPart, users)
	if err != nil {
		return User{}, err
	}
	switch {
	case spec.RunAsGroup != nil:
		if u.GID, err = checkID(*spec.RunAsGroup, "RunAsGroup"); err != nil {
			return User{}, err
		}
	case groupPart != "":
		if u.GID, err = lookupGroup(groupPart, groups); err != nil {
			return User{}, err
		}
	}
	u.AdditionalGids = additionalGids(u, spec, groups)
	return u, nil
}

func resolveUID(spec UserSpec, userPart string, users []passwdEntry) (User, error) {
	switch {
	case spec.RunAsUser != nil:
		uid, err := checkID(*spec.RunAsUser, "RunAsUser")
		if err != nil {
			return User{}, err
		}
		return byUID(uid, users), nil
	case spec.RunAsUsername != "":
		userPart = spec.RunAsUsername
	}
	if userPart == "" {
		return byUID(0, users), nil
	}
	if uid, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		return byUID(uint32(uid), users), nil
	}
	for _, p := range users {
		if p.name == userPart {
			return User{UID: p.uid, GID: p.gid, Username: p.name}, nil
		}
	}
	return User{}, fmt.Errorf("user %q is not in the image's /etc/passwd: %w", userPart, errdefs.ErrInvalidArgument)
}

// byUID takes the primary group and name from passwd when the uid is there,
// else gid 0 (as runc and the peers do).
func byUID(uid uint32, users []passwdEntry) User {
	for _, p := range users {
		if p.uid == uid {
			return User{UID: uid, GID: p.gid, Username: p.name}
		}
	}
	return User{UID: uid}
}

func lookupGroup(g string, groups []groupEntry) (uint32, error) {
	if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(gid), nil
	}
	for _, e := range groups {
		if e.name == g {
			return e.gid, nil
		}
	}
	return 0, fmt.Errorf("group %q is not in the image's /etc/group: %w", g, errdefs.ErrInvalidArgument)
}

// additionalGids: the primary gid, the image's groups listing the user (unless
// strict), then the pod's supplemental groups; no duplicates, in that order.
func additionalGids(u User, spec UserSpec, groups []groupEntry) []uint32 {
	out := []uint32{u.GID}
	add := func(g uint32) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	if !spec.StrictGroups && u.Username != "" {
		for _, g := range groups {
			if slices.Contains(g.members, u.Username) {
				add(g.gid)
			}
		}
	}
	for _, g := range spec.SupplementalGroups {
		if g >= 0 && g <= math.MaxUint32 {
			add(uint32(g))
		}
	}
	return out
}

func checkID(v int64, field string) (uint32, error) {
	if v < 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("%s %d is out of range: %w", field, v, errdefs.ErrInvalidArgument)
	}
	return uint32(v), nil
}

// parsePasswd reads name:password:uid:gid:... lines, skipping malformed ones.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	forEachLine(data, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)})
		}
	})
	return out
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	forEachLine(data, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		e := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out
}

func forEachLine(data []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}
