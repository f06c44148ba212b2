package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the packages a code-execution service or an
// operator imports free of the database and Docker clients, and the reaper's
// policy free of both, as the layout promises.
func TestDependencies(t *testing.T) {
	t.Parallel()
	banned := []string{"github.com/jackc/pgx", "github.com/docker/docker"}
	for _, pkg := range []string{"api", "client", "cmd/sandboxctl", "reaper"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/sandboxd/sandboxd/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 || deps[len(deps)-1] != "github.com/sandboxd/sandboxd/"+pkg {
			t.Fatalf("go list -deps %s did not list the package itself: %v", pkg, deps)
		}
		for _, d := range deps {
			for _, b := range banned {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
