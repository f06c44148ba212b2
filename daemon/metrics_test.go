package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/daemon"
	"github.com/sandboxd/sandboxd/internal/testenv"
)

// scrape reads /metrics from the socket and returns each sample's value by
// its name and labels as the exposition format writes them.
func (e *env) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.cfg.Socket)
	}}}
	resp, err := hc.Get("http://sandboxd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	out := map[string]float64{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := sample.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v
		}
	}
	return out
}

// TestMetrics scrapes /metrics and finds every metric, with values that
// moved after a create, a reap and an engine event.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *daemon.Config) { c.ReapSchedule = "@every 1h" })
	ctx := context.Background()
	before := e.scrape(t)

	sb := e.create(t, api.CreateRequest{ProjectID: "metrics", TTLSeconds: ptr(int64(1))})
	keep := e.create(t, api.CreateRequest{ProjectID: "metrics"})
	if err := e.docker.ContainerKill(ctx, keep.ContainerID, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "the sandbox expires", func() bool { return time.Now().After(sb.ExpiresAt) })
	res, err := e.c.Reap(ctx, false)
	if err != nil || len(res.Actions) != 1 || !res.Actions[0].Done {
		t.Fatalf("reap: %+v, %v", res, err)
	}
	var after map[string]float64
	testenv.Eventually(t, 5*time.Second, "the die event is counted", func() bool {
		after = e.scrape(t)
		return after[`sandboxd_docker_events_total{action="die"}`] >= 1
	})

	moved := func(name string, by float64) {
		t.Helper()
		if d := after[name] - before[name]; d < by {
			t.Errorf("%s moved by %v, want at least %v", name, d, by)
		}
	}
	moved(`sandboxd_create_duration_seconds_count`, 2)
	moved(`sandboxd_reaped_total{reason="expired"}`, 1)
	moved(`sandboxd_reap_pass_duration_seconds_count`, 1)
	moved(`sandboxd_docker_events_total{action="start"}`, 2)
	moved(`sandboxd_event_lag_seconds_count`, 1)
	moved(`sandboxd_api_requests_total{code="201",route="POST /v1/sandboxes"}`, 2)
	moved(`sandboxd_api_request_duration_seconds_count{route="POST /v1/sandboxes"}`, 2)
	for name, want := range map[string]float64{
		`sandboxd_sandboxes{state="exited"}`:     1,
		`sandboxd_sandboxes{state="running"}`:    0,
		`sandboxd_event_stream_up`:               1,
		`sandboxd_event_stream_reconnects_total`: 0,
		`sandboxd_reap_errors_total`:             0,
	} {
		if got, ok := after[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, prefix := range []string{"sandboxd_build_info{", "go_goroutines", "process_resident_memory_bytes"} {
		found := false
		for name := range after {
			found = found || strings.HasPrefix(name, prefix)
		}
		if !found {
			t.Errorf("no %s metric", prefix)
		}
	}
}

// TestMetricsAddr serves /metrics, and nothing else, on a TCP address.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start(t, func(c *daemon.Config) { c.MetricsAddr = addr })
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "sandboxd_build_info") {
		t.Errorf("GET /metrics over TCP: %d", resp.StatusCode)
	}
	resp, err = http.Get("http://" + addr + "/v1/sandboxes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the API over the metrics address: %d, want 404", resp.StatusCode)
	}
}
