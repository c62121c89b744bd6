//! The emulator's own catalog: the original T-SQL declaration of every table, column and
//! index, persisted inside the backing PostgreSQL database (schema `emu_catalog`).
//!
//! Why: PostgreSQL cannot tell us that a `smallint` column was declared `tinyint` or `bit`, that a
//! `timestamp` was a `datetime` (1/300 s) rather than a `datetime2`, or how the user spelled a
//! column name. tiberius reads strictly (type and name), so results must be typed from here.
//!
//! Layout in PostgreSQL:
//! - schema `dbo` holds the user tables (names lower-cased; identifiers are case-insensitive);
//! - `emu_catalog.tables(name_lc, name, object_id, create_date)`,
//!   `emu_catalog.columns(table_lc, ordinal, name, tsql_type, nullable, is_identity)`,
//!   `emu_catalog.indexes(pg_name, table_lc, name, kind)` (kind `PK`, `UQ` constraint, `IX` index);
//! - collations `emu_catalog.tr_ci` (ICU Turkish, case-insensitive, nondeterministic: used by every
//!   character column) and `emu_catalog.tr_det` (deterministic Turkish, for LIKE/UPPER/LOWER);
//! - functions `emu_catalog.object_id(name, type)` (OBJECT_ID) and `emu_catalog.dt300(ts)`
//!   (rounds to SQL Server's `datetime` resolution of 1/300 s);
//! - views `sys.tables`, `sys.objects`, `sys.columns`, `sys.indexes`, `sys.schemas`.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::types::Type;

use crate::value::{SqlError, SqlType};

/// Idempotent bootstrap of the backing database (run once per `Engine::new`, under an advisory
/// lock so that several emulators starting on one database do not race).
pub const BOOTSTRAP_SQL: &str = r#"
SELECT pg_advisory_lock(7346251);
CREATE SCHEMA IF NOT EXISTS dbo;
CREATE SCHEMA IF NOT EXISTS emu_catalog;
CREATE SCHEMA IF NOT EXISTS sys;
DO $$ BEGIN
  CREATE COLLATION emu_catalog.tr_ci (provider = icu, locale = 'tr-TR-u-ks-level2', deterministic = false);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE COLLATION emu_catalog.tr_det (provider = icu, locale = 'tr-TR');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN emu_catalog.emu_tinyint AS smallint
    CONSTRAINT emu_tinyint_range CHECK (VALUE BETWEEN 0 AND 255);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
-- tinyint columns are smallint; every value stored into one that is not a literal in range goes
-- through emu_catalog.tinyint (inlined into the plan: a CASE), whose error is mapped to 220 by
-- its constraint name. Tables created by older emulators keep the emu_tinyint domain.
CREATE OR REPLACE FUNCTION emu_catalog.tinyint_overflow(v anyelement) RETURNS smallint
LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'value % is out of range for tinyint', v
    USING ERRCODE = '23514', CONSTRAINT = 'emu_tinyint_range';
END $f$;
CREATE OR REPLACE FUNCTION emu_catalog.tinyint(v anyelement) RETURNS smallint
LANGUAGE sql AS $f$
  SELECT CASE WHEN v >= 0 AND v <= 255 THEN CAST(v AS smallint)
              WHEN v IS NULL THEN NULL
              ELSE emu_catalog.tinyint_overflow(v) END
