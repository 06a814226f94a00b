-- 005_host_kpi_now_order, undone: nothing to do. The columns are the same in either order, and
-- 004's down drops its two by name.
DO $$ BEGIN END $$;
