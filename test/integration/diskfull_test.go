package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// The filesystem under berthd's root is diskSize; a ballast file of the
// test's leaves diskFree of it free: busybox (about 3 MiB of blob and
// 7 MiB unpacked) fits, berth-test/big:1 (5 layers of 24 MiB of noise, so
// 120 MiB of blobs and 120 MiB unpacked) fits only once the ballast is
// removed.
const (
	diskSize = 384 << 20
	diskFree = 48 << 20
)

// A filesystem of the test's own: tmpfs, and ext4 on a loop device (what
// nodes have: a journal, delayed allocation, blocks freed at commit).
var smallDisks = []struct {
	name  string
	mount func(t *testing.T, dir string)
}{
	{"tmpfs", mountTmpfs},
	{"ext4", mountExt4},
}

// A pull that fills the disk fails with ResourceExhausted naming the image
// and the full disk, and leaves the store whole: no download, no half
// layer, a record for every layer dir and a dir for every record, no image,
// usage that is what is on disk. berthd serves on; once there is room the
// same pull succeeds, and a restart finds nothing to recover.
func TestPullOnFullDisk(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	for _, disk := range smallDisks {
		t.Run(disk.name, func(t *testing.T) {
			metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			b := util.NewBerthd(t, "[metrics]\naddress = \""+metrics+"\"\n\n"+mirrorConfig(reg))
			if err := os.MkdirAll(b.Root, 0o711); err != nil {
				t.Fatal(err)
			}
			disk.mount(t, b.Root)
			ballast := fillDisk(t, b.Root)
			pullOnFullDisk(t, b, bin, reg, metrics, func() {
				if err := os.Remove(ballast); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// pullOnFullDisk is TestPullOnFullDisk on one filesystem; makeRoom frees
// room on it.
func pullOnFullDisk(t *testing.T, b *util.Berthd, bin, reg, metrics string, makeRoom func()) {
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	images := filepath.Join(b.Root, "images")
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatalf("busybox does not fit %d MiB: %v", diskFree>>20, err)
	}

	big := reg + "/berth-test/big:1"
	_, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: big}})
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted ||
		!strings.Contains(st.Message(), "berth-test/big:1") || !strings.Contains(st.Message(), "disk full") ||
		!strings.Contains(st.Message(), images) {
		t.Fatalf("pull of an image bigger than the disk = %v, want ResourceExhausted naming the image, the full disk and %s", err, images)
	}
	t.Logf("the full disk's error: %v", err)
	checkStoreWhole(t, b, big)
	if n := scrape(t, metrics)[`berth_image_pulls_total{result="disk_full"}`]; n != 1 {
		t.Errorf("berth_image_pulls_total{result=\"disk_full\"} = %v, want 1", n)
	}
	if _, err := rc.Version(ctxT(t), &runtime.VersionRequest{}); err != nil {
		t.Fatalf("Version after the full disk: %v", err)
	}
	list, err := ic.ListImages(ctxT(t), &runtime.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || !slices.Contains(list.Images[0].RepoTags, busyboxImage) {
		t.Fatalf("ListImages after the full disk = %v, %v; want busybox alone", list, err)
	}

	// Room made: the same pull succeeds.
	makeRoom()
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: big}}); err != nil {
		t.Fatalf("pull with room again: %v", err)
	}
	st, err := ic.ImageStatus(ctxT(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: big}})
	if err != nil || st.Image == nil {
		t.Fatalf("ImageStatus after the pull = %v, %v", st, err)
	}
	before := storeListing(t, images)
	checkUsage(t, b)

	// A restart finds nothing to recover: no line of recovery work in its
	// log, and the store as it was.
	logged := len(b.Log())
	b.Signal(t, syscall.SIGTERM, 20*time.Second)
	b.Start(t, bin)
	restartLog := b.Log()[logged:]
	for _, work := range []string{"removing unfinished download", "removing unowned", "dropping its record", "image lost"} {
		if strings.Contains(restartLog, work) {
			t.Errorf("the restart had recovery work (%q):\n%s", work, restartLog)
		}
	}
	if after := storeListing(t, images); !slices.Equal(before, after) {
		t.Errorf("the restart changed the store:\nbefore %v\nafter  %v", before, after)
	}
	_, ic = b.Clients(t)
	list, err = ic.ListImages(ctxT(t), &runtime.ListImagesRequest{})
	if err != nil || len(list.Images) != 2 {
		t.Fatalf("ListImages after the restart = %v, %v; want busybox and big", list, err)
	}
}

// mountTmpfs mounts a tmpfs of diskSize at dir, unmounted when the test
// ends, whatever its result (after berthd is stopped: cleanups run last
// in, first out).
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0711", diskSize)); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v", dir, err)
	}
	t.Cleanup(func() { unmount(t, dir) })
}

