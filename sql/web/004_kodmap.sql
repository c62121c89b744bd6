-- mikro-sync web install, step 004: web id -> Mikro code mapping tables.
-- Posting resolves codes here first and falls back to cari_kodu / stok_kodu / ban_kod / kasa_kodu;
-- the ERP->web sync keeps them in step. A missing mapping is a data error whose message names the
-- table and the row to add.
--
-- Customers are many-to-one: shops book many web customers to one Mikro account (the usual
-- "retail customers" account), so `int_kodmap_cari` is unique on the web side only (its primary
-- key). The ERP->web sync never looks a customer up by mapped code (it matches
-- cari_hesaplar.cari_kodu, which stays unique), so nothing needs the code to be unique. Products,
-- banks, cash boxes and price lists stay one-to-one: their mapping is how ERP->web finds the web
-- row to update, and no shop need for sharing one Mikro product between web products is known.
CREATE TABLE IF NOT EXISTS int_kodmap_cari (
    web_cari_id   uuid PRIMARY KEY,
    erp_cari_kod  varchar(25) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Existing installs: drop the old UNIQUE on erp_cari_kod (constraint or unique index, whatever
-- its name), keep a plain index for the delete reconciliation's lookups by code.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname
          FROM pg_constraint con
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
         WHERE con.conrelid = 'int_kodmap_cari'::regclass AND con.contype = 'u'
           AND array_length(con.conkey, 1) = 1 AND a.attname = 'erp_cari_kod'
    LOOP
        EXECUTE format('ALTER TABLE int_kodmap_cari DROP CONSTRAINT %I', c.conname);
    END LOOP;
    FOR c IN
        SELECT i.indexrelid::regclass::text AS idx
          FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = 'int_kodmap_cari'::regclass AND i.indisunique AND NOT i.indisprimary
           AND i.indnkeyatts = 1 AND a.attname = 'erp_cari_kod'
    LOOP
        EXECUTE format('DROP INDEX %s', c.idx);
    END LOOP;
END
$$;
CREATE INDEX IF NOT EXISTS int_kodmap_cari_erp_idx ON int_kodmap_cari (erp_cari_kod);
CREATE TABLE IF NOT EXISTS int_kodmap_stok (
    web_stok_id   uuid PRIMARY KEY,
    erp_stok_kod  varchar(25) NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS int_kodmap_banka (
    web_banka_id  uuid PRIMARY KEY,
    erp_banka_kod varchar(25) NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS int_kodmap_kasa (
    web_kasa_id   uuid PRIMARY KEY,
    erp_kasa_kod  varchar(25) NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS int_kodmap_fiyat_liste (
    web_fiyat_tanimi_id uuid PRIMARY KEY,
    erp_liste_sirano    integer NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
