//! Shared helpers for the engine tests: a throwaway PostgreSQL cluster with one database, an
//! [`Engine`] on it, and small accessors over [`Output`]s.
#![allow(dead_code)]

use std::sync::Arc;

use mikro_emulator::engine::{Engine, Session};
use mikro_emulator::pgcluster::PgCluster;
use mikro_emulator::value::{Column, Output, Param, SqlType, Value};

pub struct Db {
    pub cluster: PgCluster,
    pub engine: Arc<Engine>,
    pub url: String,
}

pub async fn db() -> Db {
    let cluster = PgCluster::start().await.expect("start PostgreSQL");
    cluster.create_database("erp").await.expect("create db");
    let url = cluster.url("erp");
    let engine = Engine::new(&url).await.expect("engine");
    Db {
        cluster,
        engine,
        url,
    }
}

impl Db {
    pub async fn session(&self) -> Session {
        self.engine.session().await.expect("session")
    }
}

pub async fn run(s: &mut Session, sql: &str) -> Vec<Output> {
    let mut out = Vec::new();
    s.execute(sql, &[], &mut out).await;
    out
}

pub async fn run_p(s: &mut Session, sql: &str, params: &[Param]) -> Vec<Output> {
    let mut out = Vec::new();
    s.execute(sql, params, &mut out).await;
    out
}

/// Runs and panics on any error output.
pub async fn ok(s: &mut Session, sql: &str) -> Vec<Output> {
    let out = run(s, sql).await;
    assert!(errors(&out).is_empty(), "{sql}\n=> {out:?}");
    out
}

pub async fn ok_p(s: &mut Session, sql: &str, params: &[Param]) -> Vec<Output> {
    let out = run_p(s, sql, params).await;
    assert!(errors(&out).is_empty(), "{sql}\n=> {out:?}");
    out
}

pub fn errors(out: &[Output]) -> Vec<i32> {
    out.iter()
        .filter_map(|o| match o {
            Output::Error(e) => Some(e.number),
            _ => None,
        })
        .collect()
}

pub fn error_messages(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Error(e) => Some(e.message.clone()),
            _ => None,
        })
        .collect()
}

/// The n-th result set.
pub fn rowset(out: &[Output], n: usize) -> (Vec<Column>, Vec<Vec<Value>>) {
    out.iter()
        .filter_map(|o| match o {
            Output::Rows { columns, rows } => Some((columns.clone(), rows.clone())),
            _ => None,
        })
        .nth(n)
        .unwrap_or_else(|| panic!("no result set #{n} in {out:?}"))
}

/// The single value of the first result set.
pub fn scalar(out: &[Output]) -> (SqlType, Value) {
    let (c, r) = rowset(out, 0);
    assert_eq!(r.len(), 1, "{out:?}");
    (c[0].ty.clone(), r[0][0].clone())
}

pub fn counts(out: &[Output]) -> Vec<Option<u64>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Done { rows } => Some(*rows),
            _ => None,
        })
        .collect()
}

pub fn p(name: &str, ty: SqlType, value: Value) -> Param {
    Param {
        name: name.to_string(),
        ty,
        value,
    }
}

pub fn txt(v: &str) -> Value {
    Value::String(v.to_string())
}
