package main

import (
	"context"
	"fmt"
	"time"
)

// extend makes a sandbox expire a duration from now and prints when.
func (c *cli) extend(ctx context.Context, args []string) error {
	f := c.newFlags("extend ID DURATION")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() != 2 {
		return f.usageErr("extend takes a sandbox ID and a duration")
	}
	secs, err := parseSeconds("duration", f.Arg(1), 1)
	if err != nil {
		return f.usageErr("%s", err)
	}
	id, err := c.resolve(ctx, f.Arg(0))
	if err != nil {
		return err
	}
	sb, err := c.client.Extend(ctx, id, time.Duration(secs)*time.Second)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(sb)
	}
	fmt.Fprintf(c.stdout, "expires at %s (%s)\n", sb.ExpiresAt.Format(time.RFC3339), formatUntil(sb.ExpiresAt.Sub(c.now())))
	return nil
}
