// Command testimages builds Berth's test images, without a Docker engine, from
// root filesystems that hack/test-images.sh stages out of Debian binaries, and
// pushes them to the local test registry. Builds are reproducible (sorted
// entries, fixed times), so digests only change when the inputs do.
//
// The images, by repository (paths mirror the upstream hosts: berthd maps
// registry.k8s.io, k8s.gcr.io, gcr.io and public.ecr.aws to the local registry):
//
//	e2e-test-images/busybox:1.29-2    critest's default image: Debian's dynamic busybox with
//	                                  hard-linked applets and glibc, pgrep and ipcs, users root,
//	                                  www-data (33), nobody (65534), group users (100); Cmd sh
//	e2e-test-images/nginx:1.14-2      nginx as PID 1 on :80, pid file /var/run/nginx.pid
//	k8s-staging-cri-tools/hostnet-nginx-amd64  the same nginx on :12003 (host network specs)
//	e2e-test-images/httpd:2.4.39-4    prints "httpd started", then busybox httpd on :80
//	e2e-test-images/nonewprivs:1.3    a setuid-root program printing "Effective uid: N"
//	k8s-staging-cri-tools/test-image-* image-manager specs: distinct images, one with three tags,
//	                                  and config users 1002, www-data, 1003:users, www-data:users,
//	                                  1000 with group-defined-in-image (50000)
//	docker/library/busybox:<5 tags>   critest's image benchmarks (distinct images)
//	berth-test/layers:1               whiteouts, an opaque dir, symlinks, hard links over 3 layers
//	berth-test/zstd:1, uncompressed:1 zstd and uncompressed layers (OCI)
//	berth-test/docker:1               Docker schema 2 manifest and media types
//	berth-test/volume:1               busybox with an image VOLUME, /data
//	berth-test/imagemount:1           one layer of files for image mounts: /data/hello, symlinks in and one climbing out
//	berth-test/multiarch:1            index of linux/amd64 and linux/arm64 (file /platform differs)
//	berth-test/big:1                  5 layers of 24 MiB of deterministic noise, for pull benchmarks
//	berth-test/pause:1, pause:3.9     busybox sleeping forever: the peer's sandbox image in benchmarks;
//	                                  critest pulls pause:3.9 as registry.k8s.io/ and k8s.gcr.io/pause:3.9
//	berth-test/hostile-{chmod,chown,xattr,parent}:1  layers that try to act on host canaries under
//	                                  /tmp/berth-canary (hard links to symlinks, symlinked parents)
//	berth-test/{fifo,devzero,symlink,symlink-in}-passwd:1  busybox, user "hostile", with a FIFO,
//	                                  a device, a symlink out or a symlink inside as /etc/passwd or group
//
// Every image carries a marker layer naming it, so no two share an image ID.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	registry := flag.String("registry", "127.0.0.1:5000", "registry host:port to push to")
	stage := flag.String("stage", "", "dir with the staged root filesystems (busybox, nginx, nonewprivs)")
	list := flag.String("list", "", "write the pushed references and digests to this file")
	flag.Parse()
	if err := run(*registry, *stage, *list); err != nil {
		fmt.Fprintln(os.Stderr, "testimages:", err)
		os.Exit(1)
	}
}

func run(registry, stage, list string) error {
	b := &builder{registry: registry, stage: stage}
	if err := b.loadBases(); err != nil {
		return err
	}
	if err := b.buildAll(); err != nil {
		return err
	}
	if list != "" {
		return os.WriteFile(list, []byte(strings.Join(b.pushed, "\n")+"\n"), 0o644)
	}
	return nil
}

type builder struct {
	registry, stage string
	busybox, nginx  v1.Layer // base layers from the staged roots
	nnp             v1.Layer
	pushed          []string
}

func (b *builder) loadBases() error {
	for _, base := range []struct {
		dir string
		out *v1.Layer
	}{{"busybox", &b.busybox}, {"nginx", &b.nginx}, {"nonewprivs", &b.nnp}} {
		data, err := tarOfDir(filepath.Join(b.stage, base.dir))
		if err != nil {
			return err
		}
		if *base.out, err = compressedLayer(data, "gzip", false); err != nil {
			return err
		}
	}
	return nil
}

// image assembles layers and a config into a Docker schema 2 (or OCI) image.
func image(oci bool, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	base := empty.Image
	if oci {
		base = mutate.MediaType(mutate.ConfigMediaType(base, types.OCIConfigJSON), types.OCIManifestSchema1)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Config = "amd64", "linux", cfg
	return mutate.ConfigFile(img, cf)
}

// digestible is an image or an index.
type digestible interface {
	remote.Taggable
	Digest() (v1.Hash, error)
}

// push writes img (an image or an index) under every ref (relative to the
// registry), unless the registry already has that digest there.
func (b *builder) push(img digestible, refs ...string) error {
	want, err := img.Digest()
	if err != nil {
		return err
	}
	for _, r := range refs {
		ref, err := name.ParseReference(b.registry+"/"+r, name.Insecure)
		if err != nil {
			return err
		}
		if desc, err := remote.Head(ref); err != nil || desc.Digest != want {
			if err := remote.Push(ref, img); err != nil {
				return fmt.Errorf("push %s: %w", r, err)
			}
		}
		b.pushed = append(b.pushed, r+" "+want.String())
	}
	return nil
}
