package main

import (
	"context"
	"fmt"

	"github.com/sandboxd/sandboxd/api"
)

// createSynopsis is create's usage line.
const createSynopsis = "create --project P --image I [--ttl D] [--idle-timeout D] [--memory SIZE] " +
	"[--cpus N] [--pids N] [--label K=V]... [--env K=V]... [--workdir DIR] [--idempotency-key K] [-- CMD...]"

// create creates a sandbox and prints its id, like docker run -d, or its
// record as JSON.
func (c *cli) create(ctx context.Context, args []string) error {
	req, err := c.createRequest(args)
	if err != nil {
		return err
	}
	sb, created, err := c.client.Create(ctx, req)
	if err != nil {
		return err
	}
	if !created {
		// A retried create is the point of idempotency keys, but the
		// operator should know they got an old sandbox, not a new one.
		fmt.Fprintf(c.stderr, "sandboxctl: idempotency key %q names an existing sandbox\n", req.IdempotencyKey)
	}
	if c.json {
		return c.printJSON(sb)
	}
	fmt.Fprintln(c.stdout, sb.ID)
	return nil
}

// createRequest builds the request from the command line. It sets only the
// fields the operator gave, so the daemon's defaults decide the rest.
func (c *cli) createRequest(args []string) (api.CreateRequest, error) {
	f := c.newFlags(createSynopsis)
	var req api.CreateRequest
	f.StringVar(&req.ProjectID, "project", "", "the project `P` the sandbox belongs to (required)")
	f.StringVar(&req.Image, "image", "", "the `image` to run (required)")
	ttl := f.String("ttl", "", "remove the sandbox after `D`, whole seconds (default: the daemon's)")
	idle := f.String("idle-timeout", "", "remove the sandbox after `D` without activity; 0 never")
	memory := f.String("memory", "", "memory limit, e.g. 256MiB or 1GB")
	cpus := f.String("cpus", "", "CPU limit, e.g. 0.5")
	pids := f.Int64("pids", 0, "most processes at once")
	labels, env := kvFlag{}, kvFlag{}
	f.Var(labels, "label", "a label `K=V` (repeatable)")
	f.Var(env, "env", "an environment variable `K=V` (repeatable)")
	f.StringVar(&req.Workdir, "workdir", "", "the working `directory` of the command")
	f.StringVar(&req.IdempotencyKey, "idempotency-key", "", "return the sandbox this `key` made before instead of a new one")
	if err := f.parse(args); err != nil {
		return req, err
	}
	if req.ProjectID == "" || req.Image == "" {
		return req, f.usageErr("create needs --project and --image")
	}
	req.Cmd, req.Labels, req.Env = f.Args(), labels, env
	set := f.set()
	if set["ttl"] {
		secs, err := parseSeconds("--ttl", *ttl, 1)
		if err != nil {
			return req, f.usageErr("%s", err)
		}
		req.TTLSeconds = &secs
	}
	if set["idle-timeout"] {
		secs, err := parseSeconds("--idle-timeout", *idle, 0)
		if err != nil {
			return req, f.usageErr("%s", err)
		}
		req.IdleTimeoutSeconds = secs
	}
	limits, err := limitsRequest(set, *memory, *cpus, *pids)
	if err != nil {
		return req, f.usageErr("%s", err)
	}
	req.Limits = limits
	return req, nil
}

// limitsRequest holds the limits the command line gave, nil when none.
func limitsRequest(set map[string]bool, memory, cpus string, pids int64) (*api.LimitsRequest, error) {
	var l api.LimitsRequest
	if set["memory"] {
		n, err := parseSize(memory)
		if err != nil {
			return nil, err
		}
		l.MemoryBytes = &n
	}
	if set["cpus"] {
		n, err := parseCPUs(cpus)
		if err != nil {
			return nil, err
		}
		l.NanoCPUs = &n
	}
	if set["pids"] {
		l.Pids = &pids
	}
	if l == (api.LimitsRequest{}) {
		return nil, nil
	}
	return &l, nil
}