$f$;
-- REPLACE and CHARINDEX under Turkish_CI_AS: matched on the Turkish lower-case forms (İ/i, I/ı
-- pairs), the text outside the matches kept as written. Lower-casing that changes a string's
-- length (no Turkish letter does) is refused rather than answered with shifted positions.
CREATE OR REPLACE FUNCTION emu_catalog.tr_fold(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
  f text := lower(s COLLATE emu_catalog.tr_det);
BEGIN
  IF length(f) <> length(s) THEN
    RAISE EXCEPTION 'REPLACE/CHARINDEX on text whose lower-case form has another length is not supported by the emulator'
      USING ERRCODE = '0A000';
  END IF;
  RETURN f;
END $f$;
CREATE OR REPLACE FUNCTION emu_catalog.ci_charindex(needle text, hay text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
  SELECT CASE WHEN needle = '' THEN 0
              ELSE strpos(emu_catalog.tr_fold(hay), emu_catalog.tr_fold(needle)) END
$f$;
-- CHARINDEX(needle, hay, start): positions count from the start of hay; a start below 1
-- searches from the beginning, as SQL Server does.
CREATE OR REPLACE FUNCTION emu_catalog.ci_charindex(needle text, hay text, start bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
  SELECT CASE WHEN needle = '' OR st > length(hay) THEN 0
              ELSE (SELECT CASE WHEN p = 0 THEN 0 ELSE p + st - 1 END
                    FROM strpos(emu_catalog.tr_fold(substr(hay, st)), emu_catalog.tr_fold(needle)) AS p)
         END
  FROM (SELECT least(greatest(start, 1), 2147483647)::integer AS st) s
$f$;
CREATE OR REPLACE FUNCTION emu_catalog.ci_replace(s text, pat text, rep text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
  fs text;
  fp text;
  n integer := length(pat);
  pos integer;
  res text := '';
BEGIN
  IF s IS NULL OR pat IS NULL OR rep IS NULL THEN RETURN NULL; END IF;
  IF pat = '' THEN RETURN s; END IF;
  fs := emu_catalog.tr_fold(s);
  fp := emu_catalog.tr_fold(pat);
  LOOP
    pos := strpos(fs, fp);
    EXIT WHEN pos = 0;
    res := res || substr(s, 1, pos - 1) || rep;
    s := substr(s, pos + n);
    fs := substr(fs, pos + n);
  END LOOP;
  RETURN res || s;
END $f$;
-- A LIKE pattern that is not a literal: T-SQL's [set] classes are refused at run time.
CREATE OR REPLACE FUNCTION emu_catalog.like_pattern(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
BEGIN
  IF strpos(p, '[') > 0 THEN
    RAISE EXCEPTION 'LIKE with a [ ] character class is not supported by the emulator (pattern %)', p
      USING ERRCODE = '0A000';
  END IF;
  RETURN p;
END $f$;
-- LIKE between two non-Unicode (varchar/char) operands: the value's trailing spaces may go
-- unmatched, so 'a ' matches 'a' and 'a ' but not 'a  ' (SQL Server's rule; a Unicode
-- comparison is a plain LIKE).
CREATE OR REPLACE FUNCTION emu_catalog.like_ansi(v text, p text, e text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
  SELECT CASE WHEN v IS NULL OR p IS NULL OR e IS NULL THEN NULL
              WHEN right(v, 1) <> ' ' THEN v LIKE p ESCAPE e
              ELSE EXISTS (SELECT 1 FROM generate_series(0, length(v) - length(rtrim(v, ' '))) AS k
                           WHERE rtrim(v, ' ') || repeat(' ', k) LIKE p ESCAPE e) END
$f$;
-- LEFT/RIGHT/SUBSTRING's length: negative is an error on SQL Server (536, 537), not a count
-- from the end. The SQLSTATE 'EMnnn' carries the SQL Server error number.
CREATE OR REPLACE FUNCTION emu_catalog.length_arg(n bigint, f text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
BEGIN
  IF n < 0 THEN
    IF f = 'substring' THEN
      RAISE EXCEPTION 'Invalid length parameter passed to the LEFT or SUBSTRING function.'
        USING ERRCODE = 'EM537';
    END IF;
    RAISE EXCEPTION 'Invalid length parameter passed to the % function.', upper(f)
      USING ERRCODE = 'EM536';
  END IF;
  RETURN least(n, 2147483647)::integer;
END $f$;
-- float/real as text the way SQL Server's CAST writes it (style 0): six significant digits,
-- trailing zeros dropped. Values SQL Server writes in scientific notation (|x| >= 1e6 or
-- < 1e-4) are refused rather than written in another notation.
CREATE OR REPLACE FUNCTION emu_catalog.float_text(x double precision) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
DECLARE
  e integer;
  r numeric;
  t text;
BEGIN
  IF x IS NULL THEN RETURN NULL; END IF;
  IF x = 0 THEN RETURN '0'; END IF;
  e := floor(log(abs(x)::numeric));
  r := round(x::numeric, 5 - e);
  IF abs(r) >= power(10::numeric, e + 1) THEN e := e + 1; END IF;
  IF e < -4 OR e >= 6 THEN
    RAISE EXCEPTION 'float % as text needs scientific notation, which is not supported by the emulator (CAST to decimal first)', x
      USING ERRCODE = '0A000';
  END IF;
  t := r::text;
  IF strpos(t, '.') > 0 THEN t := rtrim(rtrim(t, '0'), '.'); END IF;
  RETURN t;
END $f$;
-- sp_getapplock's wait in one round trip: try, else wait up to timeout_ms (-1 forever)
-- without aborting the caller's transaction on a timeout (the exception block is a
-- subtransaction, entered only when the lock is busy). 0 granted at once, 1 after waiting,
-- -1 timed out; a deadlock is raised.
CREATE OR REPLACE FUNCTION emu_catalog.applock(k1 integer, k2 integer, shared boolean, timeout_ms bigint)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $f$
DECLARE
  old text := current_setting('lock_timeout');
BEGIN
  IF shared THEN
    IF pg_try_advisory_lock_shared(k1, k2) THEN RETURN 0; END IF;
  ELSIF pg_try_advisory_lock(k1, k2) THEN
    RETURN 0;
  END IF;
  IF timeout_ms = 0 THEN RETURN -1; END IF;
  BEGIN
    PERFORM set_config('lock_timeout', CASE WHEN timeout_ms < 0 THEN '0' ELSE timeout_ms::text END, true);
    IF shared THEN
      PERFORM pg_advisory_lock_shared(k1, k2);
    ELSE
      PERFORM pg_advisory_lock(k1, k2);
    END IF;
    PERFORM set_config('lock_timeout', old, true);
    RETURN 1;
  EXCEPTION WHEN lock_not_available THEN
    RETURN -1;
  END;
END
$f$;
CREATE TABLE IF NOT EXISTS emu_catalog.tables (
  name_lc text PRIMARY KEY,
  name text NOT NULL,
  object_id serial UNIQUE,
  create_date timestamp NOT NULL DEFAULT localtimestamp
);
CREATE TABLE IF NOT EXISTS emu_catalog.columns (
  table_lc text NOT NULL REFERENCES emu_catalog.tables ON DELETE CASCADE,
  ordinal integer NOT NULL,
  name text NOT NULL,
  tsql_type text NOT NULL,
  nullable boolean NOT NULL,
  is_identity boolean NOT NULL,
  PRIMARY KEY (table_lc, ordinal)
);
CREATE TABLE IF NOT EXISTS emu_catalog.indexes (
  pg_name text PRIMARY KEY,
  table_lc text NOT NULL REFERENCES emu_catalog.tables ON DELETE CASCADE,
  name text NOT NULL,
  kind text NOT NULL
);
CREATE OR REPLACE FUNCTION emu_catalog.object_id(n text, t text DEFAULT NULL) RETURNS integer
LANGUAGE sql STABLE AS $f$
  SELECT object_id FROM emu_catalog.tables
  WHERE name_lc = lower(translate(regexp_replace(regexp_replace(n, '^.*\.', ''), '[\[\]"]', '', 'g'), 'Iİ', 'ıi'))
    AND (t IS NULL OR upper(btrim(t)) = 'U')
$f$;
CREATE OR REPLACE FUNCTION emu_catalog.dt300(t timestamp) RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
  SELECT date_trunc('second', t)
       + make_interval(secs => round(extract(epoch FROM t - date_trunc('second', t)) * 300) / 300.0)
$f$;
CREATE OR REPLACE FUNCTION emu_catalog.reseed(tbl text, col text) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE s text := pg_get_serial_sequence(tbl, col); m bigint; cur bigint; called boolean;
BEGIN
  EXECUTE format('SELECT max(%I) FROM %s', col, tbl) INTO m;
  IF m IS NULL OR s IS NULL THEN RETURN; END IF;
  EXECUTE format('SELECT last_value, is_called FROM %s', s) INTO cur, called;
  IF m >= (CASE WHEN called THEN cur + 1 ELSE cur END) THEN PERFORM setval(s, m); END IF;
END $f$;
DROP VIEW IF EXISTS sys.tables;
CREATE VIEW sys.tables AS
  SELECT name::varchar(128) COLLATE emu_catalog.tr_ci AS name, object_id, 1 AS schema_id,
         'U'::varchar(2) AS type, 'USER_TABLE'::varchar(60) AS type_desc, create_date,
         create_date AS modify_date
  FROM emu_catalog.tables;
DROP VIEW IF EXISTS sys.objects;
CREATE VIEW sys.objects AS
  SELECT name::varchar(128) COLLATE emu_catalog.tr_ci AS name, object_id, 1 AS schema_id,
         'U'::varchar(2) AS type, 'USER_TABLE'::varchar(60) AS type_desc, create_date,
         create_date AS modify_date
  FROM emu_catalog.tables;
DROP VIEW IF EXISTS sys.schemas;
CREATE VIEW sys.schemas AS
  SELECT 'dbo'::varchar(128) COLLATE emu_catalog.tr_ci AS name, 1 AS schema_id;
DROP VIEW IF EXISTS sys.columns;
CREATE VIEW sys.columns AS
  SELECT t.object_id, c.name::varchar(128) COLLATE emu_catalog.tr_ci AS name, c.ordinal AS column_id,
         c.nullable::int::smallint AS is_nullable, c.is_identity::int::smallint AS is_identity
  FROM emu_catalog.columns c JOIN emu_catalog.tables t ON t.name_lc = c.table_lc;
DROP VIEW IF EXISTS sys.indexes;
CREATE VIEW sys.indexes AS
  SELECT t.object_id, i.name::varchar(128) COLLATE emu_catalog.tr_ci AS name,
         (i.kind <> 'IX' OR ix.indisunique)::int::smallint AS is_unique,
         (i.kind = 'PK')::int::smallint AS is_primary_key
  FROM emu_catalog.indexes i JOIN emu_catalog.tables t ON t.name_lc = i.table_lc
  LEFT JOIN pg_class pc ON pc.relname = i.pg_name AND pc.relnamespace = 'dbo'::regnamespace
  LEFT JOIN pg_index ix ON ix.indexrelid = pc.oid
  WHERE i.kind NOT IN ('PKT', 'UQT');
SELECT pg_advisory_unlock(7346251);
"#;

/// One column as declared in T-SQL.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    /// Name exactly as declared (result sets of `SELECT *` use it).
    pub name: String,
    /// Lower-cased name: the PostgreSQL column name.
    pub lc: String,
    pub ty: SqlType,
    pub nullable: bool,
    pub identity: bool,
}

/// One table as declared in T-SQL.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Name as declared.
    pub name: String,
    /// Lower-cased name (the PostgreSQL relation name).
    pub lc: String,
    /// PostgreSQL schema: `dbo` for user tables, `sys` for the catalog views.
    pub schema: &'static str,
    pub object_id: i32,
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    /// Finds a column by lower-cased name.
    pub fn column(&self, lc: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.lc == lc)
    }

    /// The IDENTITY column, if any (SQL Server allows at most one).
    pub fn identity(&self) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.identity)
    }

    /// `dbo."t"`: the quoted PostgreSQL relation.
    pub fn pg_ref(&self) -> String {
        format!("{}.{}", self.schema, quote_ident(&self.lc))
    }
}

/// What kind of object a PostgreSQL index/constraint is in T-SQL terms (decides 2627 vs 2601).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexKind {
    PrimaryKey,
    UniqueConstraint,
    Index,
    ForeignKey,
    Check,
}

