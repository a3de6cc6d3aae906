package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the disk use of the image store (blobs and unpacked
// layers, from recorded sizes) and of the containers' writable layers.
func (s *Server) ImageFsInfo(ctx context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	now := time.Now().UnixNano()
	bytes, inodes, err := s.images.Usage()
	if err != nil {
		return nil, err
	}
	cBytes, cInodes, err := s.images.SnapshotsUsage()
	if err != nil {
		return nil, err
	}
	return &runtime.ImageFsInfoResponse{
		ImageFilesystems:     []*runtime.FilesystemUsage{fsUsage(now, s.images.Root(), bytes, inodes)},
		ContainerFilesystems: []*runtime.FilesystemUsage{fsUsage(now, s.images.SnapshotsDir(), cBytes, cInodes)},
	}, nil
}

func fsUsage(now int64, mountpoint string, bytes, inodes int64) *runtime.FilesystemUsage {
	return &runtime.FilesystemUsage{
		Timestamp:  now,
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: mountpoint},
		UsedBytes:  &runtime.UInt64Value{Value: uint64(bytes)},
		InodesUsed: &runtime.UInt64Value{Value: uint64(inodes)},
	}
}
