package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
)

// listen binds the API socket. A socket file left by a daemon that died is
// removed, but only after dialing it failed: a live daemon answering there
// makes start-up fail instead of stealing its socket.
func listen(cfg Config) (net.Listener, error) {
	if _, err := os.Stat(cfg.Socket); err == nil {
		conn, err := net.DialTimeout("unix", cfg.Socket, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("socket %s: another sandboxd is already serving there", cfg.Socket)
		}
		if err := os.Remove(cfg.Socket); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", cfg.Socket, err)
		}
	}
	// Bind with a umask that leaves the file unreachable until its mode and
	// group are set, so no caller slips in between.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", cfg.Socket)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	if err := ownSocket(cfg.Socket, cfg); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ownSocket gives the socket file its configured group and mode.
func ownSocket(path string, cfg Config) error {
	if cfg.SocketGroup != "" {
		gid, err := lookupGroup(cfg.SocketGroup)
		if err != nil {
			return fmt.Errorf("--socket-group: %w", err)
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("chown socket %s to group %s: %w", path, cfg.SocketGroup, err)
		}
	}
	if err := os.Chmod(path, cfg.SocketMode); err != nil {
		return fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// peer is the process at the other end of an API connection, as the kernel
// tells it (SO_PEERCRED): it cannot be forged by the caller.
type peer struct {
	UID, GID uint32
	PID      int32
	ok       bool
}

type peerKey struct{}

// connContext reads the caller's credentials once per connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	var p peer
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
				if err == nil {
					p = peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid, ok: true}
				}
			})
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func peerFrom(ctx context.Context) peer {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p
}

// authorize denies by default: only root, the daemon's own user, and the
// configured uids and gids may call anything but the health check.
func (s *server) authorize(next http.Handler) http.Handler {
	self := uint32(os.Getuid())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		allowed := p.ok && (p.UID == 0 || p.UID == self ||
			slices.Contains(s.cfg.AllowUIDs, p.UID) || slices.Contains(s.cfg.AllowGIDs, p.GID) ||
			len(s.cfg.AllowGIDs) > 0 && slices.ContainsFunc(supplementaryGroups(p.PID), func(g uint32) bool {
				return slices.Contains(s.cfg.AllowGIDs, g)
			}))
		if !allowed && !(r.Method == http.MethodGet && r.URL.Path == "/v1/health") {
			s.log.WarnContext(r.Context(), "caller denied", "uid", p.UID, "gid", p.GID, "pid", p.PID, "path", r.URL.Path)
			writeError(w, r, s.log, &apiError{http.StatusForbidden, api.CodePermissionDenied,
				fmt.Sprintf("uid %d (gid %d) may not use this socket; see --allow-uid and --allow-gid", p.UID, p.GID)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// supplementaryGroups reads the caller's other groups from /proc:
// SO_PEERCRED carries only the primary gid, and members of --socket-group
// through a supplementary group are expected to get in too.
func supplementaryGroups(pid int32) []uint32 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
			var gids []uint32
			for _, f := range strings.Fields(rest) {
				if g, err := strconv.ParseUint(f, 10, 32); err == nil {
					gids = append(gids, uint32(g))
				}
			}
			return gids
		}
	}
	return nil
}
