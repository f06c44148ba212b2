package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// eventTime is RFC 3339 with milliseconds: events of one sandbox often
// fall within the same second.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// events prints a sandbox's history, oldest first.
func (c *cli) events(ctx context.Context, args []string) error {
	f := c.newFlags("events ID")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return f.usageErr("events takes one sandbox ID")
	}
	id, err := c.resolve(ctx, f.Arg(0))
	if err != nil {
		return err
	}
	evs, err := c.client.Events(ctx, id)
	if err != nil {
		return err
	}
	if c.json {
		if evs == nil {
			evs = []api.Event{}
		}
		return c.printJSON(evs)
	}
	tw := c.newTable()
	fmt.Fprintln(tw, "TIME\tSOURCE\tACTION\tATTRIBUTES")
	for _, ev := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ev.Time.Format(eventTime), ev.Source, ev.Action, formatAttributes(ev.Attributes))
	}
	return tw.Flush()
}

// formatAttributes writes attributes as k=v, sorted by key so that the
// same event always reads the same.
func formatAttributes(attrs map[string]string) string {
	if len(attrs) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		parts = append(parts, k+"="+attrs[k])
	}
	return strings.Join(parts, ",")
}
