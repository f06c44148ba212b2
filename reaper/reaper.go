// Package reaper holds sandboxd's cleanup policy: which containers and rows
// to remove, and why. It reaches Docker and the store only through small
// interfaces, so its rules are tested without either.
package reaper
