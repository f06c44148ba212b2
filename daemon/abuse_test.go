package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/testenv"
)

// raw sends a request as bytes, so tests can send what no client would.
func (e *env) raw(t *testing.T, method, path string, body []byte) (int, api.ErrorBody) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.cfg.Socket)
	}}}
	req, err := http.NewRequest(method, "http://sandboxd"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var er api.ErrorResponse
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &er); err != nil {
			t.Fatalf("%s %s: error body is not the error object: %q", method, path, b)
		}
	}
	return resp.StatusCode, er.Error
}

// TestAbusiveRequests sends requests that must all be refused with a clear
// error, and checks that none of them left a row or a container behind.
func TestAbusiveRequests(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	img := testenv.Image
	create := func(extra string) []byte {
		return []byte(fmt.Sprintf(`{"project_id":"abuse","image":%q%s}`, img, extra))
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   []byte
		status int
		code   string
		says   string
	}{
		{"privileged", "POST", "/v1/sandboxes", create(`,"privileged":true`), 400, api.CodeInvalidArgument, "privileged: unknown field"},
		{"binds", "POST", "/v1/sandboxes", create(`,"binds":["/:/host"]`), 400, api.CodeInvalidArgument, "binds: unknown field"},
		{"network_mode", "POST", "/v1/sandboxes", create(`,"network_mode":"host"`), 400, api.CodeInvalidArgument, "network_mode: unknown field"},
		{"cap_add in limits", "POST", "/v1/sandboxes", create(`,"limits":{"cap_add":["SYS_ADMIN"]}`), 400, api.CodeInvalidArgument, "cap_add"},
		{"image outside allowlist", "POST", "/v1/sandboxes", []byte(`{"project_id":"abuse","image":"busybox:latest"}`), 400, api.CodeInvalidArgument, `image: "busybox:latest" is not allowed`},
		{"image allowed but absent", "POST", "/v1/sandboxes", []byte(`{"project_id":"abuse","image":"sandboxd-test/absent:latest"}`), 400, api.CodeInvalidArgument, "never pulls"},
		{"no image", "POST", "/v1/sandboxes", []byte(`{"project_id":"abuse"}`), 400, api.CodeInvalidArgument, "image: is required"},
		{"pids zero", "POST", "/v1/sandboxes", create(`,"limits":{"pids":0}`), 400, api.CodeInvalidArgument, "limits.pids: must be between 1 and 1024, got 0"},
		{"pids negative", "POST", "/v1/sandboxes", create(`,"limits":{"pids":-5}`), 400, api.CodeInvalidArgument, "limits.pids: must be between 1 and 1024, got -5"},
		{"memory 1 TiB", "POST", "/v1/sandboxes", create(`,"limits":{"memory_bytes":1099511627776}`), 400, api.CodeInvalidArgument, "limits.memory_bytes: must be between 6291456 and 4294967296"},
		{"cpus 64", "POST", "/v1/sandboxes", create(`,"limits":{"nano_cpus":64000000000}`), 400, api.CodeInvalidArgument, "limits.nano_cpus"},
		{"ttl ten years", "POST", "/v1/sandboxes", create(`,"ttl_seconds":315360000`), 400, api.CodeInvalidArgument, "ttl_seconds: must be between 1 and 86400"},
		{"ttl zero", "POST", "/v1/sandboxes", create(`,"ttl_seconds":0`), 400, api.CodeInvalidArgument, "ttl_seconds"},
		{"ttl as string", "POST", "/v1/sandboxes", create(`,"ttl_seconds":"600"`), 400, api.CodeInvalidArgument, "ttl_seconds: must be an integer"},
		{"idle timeout negative", "POST", "/v1/sandboxes", create(`,"idle_timeout_seconds":-1`), 400, api.CodeInvalidArgument, "idle_timeout_seconds"},
		{"project with slash", "POST", "/v1/sandboxes", []byte(`{"project_id":"a/b","image":"` + img + `"}`), 400, api.CodeInvalidArgument, "project_id"},
		{"project ..", "POST", "/v1/sandboxes", []byte(`{"project_id":"..","image":"` + img + `"}`), 400, api.CodeInvalidArgument, "project_id"},
		{"project 300 chars", "POST", "/v1/sandboxes", []byte(`{"project_id":"` + strings.Repeat("p", 300) + `","image":"` + img + `"}`), 400, api.CodeInvalidArgument, "project_id: must be at most 64 characters, got 300"},
		{"project empty", "POST", "/v1/sandboxes", []byte(`{"project_id":"","image":"` + img + `"}`), 400, api.CodeInvalidArgument, "project_id: must not be empty"},
		{"label key with spaces", "POST", "/v1/sandboxes", create(`,"labels":{"my key":"v"}`), 400, api.CodeInvalidArgument, `labels: key "my key"`},
		{"label value too long", "POST", "/v1/sandboxes", create(`,"labels":{"k":"` + strings.Repeat("v", 257) + `"}`), 400, api.CodeInvalidArgument, "labels.k: value must be at most 256"},
		{"33 labels", "POST", "/v1/sandboxes", create(`,"labels":{` + labels(33) + `}`), 400, api.CodeInvalidArgument, "labels: at most 32 labels, got 33"},
		{"env name", "POST", "/v1/sandboxes", create(`,"env":{"1BAD":"x"}`), 400, api.CodeInvalidArgument, `env: name "1BAD"`},
		{"empty cmd", "POST", "/v1/sandboxes", create(`,"cmd":[]`), 400, api.CodeInvalidArgument, "cmd: must name a program"},
		{"relative workdir", "POST", "/v1/sandboxes", create(`,"workdir":"src"`), 400, api.CodeInvalidArgument, "workdir: must be an absolute path"},
		{"workdir on the read-only root", "POST", "/v1/sandboxes", create(`,"workdir":"/etc"`), 400, api.CodeInvalidArgument, "workdir: must be /workspace or /tmp"},
		{"idempotency key too long", "POST", "/v1/sandboxes", create(`,"idempotency_key":"` + strings.Repeat("k", 129) + `"`), 400, api.CodeInvalidArgument, "idempotency_key: must be at most 128"},
		{"malformed JSON", "POST", "/v1/sandboxes", []byte(`{"project_id":"abuse",`), 400, api.CodeInvalidArgument, "body: malformed JSON"},
		{"not an object", "POST", "/v1/sandboxes", []byte(`[1,2]`), 400, api.CodeInvalidArgument, "must be an object"},
		{"two objects", "POST", "/v1/sandboxes", append(create(""), create("")...), 400, api.CodeInvalidArgument, "exactly one JSON object"},
		{"empty body", "POST", "/v1/sandboxes", nil, 400, api.CodeInvalidArgument, "body: must be a JSON object"},
		{"2 MiB body", "POST", "/v1/sandboxes", create(`,"labels":{"k":"` + strings.Repeat("v", 2<<20) + `"}`), 413, api.CodePayloadTooLarge, "body: must be at most 1048576 bytes"},
		{"list unknown parameter", "GET", "/v1/sandboxes?privileged=true", nil, 400, api.CodeInvalidArgument, "privileged: unknown query parameter"},
		{"list limit too high", "GET", "/v1/sandboxes?limit=5000", nil, 400, api.CodeInvalidArgument, "limit: must be between 1 and 1000"},
		{"list bad state", "GET", "/v1/sandboxes?state=running,zombie", nil, 400, api.CodeInvalidArgument, `state: "zombie" is not a state`},
		{"unknown endpoint", "POST", "/v1/containers/create", create(""), 404, api.CodeNotFound, "no endpoint POST /v1/containers/create"},
		{"id not a uuid", "DELETE", "/v1/sandboxes/..%2F..%2Fetc", nil, 400, api.CodeInvalidArgument, "id: must be a sandbox id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.raw(t, tc.method, tc.path, tc.body)
			if status != tc.status || body.Code != tc.code || !strings.Contains(body.Message, tc.says) {
				t.Errorf("got %d %s %q, want %d %s saying %q", status, body.Code, body.Message, tc.status, tc.code, tc.says)
			}
		})
	}
	if n := len(containers(t, e.docker, e.cfg.HostID)); n != 0 {
		t.Errorf("refused requests left %d containers", n)
	}
	if n := e.rows(t); n != 0 {
		t.Errorf("refused requests left %d rows", n)
	}
}

func labels(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	return b.String()
}
