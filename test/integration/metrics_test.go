package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// Berth's own metrics endpoint counts calls, pulls, pods and containers.
func TestMetricsEndpoint(t *testing.T) {
	bin := util.RequireIntegration(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := util.NewBerthd(t, "[metrics]\naddress = \""+addr+"\"\n\n"+mirrorConfig(testRegistry(t)))
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatal(err)
	}
	podCfg := podConfig("metrics")
	pod := runPod(t, rc, podCfg)
	startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`berth_cri_call_duration_seconds_count{code="OK",method="PullImage"} 1`,
		`berth_cri_call_duration_seconds_count{code="OK",method="RunPodSandbox"} 1`,
		`berth_image_pulls_total{result="ok"} 1`,
		`berth_pods{state="READY"} 1`,
		`berth_containers{state="RUNNING"} 1`,
		`berth_shims 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
