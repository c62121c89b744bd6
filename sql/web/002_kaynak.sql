-- mikro-sync web install, step 002: the `kaynak` (origin) column.
-- 'web' (the default) = written by the web app, so the web->ERP triggers enqueue it;
-- 'erp' = written by mikro-sync's ERP->web sync, never enqueued. Added only if missing;
-- an existing column (any type/default) is left as the web app made it.
ALTER TABLE satislar      ADD COLUMN IF NOT EXISTS kaynak varchar(20) DEFAULT 'web';
ALTER TABLE tahsilatlar   ADD COLUMN IF NOT EXISTS kaynak varchar(20) DEFAULT 'web';
ALTER TABLE cari_hesaplar ADD COLUMN IF NOT EXISTS kaynak varchar(20) DEFAULT 'web';
