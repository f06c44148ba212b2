// Command sandboxd is the sandbox container lifecycle daemon.
//
//	sandboxd serve [flags]                 run the daemon
//	sandboxd migrate up|down [N]|version|validate [--database-url URL]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  sandboxd serve [flags]          run the daemon (sandboxd serve -h lists the flags)
  sandboxd migrate up             apply every pending migration
  sandboxd migrate down [N]       revert the last N migrations (all when N is omitted)
  sandboxd migrate version        print the applied migration version
  sandboxd migrate validate [--dir DIR]
                                  check the migrations on a scratch database
  sandboxd version                print the version
`

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	// The first SIGTERM or SIGINT stops the daemon gracefully; a second one
	// exits at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		s := <-sigs
		fmt.Fprintf(os.Stderr, "sandboxd: second signal (%s): exiting now\n", s)
		os.Exit(1)
	}()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("missing command")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "migrate":
		return migrate(ctx, args[1:])
	case "version":
		fmt.Println(version)
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
