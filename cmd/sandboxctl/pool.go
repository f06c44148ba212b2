package main

import (
	"context"
	"fmt"
)

// pool shows each warm pool: its target, how many are ready, and how often
// it served a create.
func (c *cli) pool(ctx context.Context, args []string) error {
	f := c.newFlags("pool")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("pool takes no arguments")
	}
	pools, err := c.client.Pools(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(pools)
	}
	if len(pools) == 0 {
		fmt.Fprintln(c.stdout, "no pools configured (sandboxd serve --pool IMAGE=N)")
		return nil
	}
	tw := c.newTable()
	fmt.Fprintln(tw, "IMAGE\tTARGET\tREADY\tCLAIMS\tMISSES\tHIT RATE")
	for _, p := range pools {
		rate := "-"
		if n := p.Claims + p.Misses; n > 0 {
			rate = fmt.Sprintf("%.0f%%", 100*float64(p.Claims)/float64(n))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", p.Image, p.Target, p.Ready, p.Claims, p.Misses, rate)
	}
	return tw.Flush()
}