/// An index or constraint as declared.
#[derive(Debug, Clone)]
pub struct IndexDef {
    pub table_lc: String,
    pub name: String,
    pub kind: IndexKind,
}

/// An immutable snapshot of the catalog; replaced wholesale after DDL.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Incremented on every reload: cached plans carry the version they were compiled against.
    pub version: u64,
    pub tables: HashMap<String, Arc<TableDef>>,
    pub indexes: HashMap<String, IndexDef>,
    pub sys: HashMap<String, Arc<TableDef>>,
}

impl Catalog {
    /// Loads the catalog from PostgreSQL.
    pub async fn load(client: &tokio_postgres::Client, version: u64) -> Result<Catalog, SqlError> {
        let rows = client
            .query(
                "SELECT t.name_lc, t.name, t.object_id, c.name, c.tsql_type, c.nullable, c.is_identity \
                 FROM emu_catalog.tables t JOIN emu_catalog.columns c ON c.table_lc = t.name_lc \
                 ORDER BY t.name_lc, c.ordinal",
                &[],
            )
            .await
            .map_err(|e| SqlError::new(50000, format!("cannot load the emulator catalog: {e}")))?;
        let mut tables: HashMap<String, TableDef> = HashMap::new();
        for r in rows {
            let lc: String = r.get(0);
            let t = tables.entry(lc.clone()).or_insert_with(|| TableDef {
                name: r.get(1),
                lc: lc.clone(),
                schema: "dbo",
                object_id: r.get(2),
                columns: Vec::new(),
            });
            let name: String = r.get(3);
            let tys: String = r.get(4);
            let ty = parse_type_str(&tys, 1)
                .ok_or_else(|| SqlError::new(50000, format!("bad catalog type {tys}")))?;
            t.columns.push(ColumnDef {
                lc: ident_key(&name),
                name,
                ty,
                nullable: r.get(5),
                identity: r.get(6),
            });
        }
        let idx = client
            .query(
                "SELECT pg_name, table_lc, name, kind FROM emu_catalog.indexes",
                &[],
            )
            .await
            .map_err(|e| SqlError::new(50000, format!("cannot load the emulator catalog: {e}")))?;
        let mut indexes = HashMap::new();
        for r in idx {
            let kind: String = r.get(3);
            indexes.insert(
                r.get::<_, String>(0),
                IndexDef {
                    table_lc: r.get(1),
                    name: r.get(2),
                    kind: match kind.as_str() {
                        "PK" | "PKT" => IndexKind::PrimaryKey,
                        "UQ" | "UQT" => IndexKind::UniqueConstraint,
                        "FK" => IndexKind::ForeignKey,
                        "CK" => IndexKind::Check,
                        _ => IndexKind::Index,
                    },
                },
            );
        }
        Ok(Catalog {
            version,
            tables: tables.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            indexes,
            sys: sys_tables(),
        })
    }

