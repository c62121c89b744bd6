-- mikro-sync web install, step 006: edits and deletes after posting are recorded, never silent.
--
-- Model. A document is *posted* once its Mikro number is written back (satislar.fatura_sira_no,
-- tahsilatlar.tahsilat_sira_no: the worker writes it in the same statement that completes the
-- queue row). After that, the web app can still change it; mikro-sync never writes such a
-- change into Mikro (there are no captures of how the Mikro program edits or cancels a
-- document), so each one is recorded as a *divergence*: a sync_queue row with
-- status = 'diverged' and operation 'update' / 'delete' / 'lines' / 'reinsert' / 'requeue', whose
-- error_message says what changed (old -> new of the business fields, lines added, removed or
-- changed, deleted, re-inserted with other content) and what to do in Mikro. There is at most
-- one such row per document (unique index below): further events are appended to its message.
-- The operator fixes Mikro, then closes it:
--   UPDATE sync_queue SET status = 'completed' WHERE status = 'diverged' AND entity_id = '<id>';
-- 'diverged' rows are not open (the one-open-row index and the claim ignore them), and the
-- operators' retry query (status = 'failed') does not touch them.
--
-- Not edits: writing the Mikro number back, and every column that is not a business field
-- (guncelleme_tarihi, kaynak, the number columns, columns the web app adds for itself): only the
-- fields posting reads are compared (mikro_sync_business below).
--
-- Changes while a document is being posted (after the claim read it, before its number is
-- written back) are found by the completion itself: mikro_sync_posted_check at the end.
--
-- Cost on the web app's write path: on INSERT into satislar, the enqueue trigger names the
-- sale in a transaction-local setting (005_triggers.sql). The UPDATE triggers have a WHEN
-- clause on the number columns, so an UPDATE of a document that was not posted does not call
-- plpgsql. A new line (INSERT into satis_kalemleri) pays a plpgsql call of its own trigger that
-- compares its sale with that setting, and a primary-key probe of its sale only when another
-- transaction inserted the sale; see docs/benchmarks.md for the measured rate.

-- One open divergence per document; also the lookup the re-insert check and status use.
CREATE UNIQUE INDEX IF NOT EXISTS sync_queue_diverged_idx
    ON sync_queue (entity_type, entity_id) WHERE status = 'diverged';

-- A deleted posted document's content, kept so a re-insert with the same id can be compared.
CREATE TABLE IF NOT EXISTS int_divergence_snapshot (
    entity_type varchar(20) NOT NULL,
    entity_id   uuid NOT NULL,
    header      jsonb NOT NULL,
    lines       jsonb,
    taken_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity_type, entity_id)
);

-- The business fields of a row (those posting reads), from its jsonb form. Missing columns are
-- skipped, so a web schema without some of them keeps working.
CREATE OR REPLACE FUNCTION mikro_sync_business(p_kind text, p_row jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, p_row -> k), '{}'::jsonb)
      FROM unnest(CASE p_kind
          WHEN 'satis' THEN ARRAY['cari_hesap_id', 'satis_tarihi', 'satis_tipi', 'odeme_sekli',
              'ara_toplam', 'indirim_tutari', 'kdv_tutari', 'toplam_tutar', 'notlar', 'kasa_id',
              'banka_id', 'belge_no', 'iskonto1', 'iskonto2', 'iskonto3', 'iskonto4', 'iskonto5',
              'iskonto6']
          WHEN 'tahsilat' THEN ARRAY['cari_hesap_id', 'tahsilat_tarihi', 'tahsilat_tipi', 'tutar',
              'banka_id', 'kasa_id', 'cek_no', 'vade_tarihi', 'banka_adi', 'aciklama', 'belge_no']
          ELSE ARRAY['stok_id', 'miktar', 'birim_fiyat', 'kdv_orani', 'kdv_tutari', 'toplam_tutar',
              'sira_no', 'notlar', 'iskonto1', 'iskonto2', 'iskonto3', 'iskonto4', 'iskonto5',
              'iskonto6']
      END) AS k
     WHERE p_row ? k
