//! Several rows of one table in one INSERT statement.

use chrono::NaiveDateTime;
use futures::io::{AsyncRead, AsyncWrite};
use tiberius::Query;

use super::*;

/// A multi-statement parameterised batch under construction: statements are appended in order,
/// each value becomes the next `@Pn`. Used to send several of the Mikro program's statements in
/// one round trip (one `sp_executesql`) while keeping their order; the text depends only on the
/// statement shapes, never on the values, so the server can reuse its plan.
#[derive(Debug, Default)]
pub struct Batch {
    sql: String,
    params: Vec<SqlParam>,
    need_sep: bool,
    /// Number of the parameter holding the rows' "now", once bound.
    now_at: Option<usize>,
}

/// The T-SQL literal for a catalog default that is the same in every row (`0`, `N''`,
/// `'18991230'`); `None` for the defaults that vary (now) or must be set (business columns).
///
/// Why literals: of the 122–140 columns of a Mikro row, ~100 always carry these fixed values.
/// As parameters each one was declared, encoded (UTF-16 name and type), decoded and bound on
/// every INSERT; as literals they are part of the statement text, which stays the same for
/// every document of a kind, so the server's cached plan holds them. They come from the
/// generated catalog, never from a document: business values stay parameters.
pub(super) fn default_literal(d: InsertDefault) -> Option<String> {
    match d {
        InsertDefault::Int(i) => Some(i.to_string()),
        InsertDefault::Float(f) if f.is_finite() => Some(format!("{f:?}")),
        InsertDefault::Text(t) => Some(format!("N'{}'", t.replace('\'', "''"))),
        InsertDefault::Date(y, m, d) => Some(format!("'{y:04}{m:02}{d:02}'")),
        InsertDefault::Float(_) | InsertDefault::Now | InsertDefault::Business(_) => None,
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a parameter and returns its placeholder (`@P7`).
    pub fn param(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        format!("@P{}", self.params.len())
    }

    /// The placeholder of the batch's one "now" parameter, bound from `p` the first time: every
    /// create/lastup column of every row in the batch carries the same instant (as in the
    /// traces), so it is sent once.
    fn now_param(&mut self, p: SqlParam) -> String {
        match self.now_at {
            Some(n) => format!("@P{n}"),
            None => {
                let ph = self.param(p);
                self.now_at = Some(self.params.len());
                ph
            }
        }
    }

    /// Appends a statement (the `;` separator is added).
    pub fn stmt(&mut self, sql: &str) {
        if self.need_sep {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(sql);
        self.need_sep = true;
    }

    /// Appends control-flow text (`IF … BEGIN`, `END`) without a statement separator before it;
    /// `sep_after` says whether the next statement needs one (after `END`, not after `BEGIN`).
    pub fn raw(&mut self, text: &str, sep_after: bool) {
        self.sql.push_str(text);
        self.need_sep = sep_after;
    }

    /// Appends `INSERT INTO dbo.<T> (<every column>) VALUES (…)` for `row`: every value the
    /// caller set is a parameter, the columns in `exprs` get the given T-SQL expression (a batch
    /// variable such as `@sira`, known only on the server), the catalog's fixed defaults are
    /// literals (see [`default_literal`]) and the "now" columns share one parameter.
    pub fn insert(
        &mut self,
        row: &Row,
        now: NaiveDateTime,
        exprs: &[(&str, &str)],
    ) -> Result<(), MikroError> {
        let t = row.table;
        let mut idx_expr: Vec<Option<&str>> = vec![None; t.columns.len()];
        for (col, e) in exprs {
            let i = t
                .column_index(col)
                .ok_or_else(|| MikroError::UnknownColumn {
                    table: t.name,
                    column: col.to_string(),
                })?;
            idx_expr[i] = Some(e);
        }
        // Business columns supplied by expressions need no value in the row.
        let mut full = row.clone();
        for (i, e) in idx_expr.iter().enumerate() {
            if e.is_some() && full.values[i].is_none() {
                full.values[i] = Some(match t.columns[i].ty {
                    SqlType::NVarChar(_) => Value::Text(String::new()),
                    SqlType::Float => Value::Float(0.0),
                    SqlType::DateTime => Value::DateTime(mikro_empty_date()),
                    _ => Value::Int(0),
                });
            }
        }
        let params = full.params(now)?;
        let mut sql = String::with_capacity(t.columns.len() * 40);
        sql.push_str("INSERT INTO dbo.");
        sql.push_str(t.name);
        sql.push_str(" (");
        for (i, c) in t.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(c.name);
        }
        sql.push_str(") VALUES (");
        for (i, (p, e)) in params.into_iter().zip(idx_expr).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            // The catalog default, when the caller left the column alone.
            let default = full.values[i].is_none().then_some(t.columns[i].default);
            match (e, default) {
                (Some(e), _) => sql.push_str(e),
                (None, Some(InsertDefault::Now)) => {
                    let ph = self.now_param(p);
                    sql.push_str(&ph);
                }
                (None, d) => match d.and_then(default_literal) {
                    Some(lit) => sql.push_str(&lit),
                    None => {
                        let ph = self.param(p);
                        sql.push_str(&ph);
                    }
                },
            }
        }
        sql.push(')');
        self.stmt(&sql);
        Ok(())
    }

    /// Puts `sql` (one or more complete statements) in front of everything appended so far.
    /// Parameter numbering is unaffected (placeholders are text).
    pub fn prepend(&mut self, sql: &str) {
        let sep = if self.sql.is_empty() { "" } else { ";\n" };
        self.sql = format!("{sql}{sep}{}", self.sql);
        self.need_sep = true;
    }

    /// Number of parameters so far (SQL Server accepts at most 2,100 per call).
    pub fn param_count(&self) -> usize {
        self.params.len()
    }

    /// The batch text (for logs and tests).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The tiberius query with every parameter bound.
    pub fn into_query(self) -> Query<'static> {
        let mut q = Query::new(self.sql);
        for p in self.params {
            q.bind(p);
        }
        q
    }
}

/// Inserts `row` as the Mikro program does (INSERT with `RECid_RECno = 0`, read `SCOPE_IDENTITY()`,
/// set `RECid_RECno` to it) in one round trip, and returns the new RECno. Works on any tiberius
/// client: the daemon's pooled ERP connection or a test's own connection to the emulator. It does
/// not open a transaction; callers that need one wrap it.
pub async fn insert<S>(
    client: &mut tiberius::Client<S>,
    row: &Row,
    now: NaiveDateTime,
) -> Result<i32, MikroError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut q = Query::new(row.table.insert_with_recid_sql());
    row.bind(&mut q, now)?;
    let r = q.query(client).await?.into_row().await?;
    r.and_then(|r| r.get::<i32, _>(0))
        .ok_or(MikroError::NoRecno(row.table.name))
}