    /// Resolves a table name given as written (`T`, `dbo.T`, `[db].[dbo].[T]`, `sys.tables`).
    pub fn resolve(&self, parts: &[String]) -> Option<Arc<TableDef>> {
        let (schema, name) = match parts {
            [n] => (None, n),
            [s, n] => (Some(s), n),
            [_, s, n] => (Some(s), n),
            _ => return None,
        };
        let name = ident_key(name);
        match schema.map(|s| s.to_lowercase()) {
            Some(s) if s == "sys" => self.sys.get(&name).cloned(),
            Some(s) if s == "dbo" || s.is_empty() => self.tables.get(&name).cloned(),
            Some(_) => None,
            None => self.tables.get(&name).cloned(),
        }
    }
}

fn sys_tables() -> HashMap<String, Arc<TableDef>> {
    let col = |n: &str, ty: SqlType| ColumnDef {
        name: n.to_string(),
        lc: n.to_string(),
        ty,
        nullable: false,
        identity: false,
    };
    let nv = || SqlType::NVarChar(Some(128));
    let objects = vec![
        col("name", nv()),
        col("object_id", SqlType::Int),
        col("schema_id", SqlType::Int),
        col("type", SqlType::VarChar(Some(2))),
        col("type_desc", SqlType::NVarChar(Some(60))),
        col("create_date", SqlType::DateTime),
        col("modify_date", SqlType::DateTime),
    ];
    let mk = |n: &str, cols: Vec<ColumnDef>| {
        (
            n.to_string(),
            Arc::new(TableDef {
                name: n.to_string(),
                lc: n.to_string(),
                schema: "sys",
                object_id: 0,
                columns: cols,
            }),
        )
    };
    [
        mk("tables", objects.clone()),
        mk("objects", objects),
        mk(
            "schemas",
            vec![col("name", nv()), col("schema_id", SqlType::Int)],
        ),
        mk(
            "columns",
            vec![
                col("object_id", SqlType::Int),
                col("name", nv()),
                col("column_id", SqlType::Int),
                col("is_nullable", SqlType::Bit),
                col("is_identity", SqlType::Bit),
            ],
        ),
        mk(
            "indexes",
            vec![
                col("object_id", SqlType::Int),
                col("name", nv()),
                col("is_unique", SqlType::Bit),
                col("is_primary_key", SqlType::Bit),
            ],
        ),
    ]
    .into_iter()
    .collect()
}

