package daemon

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-units"
)

// Labels sandboxd puts on every container it creates. The reaper and the
// event watcher act only on containers that carry both LabelManaged and this
// host's LabelHost.
const (
	LabelManaged     = "io.sandboxd.managed"
	LabelSandboxID   = "io.sandboxd.sandbox-id"
	LabelProject     = "io.sandboxd.project"
	LabelHost        = "io.sandboxd.host"
	LabelUserPrefix  = "io.sandboxd.label."
	containerPrefix  = "sandboxd-"
	logMaxSize       = "1m"
	oomScoreAdj      = 500  // the kernel's OOM killer picks sandboxes before host services
	ulimitNoFile     = 1024 // open files
	ulimitFileSize   = 1 << 30
	stopSignalInInit = "SIGTERM"
	shmSize          = 16 << 20
)

// containerConfig builds a sandbox container from the server-side hardening
// template. Nothing in a request can loosen it: the request only supplies
// the image, command, environment, working directory, limits within their
// bounds, and labels under our own prefix.
func (c *Config) containerConfig(id string, sp createSpec) (*container.Config, *container.HostConfig) {
	labels := map[string]string{
		LabelManaged:   "true",
		LabelSandboxID: id,
		LabelProject:   sp.ProjectID,
		LabelHost:      c.HostID,
	}
	for k, v := range sp.Labels {
		labels[LabelUserPrefix+k] = v
	}
	pids := sp.Pids
	init := true
	uid, gid := c.sandboxIDs()
	cc := &container.Config{
		Image:           sp.Image,
		Cmd:             sp.Cmd,
		Env:             sp.Env,
		WorkingDir:      sp.Workdir,
		User:            c.SandboxUser,
		Labels:          labels,
		Hostname:        "sandbox",
		NetworkDisabled: true,
		StopSignal:      stopSignalInInit,
	}
	hc := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		// The writable places: a bounded /tmp and the workdir, and the
		// engine's /dev/shm (bounded below), all in memory and counted
		// against the memory limit. exec: the engine would add noexec, but
		// running what was just uploaded or compiled is what a sandbox is for.
		Tmpfs: map[string]string{
			"/tmp":    fmt.Sprintf("rw,exec,nosuid,nodev,size=%d,mode=1777", c.TmpSize),
			c.Workdir: fmt.Sprintf("rw,exec,nosuid,nodev,size=%d,mode=0755,uid=%d,gid=%d", c.WorkdirSize, uid, gid),
		},
		ShmSize:     shmSize,
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Privileged:  false,
		Init:        &init,
		IpcMode:     "private",
		OomScoreAdj: oomScoreAdj,
		Runtime:     c.Runtime,
		// AutoRemove stays off so that exit codes and OOM kills can be read
		// after the process ends; the reaper removes the container.
		AutoRemove:    false,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig: container.LogConfig{Type: "json-file",
			Config: map[string]string{"max-size": logMaxSize, "max-file": "1"}},
		Resources: container.Resources{
			Memory:     sp.MemoryBytes,
			MemorySwap: sp.MemoryBytes, // equal: no swap beyond the limit
			NanoCPUs:   sp.NanoCPUs,
			PidsLimit:  &pids,
			Ulimits: []*units.Ulimit{
				{Name: "nofile", Soft: ulimitNoFile, Hard: ulimitNoFile},
				{Name: "fsize", Soft: ulimitFileSize, Hard: ulimitFileSize},
				{Name: "core", Soft: 0, Hard: 0},
			},
		},
	}
	return cc, hc
}

// sandboxIDs returns the numeric uid and gid of --sandbox-user, which
// Config.check has validated.
func (c *Config) sandboxIDs() (uid, gid int) {
	u, g, _ := strings.Cut(c.SandboxUser, ":")
	uid, _ = strconv.Atoi(u)
	gid, _ = strconv.Atoi(g)
	return uid, gid
}
