package main

import (
	"fmt"
	"math/rand/v2"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

const (
	k8s    = "e2e-test-images/"       // registry.k8s.io/e2e-test-images/...
	cri    = "k8s-staging-cri-tools/" // gcr.io/k8s-staging-cri-tools/...
	ecr    = "docker/library/"        // public.ecr.aws/docker/library/...
	berthT = "berth-test/"
	path   = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// marker is a one-file layer that makes an image distinct.
func marker(name string) (v1.Layer, error) {
	data, err := tarOfEntries(file("etc/berth-test-image", name+"\n", 0o644))
	if err != nil {
		return nil, err
	}
	return compressedLayer(data, "gzip", false)
}

func filesLayer(entries ...entry) (v1.Layer, error) {
	data, err := tarOfEntries(entries...)
	if err != nil {
		return nil, err
	}
	return compressedLayer(data, "gzip", false)
}

// busyboxImage is the busybox base plus extra layers and a marker.
func (b *builder) busyboxImage(id string, cfg v1.Config, extra ...v1.Layer) (v1.Image, error) {
	m, err := marker(id)
	if err != nil {
		return nil, err
	}
	if cfg.Env == nil {
		cfg.Env = []string{path}
	}
	if cfg.Cmd == nil && cfg.Entrypoint == nil {
		cfg.Cmd = []string{"sh"}
	}
	layers := append([]v1.Layer{b.busybox}, extra...)
	return image(false, cfg, append(layers, m)...)
}

func (b *builder) buildAll() error {
	for _, step := range []func() error{b.critestImages, b.userImages, b.serverImages, b.berthImages, b.hostileImages} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) critestImages() error {
	plain := []struct {
		id   string
		refs []string
	}{
		{"busybox", []string{k8s + "busybox:1.29-2"}},
		{"test-image-latest", []string{cri + "test-image-latest:latest"}},
		{"test-image-tag-test", []string{cri + "test-image-tag:test"}},
		{"test-image-tag-all", []string{cri + "test-image-tag:all"}},
		{"test-image-1", []string{cri + "test-image-1:latest"}},
		{"test-image-2", []string{cri + "test-image-2:latest"}},
		{"test-image-3", []string{cri + "test-image-3:latest"}},
		{"test-image-tags", []string{cri + "test-image-tags:1", cri + "test-image-tags:2", cri + "test-image-tags:3"}},
		{"ecr-1.35.0-glibc", []string{ecr + "busybox:1.35.0-glibc"}},
		{"ecr-1-uclibc", []string{ecr + "busybox:1-uclibc"}},
		{"ecr-1", []string{ecr + "busybox:1"}},
		{"ecr-1-glibc", []string{ecr + "busybox:1-glibc"}},
		{"ecr-1-musl", []string{ecr + "busybox:1-musl"}},
	}
	for _, p := range plain {
		img, err := b.busyboxImage(p.id, v1.Config{})
		if err != nil {
			return err
		}
		if err := b.push(img, p.refs...); err != nil {
			return err
		}
	}
	return nil
}

const basePasswd = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
const baseGroup = "root:x:0:\nwww-data:x:33:\nusers:x:100:\nnogroup:x:65534:\n"

func (b *builder) userImages() error {
	users := []struct {
		repo, user string
		extra      []entry
	}{
		{"test-image-user-uid", "1002", nil},
		{"test-image-user-username", "www-data", nil},
		{"test-image-user-uid-group", "1003:users", nil},
		{"test-image-user-username-group", "www-data:users", nil},
		{"test-image-predefined-group", "1000", []entry{
			file("etc/passwd", basePasswd+"default-user:x:1000:1000:default user:/home/default-user:/bin/sh\n", 0o644),
			file("etc/group", baseGroup+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n", 0o644),
		}},
	}
	for _, u := range users {
		var extra []v1.Layer
		if u.extra != nil {
			l, err := filesLayer(u.extra...)
			if err != nil {
				return err
			}
			extra = append(extra, l)
		}
		img, err := b.busyboxImage(u.repo, v1.Config{User: u.user}, extra...)
		if err != nil {
			return err
		}
		if err := b.push(img, cri+u.repo+":latest"); err != nil {
			return err
		}
	}
	return nil
}

const nginxConf = `user root;
worker_processes 1;
daemon off;
pid /var/run/nginx.pid;
error_log /dev/stderr;
events { worker_connections 64; }
http {
	include /etc/nginx/mime.types;
	access_log /dev/stdout;
	server {
		listen %d;
		root /usr/share/nginx/html;
		index index.html;
	}
}
`

func (b *builder) serverImages() error {
	for _, n := range []struct {
		ref  string
		port int
	}{{k8s + "nginx:1.14-2", 80}, {cri + "hostnet-nginx-amd64:latest", 12003}} {
		conf, err := filesLayer(file("etc/nginx/nginx.conf", fmt.Sprintf(nginxConf, n.port), 0o644))
		if err != nil {
			return err
		}
		m, err := marker(n.ref)
		if err != nil {
			return err
		}
		cfg := v1.Config{Env: []string{path}, Cmd: []string{"nginx"}, StopSignal: "SIGQUIT",
			ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", n.port): {}}}
		img, err := image(false, cfg, b.busybox, b.nginx, conf, m)
		if err != nil {
			return err
		}
		if err := b.push(img, n.ref); err != nil {
			return err
		}
	}
	httpd, err := filesLayer(dir("htdocs/"), file("htdocs/index.html", "It works!\n", 0o644),
		file("usr/local/bin/httpd-foreground", "#!/bin/sh\necho \"httpd started: busybox httpd on :80\"\nexec httpd -f -p 80 -h /htdocs\n", 0o755))
	if err != nil {
		return err
	}
	img, err := b.busyboxImage("httpd", v1.Config{Cmd: []string{"httpd-foreground"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}}, httpd)
	if err != nil {
		return err
	}
	if err := b.push(img, k8s+"httpd:2.4.39-4"); err != nil {
		return err
	}
	img, err = b.busyboxImage("nonewprivs", v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}}, b.nnp)
	if err != nil {
		return err
	}
	return b.push(img, k8s+"nonewprivs:1.3")
}

func (b *builder) berthImages() error {
	if err := b.layersImage(); err != nil {
		return err
	}
	if err := b.deepImage(); err != nil {
		return err
	}
	for _, c := range []struct{ how, ref string }{{"zstd", "zstd:1"}, {"none", "uncompressed:1"}} {
		data, err := tarOfEntries(dir("data/"), file("data/compression", c.how+"\n", 0o644))
		if err != nil {
			return err
		}
		l, err := compressedLayer(data, c.how, true)
		if err != nil {
			return err
		}
		img, err := image(true, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, b.busybox, l)
		if err != nil {
			return err
		}
		if err := b.push(img, berthT+c.ref); err != nil {
			return err
		}
	}
	// A sandbox image for the peer in side-by-side pod benchmarks (Berth needs
	// none), also served as pause:3.9: critest pulls that tag through two
	// registry names (registry.k8s.io and k8s.gcr.io) as one image.
	pause, err := b.busyboxImage("pause", v1.Config{Entrypoint: []string{"/bin/sleep", "2147483647"}})
	if err != nil {
		return err
	}
	if err := b.push(pause, berthT+"pause:1", "pause:3.9"); err != nil {
		return err
	}
	docker, err := b.busyboxImage("docker-schema2", v1.Config{})
	if err != nil {
		return err
	}
	if err := b.push(docker, berthT+"docker:1"); err != nil {
		return err
	}
	volume, err := b.busyboxImage("volume", v1.Config{Cmd: []string{"sh"}, Volumes: map[string]struct{}{"/data": {}}})
	if err != nil {
		return err
	}
	if err := b.push(volume, berthT+"volume:1"); err != nil {
		return err
	}
	if err := b.imageMountImage(); err != nil {
		return err
	}
	if err := b.multiarch(); err != nil {
		return err
	}
	return b.big()
}

// imageMountImage is a one-layer image of files for image mounts (one layer:
// the overlay of a single layer without an upper dir needs a second lower),
// with symlinks inside it and one that climbs out.
func (b *builder) imageMountImage() error {
	l, err := filesLayer(dir("data/"), file("data/hello", "hello from an image\n", 0o644),
		symlink("data/self", "../data"), symlink("abs", "/data"), symlink("data/out", "../../.."))
	if err != nil {
		return err
	}
	img, err := image(false, v1.Config{}, l)
	if err != nil {
		return err
	}
	return b.push(img, berthT+"imagemount:1")
}

// layersImage exercises whiteouts, opaque dirs, symlinks and hard links.
func (b *builder) layersImage() error {
	l1, err := filesLayer(dir("a/"), file("a/keep", "keep\n", 0o644), file("a/gone", "gone\n", 0o644),
		dir("opq/"), file("opq/lower", "lower\n", 0o644), file("orig", "original\n", 0o644),
		hardlink("orig-link", "orig"), symlink("abs-link", "/orig"), symlink("rel-link", "orig"))
	if err != nil {
		return err
	}
	l2, err := filesLayer(file("a/.wh.gone", "", 0o644), dir("opq/"), file("opq/.wh..wh..opq", "", 0o644),
		file("opq/upper", "upper\n", 0o644))
	if err != nil {
		return err
	}
	l3, err := filesLayer(dir("b/"), file("b/new", "new\n", 0o644), symlink("b/up", "../a"), file(".wh.rel-link", "", 0o644))
	if err != nil {
		return err
	}
	img, err := image(true, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, b.busybox, l1, l2, l3)
	if err != nil {
		return err
	}
	return b.push(img, berthT+"layers:1")
}

// deepImage has 100 layers: too many for their paths to fit in one page of
// overlay mount options.
func (b *builder) deepImage() error {
	layers := []v1.Layer{b.busybox}
	for i := range 99 {
		l, err := filesLayer(dir("deep/"), file(fmt.Sprintf("deep/%02d", i), "", 0o644))
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	img, err := image(true, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, layers...)
	if err != nil {
		return err
	}
	return b.push(img, berthT+"deep:1")
}

func (b *builder) multiarch() error {
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range []string{"amd64", "arm64"} {
		l, err := filesLayer(file("platform", "linux/"+arch+"\n", 0o644))
		if err != nil {
			return err
		}
		img, err := image(true, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, b.busybox, l)
		if err != nil {
			return err
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Architecture = arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return b.push(idx, berthT+"multiarch:1")
}

// big is a 120 MiB image of deterministic noise (incompressible, like real
// binaries and media), for pull benchmarks.
func (b *builder) big() error {
	var layers []v1.Layer
	rng := rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	for i := 0; i < 5; i++ {
		noise := make([]byte, 24<<20)
		rng.Read(noise)
		data, err := tarOfEntries(dir(fmt.Sprintf("big%d/", i)), file(fmt.Sprintf("big%d/noise", i), string(noise), 0o644))
		if err != nil {
			return err
		}
		l, err := compressedLayer(data, "gzip", true)
		if err != nil {
			return err
		}
		layers = append(layers, l)
	}
	img, err := image(true, v1.Config{Env: []string{path}, Cmd: []string{"sh"}}, append([]v1.Layer{b.busybox}, layers...)...)
	if err != nil {
		return err
	}
	return b.push(img, berthT+"big:1")
}