/// The lookup key of a T-SQL identifier (table, column, alias, constraint name).
///
/// Mikro databases use the Turkish_CI_AS collation, and SQL Server resolves identifiers with the
/// database collation: `I` lower-cases to `ı` and `İ` to `i`, so in a Turkish database
/// `cari_hesaplar` does NOT name the table `CARI_HESAPLAR`. The emulator reproduces this (SQL that
/// passes here must pass on the real server); all other letters fold as usual.
pub fn ident_key(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            'I' => vec!['ı'],
            'İ' => vec!['i'],
            c => c.to_lowercase().collect(),
        })
        .collect()
}

/// Quotes a PostgreSQL identifier (always quoted, so T-SQL names that are PG keywords work).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a PostgreSQL string literal.
pub fn quote_lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Canonical text form of a T-SQL type, as stored in `emu_catalog.columns.tsql_type`.
pub fn type_to_string(t: &SqlType) -> String {
    match t {
        SqlType::Bit => "bit".into(),
        SqlType::TinyInt => "tinyint".into(),
        SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Real => "real".into(),
        SqlType::Float => "float".into(),
        SqlType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
        SqlType::Money => "money".into(),
        SqlType::NVarChar(Some(n)) => format!("nvarchar({n})"),
        SqlType::NVarChar(None) => "nvarchar(max)".into(),
        SqlType::NChar(n) => format!("nchar({n})"),
        SqlType::VarChar(Some(n)) => format!("varchar({n})"),
        SqlType::VarChar(None) => "varchar(max)".into(),
        SqlType::Char(n) => format!("char({n})"),
        SqlType::DateTime => "datetime".into(),
        SqlType::SmallDateTime => "smalldatetime".into(),
        SqlType::DateTime2(p) => format!("datetime2({p})"),
        SqlType::Date => "date".into(),
        SqlType::UniqueIdentifier => "uniqueidentifier".into(),
        SqlType::VarBinary(Some(n)) => format!("varbinary({n})"),
        SqlType::VarBinary(None) => "varbinary(max)".into(),
    }
}

