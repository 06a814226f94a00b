-- 004_host_state, undone: host_health alone holds the hosts' health again.
DROP TRIGGER host_health_to_now_upd ON host_health;
DROP TRIGGER host_health_to_now_ins_del ON host_health;
DROP FUNCTION host_health_to_now();
DROP TRIGGER host_kpi_now_health ON host_kpi_now;
DROP FUNCTION host_kpi_now_health();
ALTER TABLE host_kpi_now DROP COLUMN predicted_breach_at, DROP COLUMN health_state;