// mountExt4 mounts an ext4 of diskSize (no blocks kept for root, which
// berthd is) made on a sparse file of the test's, through a loop device
// that goes with the unmount.
func mountExt4(t *testing.T, dir string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, diskSize); err != nil {
		t.Fatal(err)
	}
	runTool(t, "mkfs.ext4", "-q", "-F", "-m", "0", img)
	runTool(t, "mount", "-o", "loop", img, dir)
	t.Cleanup(func() { unmount(t, dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
}

// fillDisk allocates a ballast file in dir (beside berthd's dirs) that
// leaves diskFree free, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free < 2*diskFree {
		t.Fatalf("%s has %d bytes free", dir, free)
	}
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, free-diskFree); err != nil {
		t.Fatalf("allocate the ballast: %v", err)
	}
	return path
}

// unmount unmounts what a test mounted at dir (lazily if it is still busy).
func unmount(t *testing.T, dir string) {
	if err := unix.Unmount(dir, 0); err != nil {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// checkStoreWhole checks what a failed pull of image left: no download in
// ingest/, no tmp layer dir, a record for every layer dir and a dir for
// every layer record, no image record naming image, and ImageFsInfo's
// usage what is on disk.
func checkStoreWhole(t *testing.T, b *util.Berthd, image string) {
	t.Helper()
	images := filepath.Join(b.Root, "images")
	if ingest := dirNames(t, filepath.Join(images, "ingest")); len(ingest) != 0 {
		t.Errorf("ingest/ after the failed pull: %v", ingest)
	}
	layerDirs := dirNames(t, filepath.Join(images, "layers"))
	for _, d := range layerDirs {
		if strings.HasPrefix(d, "tmp-") {
			t.Errorf("layer dir %s left after the failed pull", d)
		}
	}
	layers, imgs := readRecords(t, images)
	var recorded []string
	for _, l := range layers {
		recorded = append(recorded, strings.Replace(l, ":", "-", 1))
	}
	slices.Sort(recorded)
	t.Logf("layer dirs after the failed pull: %v", layerDirs)
	if !slices.Equal(layerDirs, recorded) {
		t.Errorf("layer dirs %v, layer records %v", layerDirs, recorded)
	}
	for id, tags := range imgs {
		if slices.Contains(tags, image) {
			t.Errorf("image record %s for the failed pull of %s", id, image)
		}
	}
	checkUsage(t, b)
}

// checkUsage compares ImageFsInfo's used bytes with a walk of the store:
// the committed blobs' sizes and the layers' regular file content, each
// file once (busybox's applets are hard links).
func checkUsage(t *testing.T, b *util.Berthd) {
	t.Helper()
	images := filepath.Join(b.Root, "images")
	var onDisk int64
	seen := map[uint64]bool{}
	for _, dir := range []string{"blobs", "layers"} {
		err := filepath.WalkDir(filepath.Join(images, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if ino := fi.Sys().(*syscall.Stat_t).Ino; !seen[ino] {
				seen[ino] = true
				onDisk += fi.Size()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	_, ic := b.Clients(t)
	info, err := ic.ImageFsInfo(ctxT(t), &runtime.ImageFsInfoRequest{})
	if err != nil || len(info.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo = %v, %v", info, err)
	}
	if used := info.ImageFilesystems[0].UsedBytes.GetValue(); used != uint64(onDisk) {
		t.Errorf("ImageFsInfo says %d bytes used, the store holds %d", used, onDisk)
	}
}

// readRecords reads the layer records (chain IDs) and image records (ID →
// repo tags) from a copy of the image index (berthd holds the index's
// lock; it is idle, so the copy is consistent).
func readRecords(t *testing.T, images string) (layers []string, imgs map[string][]string) {
	t.Helper()
	src, err := os.Open(filepath.Join(images, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	copyPath := filepath.Join(t.TempDir(), "meta.db")
	dst, err := os.Create(copyPath)
	if err == nil {
		_, err = io.Copy(dst, src)
		dst.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(copyPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	imgs = map[string][]string{}
	err = db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket([]byte("layers")).ForEach(func(k, _ []byte) error {
			layers = append(layers, string(k))
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("images")).ForEach(func(k, v []byte) error {
			if !strings.HasPrefix(string(k), "sha256:") { // the schema version
				return nil
			}
			var img struct {
				RepoTags []string `json:"repo_tags"`
			}
			if err := json.Unmarshal(v, &img); err != nil {
				return err
			}
			imgs[string(k)] = img.RepoTags
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return layers, imgs
}

// storeListing is every path under the images root but the index, sorted,
// with each file's size.
func storeListing(t *testing.T, images string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(images, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(images, p)
		if rel == "meta.db" || rel == "." {
			return nil
		}
		entry := rel
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			entry += " " + strconv.FormatInt(fi.Size(), 10)
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
