-- mikro-sync web install, step 003: the queue `sync_queue`, created or adopted.
--
-- A table left by the old Node tool (uuid id, entity_type, entity_id, operation, status,
-- retry_count, error_message, created_at, processed_at) is adopted in place: missing columns are
-- added, statuses and entity types are normalised to the one lower-case spelling, rows stuck in
-- `processing` by a crash are released, duplicate open rows are merged. Nothing is ever deleted.
--
-- Claiming model (see src/queue/claimer.rs): a worker claims rows by setting status='processing',
-- claimed_by, claimed_at and a short lease `lease_until`, which it extends while it works. A row
-- whose lease ran out (the worker died: kill -9, power loss) is put back to 'pending' by the
-- rescuer of any live worker. We do not hold a row lock for the whole posting: that would keep a
-- web transaction (and connection) open across every ERP round trip, and make `processing`
-- invisible to the operators' status query.

CREATE TABLE IF NOT EXISTS sync_queue (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    entity_type   varchar(20) NOT NULL,
    entity_id     uuid NOT NULL,
    operation     varchar(20) NOT NULL DEFAULT 'insert',
    status        varchar(20) NOT NULL DEFAULT 'pending',
    retry_count   integer NOT NULL DEFAULT 0,
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz
);

-- Columns the old tool may lack, and mikro-sync's own.
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS operation        varchar(20) DEFAULT 'insert';
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS retry_count      integer DEFAULT 0;
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS error_message    text;
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS created_at       timestamptz DEFAULT now();
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS processed_at     timestamptz;
-- When the next attempt may start (backoff is persisted here, so a restart keeps the schedule).
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS next_attempt_at  timestamptz DEFAULT now();
-- Start of the current retry window (total transient retry time, settle window for lines).
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS first_attempt_at timestamptz;
-- Who holds the row (host:pid:worker) and until when, while status = 'processing'.
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS claimed_by       text;
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS claimed_at       timestamptz;
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS lease_until      timestamptz;
-- Lease expiries charged to the row (its worker crashed or hung while posting it; the first
-- expiry is charged to every row the worker held, later ones only while it was being posted,
-- which the worker marks in posting_started_at); past a limit the row ends failed.
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS lease_expiries     integer NOT NULL DEFAULT 0;
ALTER TABLE sync_queue ADD COLUMN IF NOT EXISTS posting_started_at timestamptz;

