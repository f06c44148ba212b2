package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/sandboxd/sandboxd/client"
)

// prefixScan is how many sandboxes, newest first, a prefix is matched
// against: the most one List call returns.
const prefixScan = 1000

// resolve turns an ID argument into a full sandbox id. A full uuid is used
// as is, so a command on a known sandbox costs one call; anything else is a
// prefix that must match exactly one sandbox, removed ones included, so
// that inspect and events work on history too.
func (c *cli) resolve(ctx context.Context, arg string) (string, error) {
	if arg == "" {
		return "", usageError{msg: "empty sandbox id"}
	}
	if isUUID(arg) {
		return arg, nil
	}
	list, err := c.client.List(ctx, client.ListOptions{All: true, Limit: prefixScan})
	if err != nil {
		return "", fmt.Errorf("resolve id prefix %s: %w", arg, err)
	}
	prefix := strings.ToLower(arg)
	var matches []string
	for _, sb := range list {
		if strings.HasPrefix(strings.ToLower(sb.ID), prefix) {
			matches = append(matches, sb.ID)
		}
	}
	switch {
	case len(matches) == 1:
		return matches[0], nil
	case len(matches) > 1:
		return "", fmt.Errorf("ID prefix %s is ambiguous (%d sandboxes)", arg, len(matches))
	case len(list) >= prefixScan:
		return "", fmt.Errorf("no sandbox matches %s among the newest %d; give the full id", arg, prefixScan)
	}
	return "", fmt.Errorf("no sandbox matches %s", arg)
}

// isUUID reports whether s has the 8-4-4-4-12 hex form of a sandbox id.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}
