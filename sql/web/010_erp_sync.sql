-- mikro-sync web install, step 010: ERP -> web sync state (watermarks and retry list).
-- Owned by src/erp_sync. Idempotent.

-- One row per entity: the highest (lastup_date, RECno) applied (written in the same transaction
-- as the rows), Mikro's exact datetime (days since 1900-01-01 + 1/300 s ticks) for exact
-- comparison, `checked_until`: the company wall-clock time a run started reading (the next run
-- re-reads from min(last stamp, checked_until) - overlap), and `last_full_read`: when the
-- entity was last re-read in full (sync --full or the periodic re-read).
CREATE TABLE IF NOT EXISTS int_erp_sync_watermark (
    entity            varchar(32) PRIMARY KEY,
    wm_lastup         timestamp,
    wm_days           integer,
    wm_ticks          integer,
    wm_recno          integer,
    checked_until     timestamp,
    last_delete_check timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE int_erp_sync_watermark ADD COLUMN IF NOT EXISTS last_full_read timestamptz;

-- Mikro rows that could not be applied (bad value, unknown stock, …): re-read by RECno on every
-- run until they apply or disappear from Mikro. Operators: SELECT * FROM int_erp_sync_retry;
CREATE TABLE IF NOT EXISTS int_erp_sync_retry (
    entity      varchar(32) NOT NULL,
    recno       integer NOT NULL,
    erp_key     text NOT NULL,
    reason      text NOT NULL,
    attempts    integer NOT NULL DEFAULT 1,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, recno)
);
