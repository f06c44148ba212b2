package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/sandboxd/sandboxd/client"
)

// health prints the daemon's health and exits 1 when it is degraded.
func (c *cli) health(ctx context.Context, args []string) error {
	f := c.newFlags("health")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("health takes no arguments")
	}
	h, err := c.client.Health(ctx)
	if h.Status == "" {
		// No health report at all: the daemon is unreachable or answered
		// something else (permission denied, say).
		var ce *client.Error
		if errors.As(err, &ce) {
			return fmt.Errorf("daemon answered HTTP %d without a health report", ce.Status)
		}
		if err == nil {
			err = errors.New("daemon answered an empty health report")
		}
		return err
	}
	if c.json {
		if perr := c.printJSON(h); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(c.stdout, "status:   %s\nversion:  %s\ndocker:   %s\ndatabase: %s\nevents:   %s\n", h.Status, h.Version, h.Docker, h.Database, h.Events)
	}
	if err != nil {
		return exitStatus(1) // degraded; the report above says why
	}
	return nil
}
