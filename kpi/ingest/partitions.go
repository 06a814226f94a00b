package ingest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PartitionChange is one thing MaintainPartitions did.
type PartitionChange struct {
	// Action: "created" (a daily partition; Rows were moved into it from the default partition),
	// "dropped" (older than the retention; Rows is the planner's estimate, nil when unknown),
	// "purged" (Rows deleted from the default partition, older than the retention) or "pruned"
	// (Rows of ingest_batches older than the retention).
	Action    string
	Partition string
	Rows      *int64
}

func (c PartitionChange) String() string {
	if c.Rows == nil {
		return c.Action + " " + c.Partition
	}
	return fmt.Sprintf("%s %s (%d rows)", c.Action, c.Partition, *c.Rows)
}

// MaintainPartitions makes kpi_samples' daily partitions (UTC days) from yesterday to ahead days
// from today, and drops those more than retention days old, through the SQL function
// kpi_partitions (which drover_agent may call). Run it at start and then every hour or so; from
// several agents at once is fine (they queue on a lock).
func MaintainPartitions(ctx context.Context, pool *pgxpool.Pool, ahead, retention int) ([]PartitionChange, error) {
	rows, err := pool.Query(ctx, q.Get("IngestPartitions"), ahead, retention)
	if err != nil {
		return nil, fmt.Errorf("maintain kpi_samples partitions: %w", err)
	}
	defer rows.Close()
	var out []PartitionChange
	for rows.Next() {
		var c PartitionChange
		if err := rows.Scan(&c.Action, &c.Partition, &c.Rows); err != nil {
			return nil, fmt.Errorf("maintain kpi_samples partitions: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("maintain kpi_samples partitions (ahead %d days, retention %d days): %w", ahead, retention, err)
	}
	return out, nil
}
