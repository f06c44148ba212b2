package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
)

// timeoutStatus is the exit status of a command that ran out of time, the
// one timeout(1) uses.
const timeoutStatus = 124

// exec runs a command in a sandbox, passes on its output and exits with its
// status. Piped stdin goes to the command; a terminal's does not, because
// the API takes stdin whole and a terminal never ends.
func (c *cli) exec(ctx context.Context, args []string) error {
	f := c.newFlags("exec ID [--timeout D] [--env K=V]... [--workdir DIR] -- CMD...")
	timeout := f.String("timeout", "", "kill the command after `D`, whole seconds (default: the daemon's)")
	env := kvFlag{}
	f.Var(env, "env", "an environment variable `K=V` (repeatable)")
	workdir := f.String("workdir", "", "the working `directory` of the command")
	// Flags may come before or after ID; the command starts at the first
	// argument after ID that is not a flag, or after "--".
	if err := f.parse(args); err != nil {
		return err
	}
	if f.NArg() == 0 {
		return f.usageErr("exec needs a sandbox ID and a command")
	}
	arg := f.Arg(0)
	if err := f.parse(f.Args()[1:]); err != nil {
		return err
	}
	if f.NArg() == 0 {
		return f.usageErr("exec needs a command after the sandbox ID")
	}
	req := api.ExecRequest{Cmd: f.Args(), Env: env, Workdir: *workdir}
	if f.set()["timeout"] {
		secs, err := parseSeconds("--timeout", *timeout, 1)
		if err != nil {
			return f.usageErr("%s", err)
		}
		req.TimeoutSeconds = &secs
	}
	stdin, err := readStdin(c.stdin)
	if err != nil {
		return err
	}
	req.Stdin = stdin
	id, err := c.resolve(ctx, arg)
	if err != nil {
		return err
	}
	res, err := c.client.Exec(ctx, id, req)
	if err != nil {
		return err
	}
	return c.execResult(res, req.TimeoutSeconds)
}

// execResult prints what the command wrote and says how it ended.
func (c *cli) execResult(res api.ExecResult, timeoutSeconds *int64) error {
	if c.json {
		if err := c.printJSON(res); err != nil {
			return err
		}
		return exitCode(res.ExitCode)
	}
	io.WriteString(c.stdout, res.Stdout)
	io.WriteString(c.stderr, res.Stderr)
	if res.StdoutTruncated {
		fmt.Fprintln(c.stderr, "sandboxctl: stdout was truncated by the daemon's output limit")
	}
	if res.StderrTruncated {
		fmt.Fprintln(c.stderr, "sandboxctl: stderr was truncated by the daemon's output limit")
	}
	if res.TimedOut {
		// Without --timeout the daemon's default applied, which only its
		// measured duration tells us.
		after := time.Duration(res.DurationMS) * time.Millisecond
		if timeoutSeconds != nil {
			after = time.Duration(*timeoutSeconds) * time.Second
		}
		fmt.Fprintf(c.stderr, "sandboxctl: command timed out after %s\n", after)
		return exitStatus(timeoutStatus)
	}
	return exitCode(res.ExitCode)
}

// exitCode passes on a command's exit code; 0 is success.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return exitStatus(code)
}

// readStdin reads what is piped into sandboxctl, or nothing when stdin is
// a terminal (or /dev/null, also a character device). The API carries stdin
// in a JSON string, so it must be text and fit in a request body; checking
// here gives a clear message and never reads more than that from a pipe.
func readStdin(r io.Reader) (string, error) {
	if r == nil {
		return "", nil
	}
	if f, ok := r.(*os.File); ok {
		fi, err := f.Stat()
		if err != nil || fi.Mode()&os.ModeCharDevice != 0 {
			return "", nil
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, api.MaxBodyBytes+1))
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	if len(b) > api.MaxBodyBytes {
		return "", fmt.Errorf("stdin is over %d bytes, the most a request carries; copy the data in with cp", api.MaxBodyBytes)
	}
	if !utf8.Valid(b) {
		return "", errors.New("stdin is not UTF-8 text, which is all exec carries; copy binary data in with cp")
	}
	return string(b), nil
}
