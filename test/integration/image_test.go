package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// testRegistry returns the local test registry (hack/registry.sh with
// hack/test-images.sh), or skips.
func testRegistry(t *testing.T) string {
	reg := os.Getenv("BERTH_TEST_REGISTRY")
	if reg == "" {
		t.Skip("set BERTH_TEST_REGISTRY to the local test registry (make test does)")
	}
	return reg
}

// mirrorConfig mirrors registry.k8s.io to the test registry, with no fallback.
func mirrorConfig(reg string) string {
	return "[registries.\"registry.k8s.io\"]\nmirrors = [\"http://" + reg + "\"]\nmirrors_only = true\n"
}

func crictlRunner(t *testing.T, b *util.Berthd) func(args ...string) string {
	crictl := os.Getenv("CRICTL")
	if crictl == "" {
		t.Skip("set CRICTL to a crictl binary (make test does)")
	}
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(crictl, append([]string{"--runtime-endpoint", "unix://" + b.Socket, "--image-endpoint", "unix://" + b.Socket, "--timeout", "60s"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("crictl %v: %v\n%s%s\nberthd log:\n%s", args, err, out, stderr.String(), b.Log())
		}
		return string(out)
	}
}

func TestCrictlImageLifecycle(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	b := util.NewBerthd(t, mirrorConfig(reg))
	b.Start(t, bin)
	crictl := crictlRunner(t, b)
	const busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

	crictl("pull", busybox)
	if out := crictl("images"); !strings.Contains(out, "registry.k8s.io/e2e-test-images/busybox") || !strings.Contains(out, "1.29-2") {
		t.Fatalf("crictl images:\n%s", out)
	}
	var inspect struct {
		Status struct {
			ID          string   `json:"id"`
			RepoDigests []string `json:"repoDigests"`
		} `json:"status"`
		Info struct {
			ChainIDs []string `json:"chainIDs"`
		} `json:"info"`
	}
	out := crictl("inspecti", "-o", "json", busybox)
	if err := json.Unmarshal([]byte(out), &inspect); err != nil {
		t.Fatalf("inspecti: %v\n%s", err, out)
	}
	if !strings.HasPrefix(inspect.Status.ID, "sha256:") || len(inspect.Status.RepoDigests) != 1 || len(inspect.Info.ChainIDs) == 0 {
		t.Fatalf("inspecti = %+v\n%s", inspect, out)
	}
	used := imageFsUsed(t, crictl)
	if used == 0 {
		t.Fatal("imagefsinfo reports 0 bytes used after a pull")
	}

	// A restart keeps the image.
	b.Signal(t, syscall.SIGTERM, 20*time.Second)
	b.Start(t, bin)
	if out := crictl("inspecti", inspect.Status.ID); !strings.Contains(out, inspect.Status.ID) {
		t.Fatalf("image lost across restart:\n%s", out)
	}

	crictl("rmi", busybox)
	if out := crictl("images", "-q"); strings.Contains(out, inspect.Status.ID) {
		t.Fatalf("image still listed after rmi:\n%s", out)
	}
	if after := imageFsUsed(t, crictl); after >= used {
		t.Fatalf("imagefsinfo used %d → %d after rmi", used, after)
	}
	layers, _ := os.ReadDir(filepath.Join(b.Root, "images", "layers"))
	if len(layers) != 0 {
		t.Fatalf("%d layer dirs left after rmi", len(layers))
	}
}

func imageFsUsed(t *testing.T, crictl func(args ...string) string) uint64 {
	t.Helper()
	var info struct {
		Status struct {
			ImageFilesystems []struct {
				UsedBytes struct {
					Value string `json:"value"`
				} `json:"usedBytes"`
			} `json:"imageFilesystems"`
		} `json:"status"`
	}
	out := crictl("imagefsinfo", "-o", "json")
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Status.ImageFilesystems) == 0 {
		t.Fatalf("imagefsinfo: %v\n%s", err, out)
	}
	var n uint64
	for _, c := range info.Status.ImageFilesystems[0].UsedBytes.Value {
		n = n*10 + uint64(c-'0')
	}
	return n
}

func TestPullMultiArchAndMissing(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	b := util.NewBerthd(t, mirrorConfig(reg))
	b.Start(t, bin)
	_, ic := b.Clients(t)
	ctx := ctxT(t)

	// Loopback registries need no configuration.
	resp, err := ic.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: reg + "/berth-test/multiarch:1"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ic.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: resp.ImageRef}, Verbose: true})
	if err != nil || st.Image == nil {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	if !strings.Contains(st.Info["info"], `"architecture":"amd64"`) {
		t.Fatalf("multi-arch pull picked the wrong platform: %s", st.Info["info"])
	}
	_, err = ic.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/none:1"}})
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "e2e-test-images/none:1") {
		t.Fatalf("pull of a missing image = %v", err)
	}
	missing, err := ic.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/none:1"}})
	if err != nil || missing.Image != nil {
		t.Fatalf("status of a missing image = %v, %v; want empty", missing, err)
	}
}

// largestFile is the size of the largest file in dir (0 if none).
func largestFile(dir string) int64 {
	var largest int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			largest = max(largest, info.Size())
		}
	}
	return largest
}

// A berthd killed mid-pull leaves no image record, and its next start removes
// the half-downloaded blobs and half-unpacked layers.
func TestKilledMidPullLeavesNothing(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	_, ic := b.Clients(t)
	big := reg + "/berth-test/big:1"
	go ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: big}})

	// Killed while a layer is half written (not a small blob, which may be
	// done by the time the kill lands).
	ingest := filepath.Join(b.Root, "images", "ingest")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if largestFile(ingest) > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pull never started downloading")
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Kill(t)
	leftovers := func() []string {
		var out []string
		for _, dir := range []string{ingest, filepath.Join(b.Root, "images", "layers")} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				out = append(out, filepath.Join(filepath.Base(dir), e.Name()))
			}
		}
		return out
	}
	if len(leftovers()) == 0 {
		t.Fatal("the kill left nothing to clean up: the test proves nothing")
	}

	b.Start(t, bin)
	if left := leftovers(); len(left) != 0 {
		t.Fatalf("after restart: %v", left)
	}
	_, ic = b.Clients(t)
	st, err := ic.ImageStatus(ctxT(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: big}})
	if err != nil || st.Image != nil {
		t.Fatalf("interrupted pull left an image: %v, %v", st, err)
	}
	// And the pull works afterwards.
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: big}}); err != nil {
		t.Fatalf("pull after the crash: %v", err)
	}
}