/// Parses a T-SQL type name (`nvarchar(50)`, `DECIMAL(18, 2)`, `datetime2`, `float(24)`, …).
/// `default_len` is the length of `varchar`/`nvarchar` without one: 1 in declarations, 30 in
/// CAST/CONVERT, as in SQL Server.
pub fn parse_type_str(s: &str, default_len: u16) -> Option<SqlType> {
    let s = s.trim().to_lowercase().replace(['[', ']'], "");
    let (base, args) = match s.find('(') {
        Some(i) => {
            let inner = s[i + 1..].trim_end_matches(')');
            let args: Vec<String> = inner.split(',').map(|a| a.trim().to_string()).collect();
            (s[..i].trim().to_string(), args)
        }
        None => (s.clone(), Vec::new()),
    };
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
    let len = |d: u16| -> Option<Option<u16>> {
        match args.first().map(|a| a.as_str()) {
            None => Some(Some(d)),
            Some("max") => Some(None),
            Some(a) => a.parse::<u16>().ok().map(Some),
        }
    };
    Some(match base.as_str() {
        "bit" => SqlType::Bit,
        "tinyint" => SqlType::TinyInt,
        "smallint" => SqlType::SmallInt,
        "int" | "integer" => SqlType::Int,
        "bigint" => SqlType::BigInt,
        "real" => SqlType::Real,
        "float" => match num(0) {
            Some(n) if n <= 24 => SqlType::Real,
            _ => SqlType::Float,
        },
        "decimal" | "numeric" | "dec" => SqlType::Decimal {
            precision: num(0).unwrap_or(18).min(38) as u8,
            scale: num(1).unwrap_or(0).min(38) as u8,
        },
        "money" | "smallmoney" => SqlType::Money,
        "nvarchar" | "national character varying" => SqlType::NVarChar(len(default_len)?),
        "varchar" | "character varying" => SqlType::VarChar(len(default_len)?),
        "nchar" => SqlType::NChar(num(0).unwrap_or(1) as u16),
        "char" | "character" => SqlType::Char(num(0).unwrap_or(1) as u16),
        "ntext" => SqlType::NVarChar(None),
        "text" => SqlType::VarChar(None),
        "datetime" => SqlType::DateTime,
        "smalldatetime" => SqlType::SmallDateTime,
        "datetime2" => SqlType::DateTime2(num(0).unwrap_or(7).min(7) as u8),
        "date" => SqlType::Date,
        "uniqueidentifier" => SqlType::UniqueIdentifier,
        "varbinary" => SqlType::VarBinary(len(1)?),
        "binary" => SqlType::VarBinary(Some(num(0).unwrap_or(1) as u16)),
        _ => return None,
    })
}

