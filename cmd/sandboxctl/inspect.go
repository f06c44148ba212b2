package main

import "context"

// inspect prints one sandbox as indented JSON, whatever -o says: the full
// record is the point of the command.
func (c *cli) inspect(ctx context.Context, args []string) error {
	f := c.newFlags("inspect ID")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return f.usageErr("inspect takes one sandbox ID")
	}
	id, err := c.resolve(ctx, f.Arg(0))
	if err != nil {
		return err
	}
	sb, err := c.client.Get(ctx, id)
	if err != nil {
		return err
	}
	return c.printJSON(sb)
}
