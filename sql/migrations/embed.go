// Package migrations embeds drover's numbered schema migrations (NNN_name.up.sql / NNN_name.down.sql).
// They are applied by internal/db's migrator (`drover db migrate`). This is the database schema; live
// migration of VMs is the unrelated migrate/ package.
package migrations

import "embed"

// FS holds every *.sql file of this directory.
//
//go:embed *.sql
var FS embed.FS