/// The PostgreSQL column type that stores a T-SQL type (see the module docs for the mapping).
pub fn pg_type_name(t: &SqlType) -> String {
    match t {
        SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "integer".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Real => "real".into(),
        SqlType::Float => "double precision".into(),
        SqlType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        SqlType::Money => "numeric(19,4)".into(),
        SqlType::NVarChar(Some(n)) | SqlType::VarChar(Some(n)) => format!("varchar({n})"),
        SqlType::NVarChar(None) | SqlType::VarChar(None) => "text".into(),
        SqlType::NChar(n) | SqlType::Char(n) => format!("char({n})"),
        // datetime2(p) rounds to p fractional digits (PostgreSQL keeps at most 6).
        SqlType::DateTime2(p) if *p < 6 => format!("timestamp({p})"),
        SqlType::DateTime | SqlType::DateTime2(_) => "timestamp".into(),
        SqlType::SmallDateTime => "timestamp(0)".into(),
        SqlType::Date => "date".into(),
        SqlType::UniqueIdentifier => "uuid".into(),
        SqlType::VarBinary(_) => "bytea".into(),
    }
}

/// The PostgreSQL parameter type used to bind a value of a T-SQL type.
pub fn pg_param_type(t: &SqlType) -> Type {
    match t {
        SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt => Type::INT2,
        SqlType::Int => Type::INT4,
        SqlType::BigInt => Type::INT8,
        SqlType::Real => Type::FLOAT4,
        SqlType::Float => Type::FLOAT8,
        SqlType::Decimal { .. } | SqlType::Money => Type::NUMERIC,
        SqlType::NVarChar(_) | SqlType::VarChar(_) | SqlType::NChar(_) | SqlType::Char(_) => {
            Type::TEXT
        }
        SqlType::DateTime | SqlType::SmallDateTime | SqlType::DateTime2(_) => Type::TIMESTAMP,
        SqlType::Date => Type::DATE,
        SqlType::UniqueIdentifier => Type::UUID,
        SqlType::VarBinary(_) => Type::BYTEA,
    }
}

/// True for the character types (they get the Turkish case-insensitive collation).
pub fn is_string(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::NVarChar(_) | SqlType::VarChar(_) | SqlType::NChar(_) | SqlType::Char(_)
    )
}

/// True for exact and approximate numeric types (including bit).
pub fn is_numeric(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::Bit
            | SqlType::TinyInt
            | SqlType::SmallInt
            | SqlType::Int
            | SqlType::BigInt
            | SqlType::Real
            | SqlType::Float
            | SqlType::Decimal { .. }
            | SqlType::Money
    )
}

/// True for the integer types (including bit).
pub fn is_integer(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
    )
}

/// True for date/time types.
pub fn is_temporal(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::DateTime | SqlType::SmallDateTime | SqlType::DateTime2(_) | SqlType::Date
    )
}

/// SQL Server's data type precedence (higher wins in an expression).
pub fn precedence(t: &SqlType) -> u8 {
    match t {
        SqlType::DateTime2(_) => 30,
        SqlType::DateTime => 29,
        SqlType::SmallDateTime => 28,
        SqlType::Date => 27,
        SqlType::Float => 26,
        SqlType::Real => 25,
        SqlType::Decimal { .. } => 24,
        SqlType::Money => 23,
        SqlType::BigInt => 22,
        SqlType::Int => 21,
        SqlType::SmallInt => 20,
        SqlType::TinyInt => 19,
        SqlType::Bit => 18,
        SqlType::UniqueIdentifier => 17,
        SqlType::NVarChar(_) => 16,
        SqlType::NChar(_) => 15,
        SqlType::VarChar(_) => 14,
        SqlType::Char(_) => 13,
        SqlType::VarBinary(_) => 12,
    }
}
