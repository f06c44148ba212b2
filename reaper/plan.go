package reaper

import (
	"fmt"
	"time"
)

// Rule names why the reaper acts. They are the reasons recorded on rows,
// except stale_creating, whose rows end failed.
type Rule string

// The rules, in the order they are tried on a row.
const (
	RuleVanished      Rule = "vanished"       // the row's container is gone
	RuleStaleCreating Rule = "stale_creating" // a create that never finished (creating, or created and never started)
	RuleRemoving      Rule = "removing"       // a removal cut short
	RuleExpired       Rule = "expired"        // expires_at passed
	RuleIdle          Rule = "idle"           // no activity for the idle timeout
	RuleExited        Rule = "exited"         // the process ended, and the grace passed
	RuleOrphaned      Rule = "orphaned"       // our labels, no live row, grace passed
)

// Action is one thing a pass does (or, in a dry run, would do).
type Action struct {
	SandboxID   string `json:"sandbox_id"`
	ContainerID string `json:"container_id"`
	ProjectID   string `json:"project_id"`
	Reason      Rule   `json:"reason"`
	Done        bool   `json:"done"`
	Error       string `json:"error,omitempty"`

	sandbox   Sandbox    // the row acted on (empty for an orphan)
	container *Container // the container to remove, if any
}

// snapshot is what one pass knows: the host's live rows and containers,
// each with whether it could be read.
type snapshot struct {
	now        time.Time
	rows       []Sandbox
	containers []Container
	listed     bool // the engine's listing succeeded
	inSync     bool // the event watcher follows the engine
}

// ours reports whether a container carries both our managed label and this
// host's id. Nothing else is ever stopped or removed, whatever its name or
// other labels.
func ours(c Container, host string) bool {
	return c.Labels[LabelManaged] == "true" && c.Labels[LabelHost] == host
}

// plan decides a pass's actions from a snapshot. It is pure: the rules and
// their safety invariants live here, and are tested without Docker or a
// database.
//
// A container is removed only when it was in this pass's listing and
// carries our labels. The vanished and orphaned rules judge by what is
// missing, so they run only when the listing worked and the event watcher
// is in sync; otherwise a failed or stale view would look like loss.
func (c *Config) plan(s snapshot) []Action {
	byID := map[string]*Container{}
	bySandbox := map[string]*Container{}
	for i := range s.containers {
		ct := &s.containers[i]
		if !ours(*ct, c.HostID) {
			continue
		}
		byID[ct.ID] = ct
		bySandbox[ct.Labels[LabelSandboxID]] = ct
	}
	trustAbsence := s.listed && s.inSync
	live := map[string]bool{}
	var actions []Action
	for _, sb := range s.rows {
		live[sb.ID] = true
		ct := byID[sb.ContainerID]
		if sb.ContainerID == "" {
			ct = bySandbox[sb.ID]
		}
		rule, ok := c.ruleFor(s.now, sb, ct, trustAbsence, s.listed)
		if !ok {
			continue
		}
		a := Action{SandboxID: sb.ID, ContainerID: sb.ContainerID, ProjectID: sb.ProjectID, Reason: rule, sandbox: sb}
		if ct != nil {
			a.container, a.ContainerID = ct, ct.ID
		}
		actions = append(actions, a)
	}
	if trustAbsence {
		for i := range s.containers {
			ct := &s.containers[i]
			if !ours(*ct, c.HostID) || live[ct.Labels[LabelSandboxID]] {
				continue
			}
			// The grace covers a create between its container and its
			// row's update, and a row written just after the listing.
			if s.now.Sub(ct.Created) <= c.OrphanGrace {
				continue
			}
			actions = append(actions, Action{SandboxID: ct.Labels[LabelSandboxID], ContainerID: ct.ID,
				ProjectID: ct.Labels["io.sandboxd.project"], Reason: RuleOrphaned, container: ct})
		}
	}
	return actions
}

// ruleFor picks the rule that applies to a live row, if any. ct is the
// row's container in the listing (nil when not listed).
func (c *Config) ruleFor(now time.Time, sb Sandbox, ct *Container, trustAbsence, listed bool) (Rule, bool) {
	if sb.State == "creating" {
		if now.Sub(sb.CreatedAt) > c.CreateTimeout && (listed || ct != nil) {
			return RuleStaleCreating, true
		}
		return "", false
	}
	if ct == nil {
		if trustAbsence {
			return RuleVanished, true
		}
		return "", false // gone, or the listing failed: nothing to remove either way
	}
	if sb.State == "pooled" {
		return "", false // the pool's own: it retires its containers itself
	}
	switch {
	case sb.State == "created" && now.Sub(sb.CreatedAt) > c.CreateTimeout:
		// Its container was made and never started: sandboxd starts every
		// container at once, so only a create cut short (the daemon killed
		// between create and start) leaves one, and it holds quota.
		return RuleStaleCreating, true
	case sb.State == "removing":
		if now.Sub(sb.UpdatedAt) > removingGrace {
			return RuleRemoving, true
		}
	case !now.Before(sb.ExpiresAt):
		return RuleExpired, true
	case sb.IdleTimeout > 0 && !now.Before(sb.LastActivityAt.Add(sb.IdleTimeout)):
		return RuleIdle, true
	case (sb.State == "exited" || sb.State == "dead") && sb.FinishedAt != nil && now.Sub(*sb.FinishedAt) > c.ExitedGrace:
		return RuleExited, true
	}
	return "", false
}

// String describes an action for logs and tables.
func (a Action) String() string {
	return fmt.Sprintf("%s sandbox=%s container=%.12s", a.Reason, a.SandboxID, a.ContainerID)
}
