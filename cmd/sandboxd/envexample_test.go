package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/daemon"
)

// envName is the environment variable of a serve flag.
func envName(flagName string) string {
	return "SANDBOXD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// TestEnvExample keeps systemd/sandboxd.env.example complete: every serve
// flag is there, commented out, with its default.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../systemd/sandboxd.env.example")
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	if os.Getenv("SANDBOXD_WRITE_ENV_EXAMPLE") != "" {
		fmt.Print(renderEnvExample())
		return
	}
	var c daemon.Config
	fs, _, _, _ := serveFlags(&c)
	fs.VisitAll(func(f *flag.Flag) {
		line := fmt.Sprintf("#%s=%s\n", envName(f.Name), f.DefValue)
		if !strings.Contains(example, line) {
			t.Errorf("sandboxd.env.example lacks %q", strings.TrimSpace(line))
		}
	})
}

// renderEnvExample writes the example file's settings, one commented line
// each after its usage (SANDBOXD_WRITE_ENV_EXAMPLE=1 go test -run
// TestEnvExample prints it).
func renderEnvExample() string {
	var c daemon.Config
	fs, _, _, _ := serveFlags(&c)
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "# --%s: %s\n#%s=%s\n\n", f.Name, f.Usage, envName(f.Name), f.DefValue)
	})
	return b.String()
}
