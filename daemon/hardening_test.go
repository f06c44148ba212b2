package daemon_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/daemon"
)

// TestHardening reads every item of the hardening template back from the
// engine, for a request that asks for as much as it may.
func TestHardening(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	sb := e.create(t, api.CreateRequest{ProjectID: "hard", Cmd: []string{"sleep", "600"},
		Limits: &api.LimitsRequest{MemoryBytes: ptr(int64(256 << 20)), NanoCPUs: ptr(int64(5e8)), Pids: ptr(int64(64))},
		Labels: map[string]string{"team": "a"}})
	ins, err := e.docker.ContainerInspect(context.Background(), sb.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	hc, cc := ins.HostConfig, ins.Config
	check := func(item string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %v", item, got)
		}
	}
	check("network none", hc.NetworkMode == "none", hc.NetworkMode)
	check("read-only root filesystem", hc.ReadonlyRootfs, hc.ReadonlyRootfs)
	check("bounded /tmp", strings.Contains(hc.Tmpfs["/tmp"], "size="), hc.Tmpfs)
	check("bounded workdir", strings.Contains(hc.Tmpfs["/workspace"], "size=268435456"), hc.Tmpfs)
	check("tmpfs nosuid,nodev", strings.Contains(hc.Tmpfs["/tmp"], "nosuid,nodev") && strings.Contains(hc.Tmpfs["/workspace"], "nosuid,nodev"), hc.Tmpfs)
	check("cap drop ALL", slices.Equal(hc.CapDrop, []string{"ALL"}) && len(hc.CapAdd) == 0, hc.CapDrop)
	check("no-new-privileges", slices.Contains(hc.SecurityOpt, "no-new-privileges"), hc.SecurityOpt)
	check("pids limit", hc.PidsLimit != nil && *hc.PidsLimit == 64, hc.PidsLimit)
	check("memory", hc.Memory == 256<<20, hc.Memory)
	check("memory swap equals memory", hc.MemorySwap == hc.Memory, hc.MemorySwap)
	check("nano cpus", hc.NanoCPUs == 5e8, hc.NanoCPUs)
	check("non-root user", cc.User == daemon.DefaultSandboxUser, cc.User)
	check("init", hc.Init != nil && *hc.Init, hc.Init)
	check("restart policy no", hc.RestartPolicy.Name == "no", hc.RestartPolicy)
	check("auto remove off", !hc.AutoRemove, hc.AutoRemove)
	check("bounded log driver", hc.LogConfig.Type == "json-file" && hc.LogConfig.Config["max-size"] != "" && hc.LogConfig.Config["max-file"] == "1", hc.LogConfig)
	check("oom score adj positive", hc.OomScoreAdj > 0, hc.OomScoreAdj)
	ulimits := map[string]int64{}
	for _, u := range hc.Ulimits {
		ulimits[u.Name] = u.Hard
	}
	_, hasCore := ulimits["core"]
	check("ulimit nofile", ulimits["nofile"] > 0, hc.Ulimits)
	check("ulimit fsize", ulimits["fsize"] > 0, hc.Ulimits)
	check("ulimit core 0", hasCore && ulimits["core"] == 0, hc.Ulimits)
	check("not privileged", !hc.Privileged, hc.Privileged)
	check("no binds", len(hc.Binds) == 0 && len(hc.Mounts) == 0, hc.Binds)
	check("only the tmpfs mounts", len(ins.Mounts) == 0 && len(hc.Tmpfs) == 2, ins.Mounts)
	check("no devices", len(hc.Devices) == 0 && len(hc.DeviceRequests) == 0, hc.Devices)
	check("no published ports", len(hc.PortBindings) == 0 && !hc.PublishAllPorts, hc.PortBindings)
	check("no host namespaces", !hc.PidMode.IsHost() && !hc.IpcMode.IsHost() && !hc.UTSMode.IsHost() && !hc.UsernsMode.IsHost() && !hc.NetworkMode.IsHost(), hc.PidMode)
	check("default runtime", hc.Runtime == "runc" || hc.Runtime == "", hc.Runtime)
	for k, v := range map[string]string{daemon.LabelManaged: "true", daemon.LabelSandboxID: sb.ID, daemon.LabelProject: "hard",
		daemon.LabelHost: e.cfg.HostID, daemon.LabelUserPrefix + "team": "a"} {
		check("label "+k, cc.Labels[k] == v, cc.Labels)
	}

	// And from inside: no network but loopback, no capabilities, a
	// read-only root, a writable workdir.
	res, err := e.c.Exec(context.Background(), sb.ID, api.ExecRequest{Cmd: []string{"sh", "-c",
		`ls /sys/class/net | tr '\n' ' '; grep CapEff /proc/self/status; touch /etc/x 2>/dev/null && echo root-writable; touch /workspace/x && echo workdir-writable; id -u`}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "lo CapEff:\t0000000000000000\nworkdir-writable\n65534\n"; res.Stdout != want {
		t.Errorf("inside the sandbox:\n%q\nwant\n%q", res.Stdout, want)
	}
}
