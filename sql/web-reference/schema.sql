-- Reference copy of the web shop's PostgreSQL schema (docs/DOMAIN.md section 2).
-- FOR TESTS AND THE DEMO ONLY: production never creates these tables; the web application
-- owns them. mikro-sync's own objects (kaynak columns, sync_queue, int_kodmap_*, triggers) are
-- deliberately NOT here: the daemon's `setup` step must add them, and tests prove it does.
-- Idempotent (IF NOT EXISTS). Needs PostgreSQL 13+ (gen_random_uuid() is built in).

CREATE TABLE IF NOT EXISTS cari_hesaplar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cari_kodu         varchar(50) NOT NULL UNIQUE,
    cari_adi          varchar(255) NOT NULL,
    telefon           varchar(50),
    eposta            varchar(255),
    vergi_no          varchar(20),
    vergi_dairesi     varchar(100),
    adres             text,
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now(),
    guncelleme_tarihi timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS stoklar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stok_kodu         varchar(50) NOT NULL UNIQUE,
    stok_adi          varchar(255) NOT NULL,
    birim_turu        varchar(20) NOT NULL DEFAULT 'ADET',
    alis_fiyati       numeric(15,2) NOT NULL DEFAULT 0,
    satis_fiyati      numeric(15,2) NOT NULL DEFAULT 0,
    kdv_orani         numeric(5,2) NOT NULL DEFAULT 20,
    aktif             boolean NOT NULL DEFAULT true,
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now(),
    guncelleme_tarihi timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS fiyat_tanimlari (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    fiyat_adi         varchar(100) NOT NULL,
    sira_no           integer NOT NULL UNIQUE,
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS urun_fiyat_listeleri (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stok_id           uuid NOT NULL REFERENCES stoklar(id) ON DELETE CASCADE,
    fiyat_tanimi_id   uuid NOT NULL REFERENCES fiyat_tanimlari(id) ON DELETE CASCADE,
    fiyat             numeric(15,2) NOT NULL DEFAULT 0,
    guncelleme_tarihi timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stok_id, fiyat_tanimi_id)
);

CREATE TABLE IF NOT EXISTS urun_barkodlari (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stok_id           uuid NOT NULL REFERENCES stoklar(id) ON DELETE CASCADE,
    barkod            varchar(50) NOT NULL UNIQUE,
    barkod_tipi       varchar(20) NOT NULL DEFAULT 'EAN13',
    aktif             boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS bankalar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    banka_adi         varchar(100) NOT NULL,
    ban_kod           varchar(25) UNIQUE
);

CREATE TABLE IF NOT EXISTS kasalar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kasa_adi          varchar(100) NOT NULL,
    kasa_kodu         varchar(25) UNIQUE
);

CREATE TABLE IF NOT EXISTS satislar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    satis_no          varchar(50),
    cari_hesap_id     uuid REFERENCES cari_hesaplar(id),
    satis_tarihi      date NOT NULL DEFAULT CURRENT_DATE,
    satis_tipi        varchar(20) NOT NULL DEFAULT 'perakende',
    odeme_sekli       varchar(20) DEFAULT 'nakit',
    ara_toplam        numeric(15,2) NOT NULL DEFAULT 0,
    indirim_tutari    numeric(15,2) NOT NULL DEFAULT 0,
    kdv_tutari        numeric(15,2) NOT NULL DEFAULT 0,
    toplam_tutar      numeric(15,2) NOT NULL DEFAULT 0,
    notlar            text,
    kasa_id           uuid REFERENCES kasalar(id),
    banka_id          uuid REFERENCES bankalar(id),
    fatura_seri_no    varchar(10),
    fatura_sira_no    integer,
    belge_no          varchar(50),
    iskonto1          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto2          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto3          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto4          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto5          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto6          numeric(15,2) NOT NULL DEFAULT 0,
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now(),
    guncelleme_tarihi timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS satis_kalemleri (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    satis_id          uuid NOT NULL REFERENCES satislar(id) ON DELETE CASCADE,
    stok_id           uuid REFERENCES stoklar(id),
    miktar            integer NOT NULL DEFAULT 1,
    birim_fiyat       numeric(15,2) NOT NULL DEFAULT 0,
    kdv_orani         numeric(5,2) NOT NULL DEFAULT 20,
    kdv_tutari        numeric(15,2) NOT NULL DEFAULT 0,
    toplam_tutar      numeric(15,2) NOT NULL DEFAULT 0,
    sira_no           integer,
    notlar            text,
    iskonto1          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto2          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto3          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto4          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto5          numeric(15,2) NOT NULL DEFAULT 0,
    iskonto6          numeric(15,2) NOT NULL DEFAULT 0,
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS satis_kalemleri_satis_id_idx ON satis_kalemleri (satis_id);

CREATE TABLE IF NOT EXISTS tahsilatlar (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tahsilat_no       varchar(50),
    cari_hesap_id     uuid REFERENCES cari_hesaplar(id),
    tahsilat_tarihi   date NOT NULL DEFAULT CURRENT_DATE,
    tahsilat_tipi     varchar(20) NOT NULL DEFAULT 'nakit',
    tutar             numeric(15,2) NOT NULL DEFAULT 0,
    banka_id          uuid REFERENCES bankalar(id),
    kasa_id           uuid REFERENCES kasalar(id),
    cek_no            varchar(50),
    vade_tarihi       date,
    banka_adi         varchar(100),
    aciklama          text,
    tahsilat_seri_no  varchar(10),
    tahsilat_sira_no  integer,
    belge_no          varchar(50),
    olusturma_tarihi  timestamptz NOT NULL DEFAULT now(),
    guncelleme_tarihi timestamptz NOT NULL DEFAULT now()
);
