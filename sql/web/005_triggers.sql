-- mikro-sync web install, step 005: the enqueue triggers and the operator-retry trigger.
--
-- One trigger per table (the old tool's duplicates are removed by `setup` before this runs):
--   satis_sync_trigger    AFTER INSERT ON satislar    -> sync_queue ('satis', id)
--   tahsilat_sync_trigger AFTER INSERT ON tahsilatlar -> sync_queue ('tahsilat', id)
-- The row goes into sync_queue_inbox, the index-less child table of sync_queue (see
-- 003_sync_queue.sql): it is a sync_queue row for every query on sync_queue, and the worker
-- moves it into sync_queue itself, where the one-open-row rule is applied, when it claims.
-- AFTER INSERT only: an UPDATE of a sale or collection (including mikro-sync writing the Mikro
-- number back) never enqueues it again. Rows that came from the ERP (kaynak <> 'web') and
-- sessions that declare themselves the ERP origin (SET LOCAL mikro_sync.origin = 'erp') are
-- skipped by the first statement of the function, not by a WHEN clause on the trigger:
-- PostgreSQL re-reads and re-plans a trigger's WHEN expression for every INSERT statement
-- (~57k instructions per web sale, measured with callgrind: 5 % of a header+line transaction),
-- while plpgsql keeps its IF compiled for the session.
--
-- Waking the worker without slowing the web app (NOTIFY takes a cluster-wide lock at commit,
-- which serialises concurrent committers):
--  * the payload is constant, so a transaction inserting many rows notifies once;
--  * an idle worker holds the session advisory lock 7883950761929046382 ('mikrosyn')
--    EXCLUSIVELY on its LISTEN connection. The trigger tries to take it SHARED for the rest of
--    its transaction. It gets it only when no worker is idle (all are draining, or there is no
--    worker), and then skips the notify. Before going idle a worker takes the lock exclusively,
--    which waits until every such writer has committed (their rows are then visible), and
--    drains once more. A shared try-lock also fails while an exclusive request is queued, so
--    the failure case notifies: never a missed wake-up, at worst a spare notify.
--
-- One function per table, with its entity type written in: reading a trigger argument
-- (TG_ARGV[0]) builds the argument array and a subscript on every call, a measurable share of
-- a 1-line web sale (docs/benchmarks.md, "Web insert rate").
--
-- The sale's function also names the sale this transaction inserted (mikro_sync.new_sale,
-- transaction-local), so the divergence trigger on its lines (006_divergence.sql) knows without
-- a probe that they are written with their sale, not added to a posted one.
CREATE OR REPLACE FUNCTION mikro_sync_enqueue_satis() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_set text;
BEGIN
    IF (NEW.kaynak IS NOT NULL AND NEW.kaynak <> 'web')
       OR current_setting('mikro_sync.origin', true) = 'erp' THEN
        RETURN NULL;
    END IF;
    -- An assignment, not PERFORM: plpgsql evaluates it without the SQL executor.
    v_set := set_config('mikro_sync.new_sale', NEW.id::text, true);
    INSERT INTO sync_queue_inbox (entity_type, entity_id, operation)
    VALUES ('satis', NEW.id, 'insert');
    IF NOT pg_try_advisory_xact_lock_shared(7883950761929046382) THEN
        PERFORM pg_notify('mikro_sync_queue', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mikro_sync_enqueue_tahsilat() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.kaynak IS NOT NULL AND NEW.kaynak <> 'web')
       OR current_setting('mikro_sync.origin', true) = 'erp' THEN
        RETURN NULL;
    END IF;
    INSERT INTO sync_queue_inbox (entity_type, entity_id, operation)
    VALUES ('tahsilat', NEW.id, 'insert');
    IF NOT pg_try_advisory_xact_lock_shared(7883950761929046382) THEN
        PERFORM pg_notify('mikro_sync_queue', '');
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS satis_sync_trigger ON satislar;
CREATE TRIGGER satis_sync_trigger
    AFTER INSERT ON satislar
    FOR EACH ROW
    EXECUTE FUNCTION mikro_sync_enqueue_satis();

DROP TRIGGER IF EXISTS tahsilat_sync_trigger ON tahsilatlar;
CREATE TRIGGER tahsilat_sync_trigger
    AFTER INSERT ON tahsilatlar
    FOR EACH ROW
    EXECUTE FUNCTION mikro_sync_enqueue_tahsilat();

-- The one function both triggers called before (with the entity type as argument).
DROP FUNCTION IF EXISTS mikro_sync_enqueue();

-- The operators' retry query `UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE
-- status = 'failed'` must lead to a retry within seconds: a row going back to pending from
-- failed/completed becomes due now, gets a fresh retry window, and the worker is notified.
-- A row whose document already has another open row is left as it is (instead of the whole
-- UPDATE failing on the one-open-row index).
CREATE OR REPLACE FUNCTION mikro_sync_requeued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sync_queue o
               WHERE o.entity_type = NEW.entity_type AND o.entity_id = NEW.entity_id
                 AND o.id <> NEW.id AND o.status IN ('pending', 'processing')) THEN
        RETURN NULL;
    END IF;
    -- A posted document re-queued: it is not posted again, and that is recorded
    -- (006_divergence.sql).
    IF OLD.status = 'completed' THEN
        PERFORM mikro_sync_requeue_check(NEW.entity_type, NEW.entity_id);
    END IF;
    NEW.next_attempt_at := now();
    NEW.first_attempt_at := NULL;
    NEW.claimed_by := NULL;
    NEW.claimed_at := NULL;
    NEW.lease_until := NULL;
    NEW.lease_expiries := 0;
    NEW.posting_started_at := NULL;
    NEW.processed_at := NULL;
    PERFORM pg_notify('mikro_sync_queue', '');
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS sync_queue_requeue_trigger ON sync_queue;
CREATE TRIGGER sync_queue_requeue_trigger
    BEFORE UPDATE OF status ON sync_queue
    FOR EACH ROW
    WHEN (OLD.status IN ('failed', 'completed') AND NEW.status = 'pending')
    EXECUTE FUNCTION mikro_sync_requeued();
