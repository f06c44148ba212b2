package main

import (
	"context"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"strconv"

	"github.com/sandboxd/sandboxd/store"
)

func migrate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sandboxd migrate", flag.ContinueOnError)
	url := fs.String("database-url", envOr("SANDBOXD_DATABASE_URL", store.DefaultURL), "PostgreSQL connection string (env SANDBOXD_DATABASE_URL)")
	dir := fs.String("dir", "", "validate: check the migrations in this folder instead of those built in")
	if len(args) == 0 {
		return fmt.Errorf("migrate: missing action: up, down [N], version or validate")
	}
	action, rest := args[0], args[1:]
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if action == "validate" {
		if fs.NArg() > 0 {
			return fmt.Errorf("migrate validate: unexpected argument %q", fs.Arg(0))
		}
		var fsys iofs.FS // nil: the migrations built into this binary
		if *dir != "" {
			fsys = os.DirFS(*dir)
		}
		return store.Validate(ctx, *url, fsys, os.Stdout)
	}
	m, err := store.OpenMigrator(ctx, *url, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	switch action {
	case "up":
		if err := m.Up(); err != nil {
			return err
		}
	case "down":
		n := 0
		if fs.NArg() > 0 {
			if n, err = strconv.Atoi(fs.Arg(0)); err != nil || n < 1 {
				return fmt.Errorf("migrate down: N must be a positive number, got %q", fs.Arg(0))
			}
		}
		if err := m.Down(n); err != nil {
			return err
		}
	case "version":
	default:
		return fmt.Errorf("migrate: unknown action %q: want up, down [N], version or validate", action)
	}
	v, dirty, err := m.Version()
	if err != nil {
		return err
	}
	fmt.Printf("version %d", v)
	if dirty {
		fmt.Print(" (dirty: a migration failed midway; fix it, then force the version)")
	}
	fmt.Println()
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
