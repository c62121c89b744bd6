-- mikro-sync web install, step 001: the schema-version table.
-- `mikro-sync setup` records every sql/web/NNN_*.sql file it applied here (with a checksum), so a
-- second run knows there is nothing to do and an edited file is re-applied (every file is
-- idempotent, so re-applying is always safe).
CREATE TABLE IF NOT EXISTS mikro_sync_schema_version (
    version     integer PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