-- Defaults the old table may lack (only set when none exists, so a web app's own default stays).
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT a.attname,
               CASE a.attname
                   WHEN 'id' THEN 'gen_random_uuid()'
                   WHEN 'status' THEN '''pending'''
                   WHEN 'operation' THEN '''insert'''
                   WHEN 'retry_count' THEN '0'
                   WHEN 'created_at' THEN 'now()'
                   WHEN 'next_attempt_at' THEN 'now()'
               END AS dflt
        FROM pg_attribute a
        WHERE a.attrelid = 'sync_queue'::regclass
          AND a.attname IN ('id', 'status', 'operation', 'retry_count', 'created_at', 'next_attempt_at')
          AND NOT a.attisdropped
          AND NOT a.atthasdef
    LOOP
        EXECUTE format('ALTER TABLE sync_queue ALTER COLUMN %I SET DEFAULT %s', c.attname, c.dflt);
    END LOOP;
END
$$;

-- Old CHECK constraints on status / entity_type (e.g. upper-case spellings) would reject the
-- normalisation below; mikro-sync's own constraints replace them.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'sync_queue'::regclass AND contype = 'c'
          AND conname <> 'mikro_sync_queue_row_chk'
          AND (pg_get_constraintdef(oid) ILIKE '%status%' OR pg_get_constraintdef(oid) ILIKE '%entity_type%')
    LOOP
        EXECUTE format('ALTER TABLE sync_queue DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;

-- Normalise data left by the old tool (every statement is a no-op on mikro-sync's own rows).
UPDATE sync_queue SET retry_count = 0 WHERE retry_count IS NULL;
UPDATE sync_queue SET created_at = now() WHERE created_at IS NULL;
UPDATE sync_queue SET next_attempt_at = now() WHERE next_attempt_at IS NULL;
UPDATE sync_queue SET operation = 'insert' WHERE operation IS NULL;
UPDATE sync_queue SET status = lower(btrim(status))
 WHERE status IS DISTINCT FROM lower(btrim(status)) AND status IS NOT NULL;
UPDATE sync_queue SET status = 'pending' WHERE status IS NULL OR status IN ('', 'new', 'queued', 'waiting');
UPDATE sync_queue SET status = 'completed' WHERE status IN ('done', 'success', 'succeeded', 'processed', 'complete');
UPDATE sync_queue SET status = 'failed' WHERE status IN ('error', 'errored', 'fail');
UPDATE sync_queue
   SET error_message = 'unknown status ''' || status || ''' left by the old tool'
                       || coalesce(': ' || error_message, ''),
       status = 'failed'
 WHERE status NOT IN ('pending', 'processing', 'completed', 'failed', 'diverged');
UPDATE sync_queue SET entity_type = lower(btrim(entity_type))
 WHERE entity_type IS DISTINCT FROM lower(btrim(entity_type)) AND entity_type IS NOT NULL;
UPDATE sync_queue SET entity_type = 'satis' WHERE entity_type IN ('satislar', 'sale', 'sales', 'satış', 'invoice');
UPDATE sync_queue SET entity_type = 'tahsilat' WHERE entity_type IN ('tahsilatlar', 'collection', 'collections', 'payment');
-- A type mikro-sync cannot post stays in the table (never dropped) but is parked as failed.
UPDATE sync_queue
   SET status = 'failed',
       error_message = 'unknown entity_type ''' || coalesce(entity_type, 'NULL')
                       || ''': mikro-sync posts only ''satis'' and ''tahsilat''; fix the value or delete the row'
 WHERE (entity_type IS NULL OR entity_type NOT IN ('satis', 'tahsilat')) AND status <> 'failed';
UPDATE sync_queue
   SET status = 'failed',
       error_message = 'entity_id is NULL: this row names no document; delete it'
 WHERE entity_id IS NULL AND status <> 'failed';
-- Rows a crashed old worker left in 'processing' (they have no lease) go back to pending.
UPDATE sync_queue
   SET status = 'pending', next_attempt_at = now(), claimed_by = NULL, claimed_at = NULL
 WHERE status = 'processing' AND lease_until IS NULL;
-- Several open rows for one document (the old tool's duplicate triggers): keep the oldest open,
-- mark the others completed with a note naming the survivor.
WITH ranked AS (
    SELECT id, first_value(id) OVER w AS keep_id, row_number() OVER w AS rn
    FROM sync_queue
    WHERE status IN ('pending', 'processing')
    WINDOW w AS (PARTITION BY entity_type, entity_id ORDER BY (status = 'processing') DESC, created_at, id)
)
UPDATE sync_queue q
   SET status = 'completed', processed_at = now(),
       error_message = 'duplicate of queue row ' || r.keep_id || ', merged by mikro-sync setup'
  FROM ranked r
 WHERE q.id = r.id AND r.rn > 1;

ALTER TABLE sync_queue ALTER COLUMN status SET NOT NULL;
ALTER TABLE sync_queue ALTER COLUMN retry_count SET NOT NULL;
ALTER TABLE sync_queue ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE sync_queue ALTER COLUMN next_attempt_at SET NOT NULL;

-- The row CHECK: status is one of the four, or 'diverged' (an edit after posting, see
-- 006_divergence.sql), entity_type one of the two mikro-sync posts.
-- It calls a small IMMUTABLE plpgsql function instead of spelling the lists inline: PostgreSQL
-- re-reads (stringToNode) and re-plans every CHECK expression once per INSERT statement, and an
-- inline `IN (...)` list over varchar costs ~100k instructions per web sale that way (measured
-- with callgrind: 2 inline CHECKs = 10 % of a header+line web transaction); a one-argument-list
-- function call costs a fraction of it. NULLs fail the check (a plain CHECK would let them
-- through). The constraint is NOT VALID when parked rows with an unknown entity_type exist (so
-- they are kept), validated otherwise; either way it rejects every new bad row.
CREATE OR REPLACE FUNCTION mikro_sync_queue_row_ok(p_status varchar, p_entity_type varchar)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN coalesce(p_status IN ('pending', 'processing', 'completed', 'failed', 'diverged')
                    AND p_entity_type IN ('satis', 'tahsilat'), false);
END
$$;

-- NO INHERIT: the inbox below has no CHECK (see there); an older install's inherited constraint
-- is replaced.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'sync_queue'::regclass AND conname = 'mikro_sync_queue_row_chk'
                 AND NOT connoinherit) THEN
        ALTER TABLE sync_queue DROP CONSTRAINT mikro_sync_queue_row_chk;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'sync_queue'::regclass AND conname = 'mikro_sync_queue_row_chk') THEN
        ALTER TABLE sync_queue ADD CONSTRAINT mikro_sync_queue_row_chk
            CHECK (mikro_sync_queue_row_ok(status, entity_type)) NO INHERIT NOT VALID;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = 'sync_queue'::regclass AND conname = 'mikro_sync_queue_row_chk'
                 AND NOT convalidated)
       AND NOT EXISTS (SELECT 1 FROM ONLY sync_queue WHERE NOT mikro_sync_queue_row_ok(status, entity_type)) THEN
        ALTER TABLE sync_queue VALIDATE CONSTRAINT mikro_sync_queue_row_chk;
    END IF;
END
$$;

-- At most one open (pending/processing) row per document: the enqueue trigger's
-- ON CONFLICT ... DO NOTHING relies on exactly this index (same columns, same predicate).
CREATE UNIQUE INDEX IF NOT EXISTS sync_queue_one_open_idx
    ON sync_queue (entity_type, entity_id) WHERE status IN ('pending', 'processing');
-- The claim query: ready rows in next_attempt_at order.
CREATE INDEX IF NOT EXISTS sync_queue_ready_idx
    ON sync_queue (next_attempt_at) WHERE status = 'pending';
-- No index of its own for the rescuer (claimed rows by lease end): its query
-- (status = 'processing' AND lease_until < now) is answered from sync_queue_one_open_idx, whose
-- predicate covers it, and open rows are few. Every index here is paid for by every web INSERT
-- (the trigger's queue row); the one this file used to create is dropped.
DROP INDEX IF EXISTS sync_queue_lease_idx;
-- No index on entity_id alone: every index is paid for by every web INSERT (the trigger's
-- queue row), and looking one document up is an occasional operator query.
DROP INDEX IF EXISTS sync_queue_entity_idx;

-- The inbox: where the web triggers put new rows (sql/web/005_triggers.sql).
--
-- A child table of sync_queue (PostgreSQL inheritance): it has every column, default and NOT
-- NULL of sync_queue, but none of its indexes and not its row CHECK. Everything that reads or updates
-- `sync_queue` without ONLY sees its rows too, so the operators' queries (counts by status,
-- pending rows, the retry UPDATE) show a sale the moment the web app commits it. What the web
-- app's transaction pays is a heap insert: the three indexes and the ON CONFLICT arbiter check
-- of sync_queue cost a 1-line web sale 6-11 points of its insert rate with 16 writers (e.g. 73 %
-- of the no-trigger rate against 83 % with the inbox; `cargo bench --bench pipeline`, section 4).
--
-- Every claim of the worker (src/queue/claimer.rs) moves the inbox into sync_queue in the same
-- statement: `INSERT ... ON CONFLICT DO NOTHING` on sync_queue's indexes, so a document that
-- already has an open row (a sale deleted and inserted again with the same id while queued)
-- does not get a second one — the same rule the trigger applied when it wrote into sync_queue
-- itself. The inbox is normally empty or holds the rows of the last few milliseconds; while no
-- worker runs it holds the backlog, which the first claim moves in one statement.
CREATE TABLE IF NOT EXISTS sync_queue_inbox () INHERITS (sync_queue);
-- No CHECK on the inbox: PostgreSQL prepares a table's CHECK expressions again for every INSERT
-- statement, and the trigger's INSERT is one statement per web document (a measurable share of a
-- 1-line web sale; docs/benchmarks.md, "Web insert rate"). The trigger writes
-- only valid rows ('pending', the trigger's entity type), and the worker's move puts every row
-- through sync_queue's CHECK. What could make a row the move cannot put there is an UPDATE on
-- sync_queue that reaches the inbox (an operator's): this trigger rejects it as the CHECK would.
CREATE OR REPLACE FUNCTION mikro_sync_inbox_row_rejected() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'new row for relation "%" violates check constraint "mikro_sync_queue_row_chk"',
                    TG_TABLE_NAME
        USING ERRCODE = 'check_violation', CONSTRAINT = 'mikro_sync_queue_row_chk',
              TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA,
              DETAIL = format('status %L, entity_type %L', NEW.status, NEW.entity_type);
END
$$;
DROP TRIGGER IF EXISTS sync_queue_inbox_check_trigger ON sync_queue_inbox;
CREATE TRIGGER sync_queue_inbox_check_trigger
    BEFORE UPDATE ON sync_queue_inbox
    FOR EACH ROW
    WHEN (NOT mikro_sync_queue_row_ok(NEW.status, NEW.entity_type))
    EXECUTE FUNCTION mikro_sync_inbox_row_rejected();
-- Rows are deleted as fast as they come: let autovacuum keep the heap small.
ALTER TABLE sync_queue_inbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);
-- Privileges: the triggers run as the web app's role, so whoever may write sync_queue may write
-- the inbox; the worker's move deletes from it, so whoever may UPDATE sync_queue (the daemon's
-- role) may also DELETE from the inbox. Mirrored from sync_queue's grants and owner whenever
-- setup applies this file (GRANT is idempotent); a web role without them would have its sales
-- rejected. Grants made by hand later are not mirrored: `mikro-sync doctor` names what is missing.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                             ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who,
               a.privilege_type AS priv
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = 'sync_queue'::regclass
           AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
        UNION
        SELECT quote_ident(pg_get_userbyid(c.relowner)), p
          FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p
         WHERE c.oid = 'sync_queue'::regclass
    LOOP
        EXECUTE format('GRANT %s ON sync_queue_inbox TO %s', r.priv, r.who);
        IF r.priv = 'UPDATE' THEN
            EXECUTE format('GRANT DELETE ON sync_queue_inbox TO %s', r.who);
        END IF;
    END LOOP;
END
$$;
