// Package ingest carries KPI samples and health events from an agent into PostgreSQL, exactly
// once, without losing them while the database is away.
//
//	collectors ─Put→ Shipper ─(memory queue, bounded)─→ Writer ─→ PostgreSQL
//	                    └──(database down / queue full)→ on-disk spool ─┘
//
// A Batch is one host's samples and events; the Shipper gives it the agent's id and the next
// sequence number, which it keeps on disk so they go on increasing across restarts. The Writer
// delivers a batch in one transaction together with its ingest_batches record, so a batch sent
// again after a lost commit reply or a crash is found and skipped: nothing is lost and nothing
// is written twice. The Shipper never blocks its caller on the database: while PostgreSQL is
// unreachable it spools batches to disk (length+CRC framed segment files, fsynced; a torn tail is
// detected and cut off), drains them in order once it is back, drops the oldest spooled batches
// only when its disk budget is spent (counted and logged), and sets aside a batch the database
// refuses for what it holds (Dir/rejected/) so that the queue goes on.
//
// The agent connects as a member of the drover_agent role (sql/migrations/002_ingest.up.sql): it
// may insert samples, events and series, and calls SECURITY DEFINER functions for the rest
// (kpi_latest, host_kpi_now, daily partitions: MaintainPartitions). It must not touch vnodes,
// jobs, placements or the migration journal, and does not decide anything: health/ and
// scheduler/ do.
package ingest
