package images

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// idHex matches a full image ID without its algorithm; shortIDHex a prefix of
// one, long enough not to be mistaken for a name by accident.
var (
	idHex      = regexp.MustCompile(`^[a-f0-9]{64}$`)
	shortIDHex = regexp.MustCompile(`^[a-f0-9]{6,63}$`)
)

// lookupKind says how a user's image string is looked up.
type lookupKind int

const (
	byID   lookupKind = iota // full config digest
	byName                   // normalised tag or repo digest
)

// lookup is a parsed image string.
type lookup struct {
	kind lookupKind
	key  string // ID "sha256:<hex>" or normalised reference
	// idPrefix is set when the string may also be a short ID: a name lookup
	// that finds nothing then tries it as an unambiguous ID prefix.
	idPrefix string
}

// parseLookup turns any form a CRI client may send (ID, short ID, tag, digest,
// familiar or normalised) into a lookup.
func parseLookup(s string) (lookup, error) {
	if strings.HasPrefix(s, "sha256:") {
		d := digest.Digest(s)
		if err := d.Validate(); err != nil {
			return lookup{}, fmt.Errorf("image ID %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
		return lookup{kind: byID, key: s}, nil
	}
	if idHex.MatchString(s) {
		return lookup{kind: byID, key: "sha256:" + s}, nil
	}
	name, err := NormalizeName(s)
	if err != nil {
		return lookup{}, err
	}
	l := lookup{kind: byName, key: name}
	if shortIDHex.MatchString(s) {
		l.idPrefix = s
	}
	return l, nil
}

// NormalizeName returns the Docker-normalised form of an image name:
// "busybox" → "docker.io/library/busybox:latest"; a digest reference keeps its
// digest ("name@sha256:…"); "name:tag@sha256:…" is reduced to the digest, which
// is what is pulled (as Docker does).
func NormalizeName(s string) (string, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
	}
	if c, ok := named.(reference.Canonical); ok {
		if err := c.Digest().Validate(); err != nil {
			return "", fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
		d, err := reference.WithDigest(reference.TrimNamed(named), c.Digest())
		if err != nil {
			return "", fmt.Errorf("image reference %q: %v: %w", s, err, errdefs.ErrInvalidArgument)
		}
		return d.String(), nil
	}
	return reference.TagNameOnly(named).String(), nil
}

// repoDigest returns "repository@digest" for a normalised name and a manifest digest.
func repoDigest(name string, manifest digest.Digest) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	d, err := reference.WithDigest(reference.TrimNamed(named), manifest)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// isDigestRef reports whether a normalised name is a digest reference.
func isDigestRef(name string) bool {
	return strings.Contains(name, "@")
}
