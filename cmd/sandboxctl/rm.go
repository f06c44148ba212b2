package main

import (
	"context"
	"fmt"

	"github.com/sandboxd/sandboxd/api"
)

// rm stops and removes each sandbox named, printing its full id. It goes on
// past a failure, so one bad id does not spare the rest, and exits 1 if any
// failed.
func (c *cli) rm(ctx context.Context, args []string) error {
	f := c.newFlags("rm ID...")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() == 0 {
		return f.usageErr("rm needs at least one sandbox ID")
	}
	removed := []api.Sandbox{}
	failed := false
	for _, arg := range f.Args() {
		sb, err := c.remove(ctx, arg)
		if err != nil {
			fmt.Fprintf(c.stderr, "sandboxctl: rm %s: %s\n", arg, describe(err))
			failed = true
			continue
		}
		removed = append(removed, sb)
		if !c.json {
			fmt.Fprintln(c.stdout, sb.ID)
		}
	}
	if c.json {
		if err := c.printJSON(removed); err != nil {
			return err
		}
	}
	if failed {
		return exitStatus(1)
	}
	return nil
}

func (c *cli) remove(ctx context.Context, arg string) (api.Sandbox, error) {
	id, err := c.resolve(ctx, arg)
	if err != nil {
		return api.Sandbox{}, err
	}
	return c.client.Delete(ctx, id)
}
