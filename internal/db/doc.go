// Package db owns drover's PostgreSQL access: the connection pool (pgx/v5) and the migrator that
// applies the numbered schema migrations embedded in sql/migrations.
//
// It holds no business logic and no scattered SQL: queries other packages run live in sql/queries.
package db
