package cri

import (
	"context"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
)

// ImageStore is what the image RPCs need of the image service (images.Service).
type ImageStore interface {
	Get(ctx context.Context, ref string) (*images.Image, error)
	List(ctx context.Context) ([]*images.Image, error)
	Remove(ctx context.Context, ref string) error
	Pinned(img *images.Image) bool
	Inspect(img *images.Image) (manifest, config []byte, err error)
	Usage() (bytes, inodes int64, err error)
	SnapshotsUsage() (bytes, inodes int64, err error)
	Root() string
	SnapshotsDir() string
}

// toCRIImage converts an image record for ListImages and ImageStatus.
func (s *Server) toCRIImage(img *images.Image) *runtime.Image {
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &runtime.ImageSpec{Image: img.ID},
		Pinned:      s.images.Pinned(img),
	}
	out.Uid, out.Username = imageUser(img.Config.User)
	return out
}

// imageUser splits an image config's User ("uid", "name", "uid:gid",
// "name:group") into the uid or the user name CRI reports; the group is not
// part of CRI's Image.
func imageUser(user string) (*runtime.Int64Value, string) {
	name, _, _ := strings.Cut(user, ":")
	if name == "" {
		return nil, ""
	}
	if uid, err := strconv.ParseInt(name, 10, 64); err == nil {
		return &runtime.Int64Value{Value: uid}, ""
	}
	return nil, name
}