$$;

-- "field old -> new, ..." for the fields that differ; NULL when none does.
CREATE OR REPLACE FUNCTION mikro_sync_diff(p_old jsonb, p_new jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(format('%s %s → %s', k, coalesce(p_old ->> k, 'NULL'),
                             coalesce(p_new ->> k, 'NULL')), ', ' ORDER BY k)
      FROM (SELECT DISTINCT jsonb_object_keys(p_old || p_new) AS k) x
     WHERE p_old -> k IS DISTINCT FROM p_new -> k
$$;

-- One line, as an operator recognises it: "line 2 (STK-0001, 3 × 10.00)".
CREATE OR REPLACE FUNCTION mikro_sync_line_text(p_line jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT format('line %s (%s, %s × %s)', coalesce(p_line ->> 'sira_no', '?'),
                  coalesce((SELECT st.stok_kodu FROM stoklar st
                             WHERE st.id = (p_line ->> 'stok_id')::uuid),
                           p_line ->> 'stok_id', 'no product'),
                  coalesce(p_line ->> 'miktar', '?'), coalesce(p_line ->> 'birim_fiyat', '?'))
$$;

-- Lines added, removed or changed between two jsonb arrays of lines (keyed by line id).
CREATE OR REPLACE FUNCTION mikro_sync_lines_diff(p_old jsonb, p_new jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH o AS (SELECT e ->> 'id' AS id, e AS l FROM jsonb_array_elements(coalesce(p_old, '[]')) e),
         n AS (SELECT e ->> 'id' AS id, e AS l FROM jsonb_array_elements(coalesce(p_new, '[]')) e)
    SELECT string_agg(t, '; ' ORDER BY t) FROM (
        SELECT 'added ' || mikro_sync_line_text(n.l) AS t
          FROM n WHERE NOT EXISTS (SELECT 1 FROM o WHERE o.id = n.id)
        UNION ALL
        SELECT 'removed ' || mikro_sync_line_text(o.l)
          FROM o WHERE NOT EXISTS (SELECT 1 FROM n WHERE n.id = o.id)
        UNION ALL
        SELECT 'changed ' || mikro_sync_line_text(o.l) || ': '
               || mikro_sync_diff(mikro_sync_business('line', o.l), mikro_sync_business('line', n.l))
          FROM o JOIN n ON n.id = o.id
         WHERE mikro_sync_business('line', o.l) IS DISTINCT FROM mikro_sync_business('line', n.l)
    ) x
$$;

-- Records the document's divergence row, or adds this event to it: the message lists every
-- event in order, and ends with what to do about the latest one.
CREATE OR REPLACE FUNCTION mikro_sync_diverge(p_kind text, p_id uuid, p_doc_no text,
                                              p_number text, p_op text, p_what text,
                                              p_todo text) RETURNS void
-- Runs with setup's rights: the web app's role need not be allowed to update sync_queue.
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_before text;
    v_what text := p_what;
BEGIN
    SELECT substring(q.error_message FROM 'posted to Mikro as [^:]*: (.*)\. mikro-sync writes no change')
      INTO v_before
      FROM sync_queue q
     WHERE q.status = 'diverged' AND q.entity_type = p_kind AND q.entity_id = p_id
       FOR UPDATE;
    IF v_before IS NOT NULL THEN
        v_what := left(v_before, 3000) || ' | then ' || p_what;
    END IF;
    v_what := format('%s %s (web id %s), posted to Mikro as %s: %s. mikro-sync writes no change '
                     'into Mikro: %s, then close this row: UPDATE sync_queue SET status = '
                     '''completed'' WHERE status = ''diverged'' AND entity_id = ''%s''',
                     CASE p_kind WHEN 'satis' THEN 'sale' ELSE 'collection' END,
                     coalesce(nullif(p_doc_no, ''), '(no number)'), p_id, p_number, v_what,
                     p_todo, p_id);
    INSERT INTO sync_queue (entity_type, entity_id, operation, status, error_message, processed_at)
    VALUES (p_kind, p_id, p_op, 'diverged', v_what, now())
    ON CONFLICT (entity_type, entity_id) WHERE status = 'diverged' DO UPDATE
       SET operation = EXCLUDED.operation,
           error_message = EXCLUDED.error_message,
           processed_at = now();
END
$$;

-- satislar / tahsilatlar: UPDATE (WHEN the number is or becomes set) and BEFORE DELETE.
-- TG_ARGV: kind, number-series column, number column, document-number column.
CREATE OR REPLACE FUNCTION mikro_sync_doc_changed() RETURNS trigger
-- Runs with setup's rights (it keeps int_divergence_snapshot); only on UPDATEs of posted or
-- just-posted documents and on DELETEs, never on the INSERT path.
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    v_kind text := TG_ARGV[0];
    o jsonb := to_jsonb(OLD);
    n jsonb;
    v_num text;
    v_diff text;
    v_lines jsonb;
    snap record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF o ->> TG_ARGV[2] IS NULL THEN
            RETURN OLD;
        END IF;
        v_num := coalesce(o ->> TG_ARGV[1], '') || '-' || (o ->> TG_ARGV[2]);
        IF v_kind = 'satis' THEN
            SELECT jsonb_agg(to_jsonb(k) ORDER BY k.sira_no, k.id) INTO v_lines
              FROM satis_kalemleri k WHERE k.satis_id = OLD.id;
        END IF;
        INSERT INTO int_divergence_snapshot (entity_type, entity_id, header, lines)
        VALUES (v_kind, OLD.id, o, v_lines)
        ON CONFLICT (entity_type, entity_id) DO UPDATE
           SET header = EXCLUDED.header, lines = EXCLUDED.lines, taken_at = now();
        PERFORM mikro_sync_diverge(v_kind, OLD.id, o ->> TG_ARGV[3], v_num, 'delete',
                                   'deleted on the web',
                                   format('cancel %s in the Mikro program (or delete it there)', v_num));
        RETURN OLD;
    END IF;
    n := to_jsonb(NEW);
    IF o ->> TG_ARGV[2] IS NOT NULL THEN
        -- Posted before this UPDATE: did a business field change?
        v_num := coalesce(o ->> TG_ARGV[1], '') || '-' || (o ->> TG_ARGV[2]);
        v_diff := mikro_sync_diff(mikro_sync_business(v_kind, o), mikro_sync_business(v_kind, n));
        IF v_diff IS NOT NULL THEN
            PERFORM mikro_sync_diverge(v_kind, NEW.id, n ->> TG_ARGV[3], v_num, 'update',
                                       'changed on the web: ' || v_diff,
                                       format('change %s in the Mikro program to match', v_num));
        END IF;
        RETURN NULL;
    END IF;
    -- The number is being written back now. A document deleted after posting and inserted
    -- again with the same id was completed from the ledger: compare it with what was posted.
    SELECT * INTO snap FROM int_divergence_snapshot
     WHERE entity_type = v_kind AND entity_id = NEW.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM int_divergence_snapshot WHERE entity_type = v_kind AND entity_id = NEW.id;
    v_num := coalesce(n ->> TG_ARGV[1], '') || '-' || (n ->> TG_ARGV[2]);
    v_diff := mikro_sync_diff(mikro_sync_business(v_kind, snap.header), mikro_sync_business(v_kind, n));
    IF v_kind = 'satis' THEN
        SELECT jsonb_agg(to_jsonb(k) ORDER BY k.sira_no, k.id) INTO v_lines
          FROM satis_kalemleri k WHERE k.satis_id = NEW.id;
        -- Re-inserted lines have new ids: compare them by position instead.
        v_diff := concat_ws('; ', v_diff, (
            SELECT string_agg(t, '; ' ORDER BY t) FROM (
                SELECT CASE
                    WHEN o.l IS NULL THEN 'added ' || mikro_sync_line_text(n.l)
                    WHEN n.l IS NULL THEN 'removed ' || mikro_sync_line_text(o.l)
                    ELSE 'changed ' || mikro_sync_line_text(o.l) || ': '
                         || mikro_sync_diff(mikro_sync_business('line', o.l) - 'sira_no',
                                            mikro_sync_business('line', n.l) - 'sira_no')
                    END AS t
                  FROM (SELECT e AS l, row_number() OVER () AS i
                          FROM jsonb_array_elements(coalesce(snap.lines, '[]')) e) o
                  FULL JOIN (SELECT e AS l, row_number() OVER () AS i
                               FROM jsonb_array_elements(coalesce(v_lines, '[]')) e) n ON n.i = o.i
                 WHERE o.l IS NULL OR n.l IS NULL
                    OR mikro_sync_business('line', o.l) - 'sira_no'
                       IS DISTINCT FROM mikro_sync_business('line', n.l) - 'sira_no') x));
        v_diff := nullif(v_diff, '');
    END IF;
    PERFORM mikro_sync_diverge(v_kind, NEW.id, n ->> TG_ARGV[3], v_num, 'reinsert',
        CASE WHEN v_diff IS NULL
             THEN 're-inserted on the web with the same content it was posted with'
             ELSE 're-inserted on the web with other content than it was posted with: ' || v_diff END,
        CASE WHEN v_diff IS NULL
             THEN format('%s in Mikro matches the web document; nothing to change in Mikro', v_num)
             ELSE format('change %s in the Mikro program to match', v_num) END);
    RETURN NULL;
END
$$;

-- The same two triggers on both document tables: satis_divergence_update_trigger,
-- satis_divergence_delete_trigger ON satislar; tahsilat_divergence_update_trigger,
-- tahsilat_divergence_delete_trigger ON tahsilatlar. Row: table, kind, and the TG_ARGV columns.
DO $$
DECLARE
    t text[];
BEGIN
    FOREACH t SLICE 1 IN ARRAY ARRAY[
        ['satislar', 'satis', 'fatura_seri_no', 'fatura_sira_no', 'satis_no'],
        ['tahsilatlar', 'tahsilat', 'tahsilat_seri_no', 'tahsilat_sira_no', 'tahsilat_no']]
    LOOP
        EXECUTE format(
            'DROP TRIGGER IF EXISTS %2$s_divergence_update_trigger ON %1$I;
             CREATE TRIGGER %2$s_divergence_update_trigger
                 AFTER UPDATE ON %1$I
                 FOR EACH ROW
                 WHEN (OLD.%4$I IS NOT NULL OR NEW.%4$I IS NOT NULL)
                 EXECUTE FUNCTION mikro_sync_doc_changed(%2$L, %3$L, %4$L, %5$L);
             DROP TRIGGER IF EXISTS %2$s_divergence_delete_trigger ON %1$I;
             CREATE TRIGGER %2$s_divergence_delete_trigger
                 BEFORE DELETE ON %1$I
                 FOR EACH ROW
                 WHEN (OLD.%4$I IS NOT NULL)
                 EXECUTE FUNCTION mikro_sync_doc_changed(%2$L, %3$L, %4$L, %5$L)',
            t[1], t[2], t[3], t[4], t[5]);
    END LOOP;
END
$$;

-- satis_kalemleri: a line added to, changed in or removed from a posted sale. The INSERT path
-- is the web app's hot path, so it has a trigger and function of its own that evaluate one
-- expression: a line inserted in the transaction that inserted its sale (the enqueue trigger
-- names that sale in mikro_sync.new_sale, 005_triggers.sql) is part of writing the sale, which
-- cannot be posted yet. Any other line, and every UPDATE or DELETE of a line, costs one probe of
-- its sale by primary key (mikro_sync_line_event), which share-locks it, nothing else unless
-- the sale is posted. A line removed because its sale is being deleted (ON DELETE CASCADE)
-- finds no sale: the sale's own trigger records the delete.
-- p_op: 'added' (p_new is the line), 'removed' (p_old), 'changed' (both).
CREATE OR REPLACE FUNCTION mikro_sync_line_event(p_op text, p_sale uuid, p_old satis_kalemleri,
                                                 p_new satis_kalemleri) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s jsonb;
    v_num text;
    v_what text;
BEGIN
    -- FOR SHARE, posted or not: a worker writing the number back holds the row, so this waits
    -- for it and then sees the number; a worker about to write it waits for this transaction,
    -- and its write-back check (mikro_sync_posted_check) then sees this line. One read: the
    -- row's jsonb form only when it is posted.
    SELECT CASE WHEN h.fatura_sira_no IS NOT NULL THEN to_jsonb(h) END INTO s
      FROM satislar h WHERE h.id = p_sale FOR SHARE;
    IF s IS NULL THEN
        RETURN;
    END IF;
    v_num := coalesce(s ->> 'fatura_seri_no', '') || '-' || (s ->> 'fatura_sira_no');
    IF p_op = 'added' THEN
        v_what := 'added ' || mikro_sync_line_text(to_jsonb(p_new));
    ELSIF p_op = 'removed' THEN
        v_what := 'removed ' || mikro_sync_line_text(to_jsonb(p_old));
    ELSE
        v_what := mikro_sync_diff(mikro_sync_business('line', to_jsonb(p_old)),
                                  mikro_sync_business('line', to_jsonb(p_new)));
        IF v_what IS NULL AND p_old.satis_id = p_new.satis_id THEN
            RETURN;
        END IF;
        v_what := 'changed ' || mikro_sync_line_text(to_jsonb(p_old)) || ': '
                  || coalesce(v_what, 'moved to another sale');
    END IF;
    PERFORM mikro_sync_diverge('satis', p_sale, s ->> 'satis_no', v_num, 'lines',
                               'line ' || v_what || ' on the web',
                               format('change the lines of %s in the Mikro program to match', v_num));
END
$$;

CREATE OR REPLACE FUNCTION mikro_sync_line_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.satis_id::text = current_setting('mikro_sync.new_sale', true) THEN
        RETURN NULL;
    END IF;
    PERFORM mikro_sync_line_event('added', NEW.satis_id, NULL, NEW);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION mikro_sync_line_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM mikro_sync_line_event('removed', OLD.satis_id, OLD, NULL);
    ELSE
        PERFORM mikro_sync_line_event('changed', NEW.satis_id, OLD, NEW);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS satis_kalemi_added_trigger ON satis_kalemleri;
CREATE TRIGGER satis_kalemi_added_trigger
    AFTER INSERT ON satis_kalemleri
    FOR EACH ROW
    EXECUTE FUNCTION mikro_sync_line_added();

DROP TRIGGER IF EXISTS satis_kalemi_divergence_trigger ON satis_kalemleri;
CREATE TRIGGER satis_kalemi_divergence_trigger
    AFTER UPDATE OR DELETE ON satis_kalemleri
    FOR EACH ROW
    EXECUTE FUNCTION mikro_sync_line_changed();

-- An operator re-queue (completed -> pending) of a document that is posted: the worker finds
-- its ledger row and completes it again without writing to Mikro; recorded so it is not silent.
-- Called by mikro_sync_requeued (005_triggers.sql).
CREATE OR REPLACE FUNCTION mikro_sync_requeue_check(p_kind text, p_id uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    d jsonb;
    v_num text;
BEGIN
    IF p_kind = 'satis' THEN
        SELECT to_jsonb(s) INTO d FROM satislar s WHERE s.id = p_id AND s.fatura_sira_no IS NOT NULL;
        v_num := coalesce(d ->> 'fatura_seri_no', '') || '-' || (d ->> 'fatura_sira_no');
    ELSE
        SELECT to_jsonb(t) INTO d FROM tahsilatlar t WHERE t.id = p_id AND t.tahsilat_sira_no IS NOT NULL;
        v_num := coalesce(d ->> 'tahsilat_seri_no', '') || '-' || (d ->> 'tahsilat_sira_no');
    END IF;
    IF d IS NULL THEN
        RETURN;
    END IF;
    PERFORM mikro_sync_diverge(p_kind, p_id,
        d ->> CASE p_kind WHEN 'satis' THEN 'satis_no' ELSE 'tahsilat_no' END, v_num, 'requeue',
        're-queued by an operator; it is not posted again (dbo.MIKROSYNC_LEDGER has it)',
        format('if %s in Mikro must change, change it in the Mikro program', v_num));
END
$$;

-- The write-back check: a document changed or deleted on the web after the worker's claim read
-- it and before its number is written back was posted with the content the claim read, and no
-- trigger above sees that change (the number was not set yet). The worker's completion
-- statement (FINISH_SQL in src/queue/store.rs) locks the headers it writes the numbers back to
-- and calls this once per batch with, per document, what the claim read (p_head: the header row
-- as row_to_json text; p_lines: the lines' row_to_json texts in posting order, joined by ',',
-- NULL for a collection) and the header as locked (p_now, same form; NULL when the row is gone).
-- Identical texts (the usual case) cost a string comparison; otherwise the business fields and
-- lines are compared and any difference is recorded as a divergence ('update', 'lines' or
-- 'delete'). VOLATILE: in READ COMMITTED its query takes a new snapshot, so it sees every line
-- change committed before the headers were locked; a later one waits for the header lock
-- (mikro_sync_line_changed takes it FOR SHARE) and then sees the number.
DROP FUNCTION IF EXISTS mikro_sync_posted_check(text[], uuid[], text[], jsonb[], jsonb[]);
CREATE OR REPLACE FUNCTION mikro_sync_posted_check(p_kind text[], p_id uuid[], p_number text[],
                                                   p_head text[], p_lines text[], p_now text[])
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
    v_h jsonb;
    v_n jsonb;
    v_bh jsonb;
    v_bn jsonb;
    v_lines jsonb;
    v_diff text;
    v_count integer := 0;
BEGIN
    FOR r IN
        SELECT d.kind, d.id, d.num, d.head, d.lines AS posted_lines, d.now, x.lines
          FROM unnest(p_kind, p_id, p_number, p_head, p_lines, p_now)
               AS d(kind, id, num, head, lines, now)
          LEFT JOIN LATERAL (
              SELECT string_agg(row_to_json(k)::text, ',' ORDER BY k.sira_no NULLS LAST,
                                k.olusturma_tarihi, k.id) AS lines
                FROM satis_kalemleri k WHERE d.kind = 'satis' AND k.satis_id = d.id) x ON true
         WHERE d.now IS DISTINCT FROM d.head OR x.lines IS DISTINCT FROM d.lines
    LOOP
        v_h := r.head::jsonb;
        IF r.now IS NULL THEN
            -- The row is gone (deleted after the claim, or while the completion waited for it).
            PERFORM mikro_sync_diverge(r.kind, r.id,
                v_h ->> CASE r.kind WHEN 'satis' THEN 'satis_no' ELSE 'tahsilat_no' END,
                r.num, 'delete', 'deleted on the web while it was being posted',
                format('cancel %s in the Mikro program (or delete it there)', r.num));
            v_count := v_count + 1;
            CONTINUE;
        END IF;
        v_n := r.now::jsonb;
        v_lines := ('[' || coalesce(r.lines, '') || ']')::jsonb;
        v_bh := mikro_sync_business(r.kind, v_h);
        v_bn := mikro_sync_business(r.kind, v_n);
        v_diff := concat_ws('; ', mikro_sync_diff(v_bh, v_bn),
            CASE WHEN r.kind = 'satis' THEN mikro_sync_lines_diff(
                ('[' || coalesce(r.posted_lines, '') || ']')::jsonb, v_lines) END);
        -- Only columns posting does not read changed (or the number was there already).
        CONTINUE WHEN v_diff = '';
        PERFORM mikro_sync_diverge(r.kind, r.id,
            v_n ->> CASE r.kind WHEN 'satis' THEN 'satis_no' ELSE 'tahsilat_no' END, r.num,
            CASE WHEN v_bh IS DISTINCT FROM v_bn THEN 'update' ELSE 'lines' END,
            'changed on the web while it was being posted: ' || v_diff,
            format('change %s in the Mikro program to match', r.num));
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END
$$;
