//go:build !sandboxd_crashpoints

package daemon

// crashPoint marks a step of a create where the crash-safety tests kill
// the daemon. In production builds it does nothing; builds with the tag
// sandboxd_crashpoints die there on request (crashpoint_on.go).
func crashPoint(string) {}
