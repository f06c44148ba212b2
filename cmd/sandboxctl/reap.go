package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

// reap runs a reaper pass now (or, with --dry-run, shows what one would do)
// and prints its actions as a table.
func (c *cli) reap(ctx context.Context, args []string) error {
	f := c.newFlags("reap [--dry-run]")
	dryRun := f.Bool("dry-run", false, "plan only: change nothing")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("reap takes no arguments")
	}
	res, err := c.client.Reap(ctx, *dryRun)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(res)
	}
	if len(res.Actions) == 0 {
		fmt.Fprintln(c.stdout, "nothing to reap")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SANDBOX ID\tCONTAINER\tPROJECT\tREASON\tDONE\tERROR")
	for _, a := range res.Actions {
		done := "yes"
		if !a.Done {
			done = "no"
			if res.DryRun {
				done = "dry run"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortID(a.SandboxID), shortID(a.ContainerID), dash(a.ProjectID), a.Reason, done, dash(a.Error))
	}
	return tw.Flush()
}

// dash stands in for an empty table cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
