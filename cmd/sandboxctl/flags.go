package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flags is a command's flag set and the synopsis that its usage errors and
// -h repeat.
type flags struct {
	*flag.FlagSet
	synopsis string
	stdout   io.Writer
}

// newFlags makes the flag set of the command that synopsis starts with.
func (c *cli) newFlags(synopsis string) *flags {
	name, _, _ := strings.Cut(synopsis, " ")
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// flag would print its own complaint and the defaults; exit prints the
	// complaint once with the synopsis instead.
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, synopsis: synopsis, stdout: c.stdout}
}

// parse parses args, turning flag's errors into usage errors. -h prints the
// command's usage and ends the program with status 0.
func (f *flags) parse(args []string) error {
	err := f.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(f.stdout, "usage: sandboxctl %s\n", f.synopsis)
		f.SetOutput(f.stdout)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
		return exitStatus(0)
	}
	if err != nil {
		return f.usageErr("%s", err)
	}
	return nil
}

// usageErr is a usage error that shows the command's synopsis.
func (f *flags) usageErr(format string, a ...any) error {
	return usageError{msg: fmt.Sprintf(format, a...), synopsis: f.synopsis}
}

// set reports which flags the command line gave, so that a command sends
// only those and the daemon's defaults decide the rest.
func (f *flags) set() map[string]bool {
	m := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { m[fl.Name] = true })
	return m
}

// kvFlag collects repeated KEY=VALUE flags (--label, --env) into a map.
type kvFlag map[string]string

func (m kvFlag) String() string { return "" }

func (m kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	m[k] = v
	return nil
}
