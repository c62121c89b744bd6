-- mikro-sync web install, step 004: web id -> Mikro code mapping tables.
-- Posting resolves codes here first and falls back to cari_kodu / stok_kodu / ban_kod / kasa_kodu;
-- the ERP->web sync keeps them in step. A missing mapping is a data error whose message names the
-- table and the row to add. One ERP code maps to at most one web row (unique), so an upsert by
-- code is well defined.
CREATE TABLE IF NOT EXISTS int_kodmap_cari (
    web_cari_id   uuid PRIMARY KEY,
    erp_cari_kod  varchar(25) NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
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
