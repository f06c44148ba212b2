package main

import (
	"context"
	"fmt"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func serve(ctx context.Context, args []string) error {
	return fmt.Errorf("serve: not implemented yet")
}
