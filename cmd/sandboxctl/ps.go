package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
)

// ps lists sandboxes, newest first, as a table like docker ps or as JSON.
func (c *cli) ps(ctx context.Context, args []string) error {
	f := c.newFlags("ps [--project P] [--state S[,S...]] [--all] [--limit N]")
	project := f.String("project", "", "only sandboxes of project `P`")
	state := f.String("state", "", "only sandboxes in these `states` (comma-separated)")
	all := f.Bool("all", false, "include removed sandboxes")
	limit := f.Int("limit", 0, "at most `N` sandboxes (default: the daemon's)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("ps takes no arguments, got %q", f.Arg(0))
	}
	list, err := c.client.List(ctx, client.ListOptions{
		ProjectID: *project, States: splitList(*state), All: *all, Limit: *limit,
	})
	if err != nil {
		return err
	}
	if c.json {
		if list == nil {
			list = []api.Sandbox{} // "[]", not "null", for scripts
		}
		return c.printJSON(list)
	}
	return c.printSandboxes(list)
}

// printSandboxes writes the ps table.
func (c *cli) printSandboxes(list []api.Sandbox) error {
	now := c.now()
	tw := c.newTable()
	fmt.Fprintln(tw, "SANDBOX ID\tPROJECT\tSTATE\tIMAGE\tCREATED\tEXPIRES\tREASON\tFROM")
	for _, sb := range list {
		from := sb.AcquiredFrom
		if from == "" {
			from = "cold"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortID(sb.ID), dash(sb.ProjectID), sb.State,
			sb.Image, formatAge(now.Sub(sb.CreatedAt)), expires(sb, now), reason(sb), from)
	}
	return tw.Flush()
}

// expires is the EXPIRES column. A sandbox without a container any more
// (removed, or failed at creation) has nothing left to expire.
func expires(sb api.Sandbox, now time.Time) string {
	if sb.RemovedAt != nil || sb.State == "removed" || sb.State == "failed" {
		return "-"
	}
	return formatUntil(sb.ExpiresAt.Sub(now))
}

// reason is the REASON column: why a sandbox was removed.
func reason(sb api.Sandbox) string {
	if sb.RemovalReason == nil || *sb.RemovalReason == "" {
		return "-"
	}
	return *sb.RemovalReason
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
