// Command sandboxctl is the operator CLI of sandboxd. It talks to the daemon
// over its Unix socket through package client, and to nothing else.
//
//	sandboxctl [--socket PATH] [-o table|json] COMMAND [args]
//
// Run "sandboxctl help" for the commands.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/client"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: sandboxctl [--socket PATH] [-o table|json] COMMAND [args]

commands:
  ps [--project P] [--state S[,S...]] [--all] [--limit N]
                            list sandboxes (removed ones too with --all)
  inspect ID                print a sandbox as JSON
  create --project P --image I [flags] [-- CMD...]
                            create a sandbox and print its id
  exec ID [--timeout D] [--env K=V]... [--workdir DIR] -- CMD...
                            run a command in a sandbox; exits with its status
  cp SRC ID:DIR             copy a local file or directory into a sandbox
  cp ID:SRC DIR             copy a file or directory out of a sandbox
  extend ID DURATION        make a sandbox expire DURATION from now
  rm ID...                  stop and remove sandboxes
  events ID                 print a sandbox's history
  reap [--dry-run]          run a reaper pass now and print what it did
  pool                      show the warm pools: target, ready, hit rate
  health                    print the daemon's health; exits 1 when degraded
  version                   print sandboxctl's version
  help                      print this text

ID is a sandbox id or a prefix of exactly one.
"sandboxctl COMMAND -h" lists a command's flags.

global flags:
  --socket PATH   the daemon's socket (default $SANDBOXD_SOCKET, else ` + api.DefaultSocket + `)
  -o FORMAT       table (default) or json
`

// cli is what every command needs: the daemon, the output format and the
// standard streams, passed in so that tests can run commands in-process.
type cli struct {
	client *client.Client
	json   bool
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time // the clock ages and expiries are measured against
}

// commands maps each command name to the method that runs it.
var commands = map[string]func(*cli, context.Context, []string) error{
	"ps":      (*cli).ps,
	"inspect": (*cli).inspect,
	"create":  (*cli).create,
	"exec":    (*cli).exec,
	"cp":      (*cli).cp,
	"extend":  (*cli).extend,
	"rm":      (*cli).rm,
	"reap":    (*cli).reap,
	"pool":    (*cli).pool,
	"events":  (*cli).events,
	"health":  (*cli).health,
	"version": (*cli).version,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command line and returns the process's exit status: 0 on
// success, 1 on failure, 2 on a usage error, or what exec's command returned.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	return c.exit(c.dispatch(ctx, args))
}

// dispatch parses the global flags and runs the command they precede.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sandboxctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // exit prints usage errors once, in our format
	socket := fs.String("socket", cmp.Or(os.Getenv("SANDBOXD_SOCKET"), api.DefaultSocket), "")
	output := fs.String("o", "table", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, usage)
			return nil
		}
		return usageError{msg: err.Error()}
	}
	switch *output {
	case "table":
	case "json":
		c.json = true
	default:
		return usageError{msg: fmt.Sprintf("-o %s: want table or json", *output)}
	}
	if fs.NArg() == 0 {
		return usageError{msg: "missing command"}
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	if name == "help" {
		fmt.Fprint(c.stdout, usage)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		return usageError{msg: fmt.Sprintf("unknown command %q", name)}
	}
	c.client = &client.Client{Socket: *socket}
	return cmd(c, ctx, rest)
}

// version prints the CLI's own version.
func (c *cli) version(_ context.Context, args []string) error {
	f := c.newFlags("version")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return f.usageErr("version takes no arguments")
	}
	if c.json {
		return c.printJSON(map[string]string{"version": version})
	}
	fmt.Fprintln(c.stdout, version)
	return nil
}

// usageError is a mistake on the command line. It exits 2, as flag does, so
// scripts can tell a wrong invocation from a failed operation.
type usageError struct {
	msg      string
	synopsis string // the command's usage line, if the mistake is in one
}

func (e usageError) Error() string { return e.msg }

// exitStatus ends the program with a status and no further message: the
// command already said what happened (exec passes on its command's status,
// rm has reported each failure).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exit reports err on stderr and turns it into an exit status.
func (c *cli) exit(err error) int {
	var status exitStatus
	var usageErr usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &usageErr):
		fmt.Fprintf(c.stderr, "sandboxctl: %s\n", usageErr.msg)
		if usageErr.synopsis != "" {
			fmt.Fprintf(c.stderr, "usage: sandboxctl %s\n", usageErr.synopsis)
		} else {
			fmt.Fprintln(c.stderr, `Run "sandboxctl help" for usage.`)
		}
		return 2
	}
	fmt.Fprintf(c.stderr, "sandboxctl: %s\n", describe(err))
	return 1
}

// describe words an error for the operator. A *client.Error already reads
// "code: message", the message naming the field and the limit it broke. A
// failed dial is nearly always a daemon that is not running or a wrong
// socket, so it says where to look.
func describe(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return err.Error() + " (is sandboxd running? --socket or SANDBOXD_SOCKET name its socket)"
	}
	return err.Error()
}
