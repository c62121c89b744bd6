IF OBJECT_ID(N'dbo.MIKROSYNC_LEDGER', N'U') IS NULL
CREATE TABLE dbo.MIKROSYNC_LEDGER (
  ml_kind nvarchar(20) NOT NULL, ml_web_id uniqueidentifier NOT NULL, ml_evrak_tip smallint NOT NULL,
  ml_seri nvarchar(20) NOT NULL, ml_sira int NOT NULL, ml_cha_recno int NOT NULL, ml_sck_recno int NOT NULL,
  ml_sth_count int NOT NULL, ml_posted_at datetime NOT NULL,
  CONSTRAINT PK_MIKROSYNC_LEDGER PRIMARY KEY (ml_kind, ml_web_id));
