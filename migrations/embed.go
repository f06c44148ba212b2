// Package migrations holds the SQL migrations of the sandboxd schema, in
// golang-migrate's file format, embedded into the binary so that a daemon
// never depends on files lying next to it.
package migrations

import "embed"

// FS holds every NNNNNN_name.up.sql and .down.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
