// Package remote talks the registry protocol, on go-containerregistry: it
// resolves a reference to one platform's manifest, config and layer list
// through the host's mirrors, and streams layer blobs. It stores nothing: the
// caller (the image service) writes blobs into its own store.
//
// Endpoints: a host's mirrors are tried in order, then the host itself unless
// MirrorsOnly; the repository path is the same on every endpoint. A mirror that
// answers "not found" or cannot be reached passes the turn to the next one.
// Plain HTTP is used for loopback registries (as Docker does), for mirrors
// written as http:// URLs, and for hosts marked Insecure; any other plain-HTTP
// request is refused.
//
// Example:
//
//	c := remote.NewClient(hosts)
//	r, err := c.Resolve(ctx, "registry.k8s.io/pause:3.10", platform, remote.Auth{})
//	for i := range r.Layers {
//		rc, err := r.Fetch(ctx, i) // compressed bytes, digest and size verified at EOF
//		...
//	}
//
// FetchRange asks for part of a layer blob (HTTP Range) from the same
// endpoint with the same credentials, checking only the framing (status,
// Content-Range, Content-Length): the image service assembles ranges and
// verifies the whole blob's digest and size itself. A registry that ignores
// the range answers with the whole blob, and says so (BlobPart.Ranged).
//
// A Client is safe for concurrent use; it caches one http.Transport per
// endpoint settings.
package remote
