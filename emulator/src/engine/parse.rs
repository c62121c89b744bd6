//! Batch parsing: T-SQL text → a tree of [`Node`]s.
//!
//! sqlparser's `MsSqlDialect` parses most of what Mikro integrations send, but not everything, so
//! the token stream is rewritten first:
//! - a line holding only `GO` becomes `;` (client-side batch separator, tolerated);
//! - `CLUSTERED` / `NONCLUSTERED` after `CREATE`, `UNIQUE` or `KEY` are dropped (PostgreSQL has no
//!   clustered indexes; sqlparser rejects `CREATE UNIQUE NONCLUSTERED INDEX`);
//! - `EXEC @rc = proc …` becomes `EXEC proc @__emu_return = @rc, …` (sqlparser cannot parse it);
//! - `DELETE T WHERE …` becomes `DELETE FROM T WHERE …` (`DELETE x FROM …` is kept);
//! - transaction names after `BEGIN/COMMIT TRAN` are dropped; `ROLLBACK TRAN name` becomes
//!   `ROLLBACK TO SAVEPOINT name` and `SAVE TRAN name` becomes `SAVEPOINT name` (the engine
//!   decides whether the name is a savepoint or the transaction's name);
//! - constructs outside the subset that would otherwise produce a confusing parser message
//!   (`BEGIN TRY`, `WHILE`, `MERGE`, `GOTO`, `NEXT VALUE FOR`, `WAITFOR`,
//!   cursors, `::`, `ILIKE`, `RETURNING`) are rejected with error 102 naming them.
//!
//! T-SQL allows statements without `;` separators; sqlparser does not, so when it reports
//! "Expected: end of statement" a `;` is inserted at that position and the batch re-parsed.

use sqlparser::ast::{ConditionalStatements, Expr, Statement};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::value::SqlError;

/// One executable unit of a batch.
#[derive(Debug, Clone)]
pub enum Node {
    /// A statement compiled (and its plan cached) lazily, right before it runs, so that a
    /// `CREATE TABLE` earlier in the same batch is visible to it (deferred name resolution).
    Stmt { id: usize, stmt: Box<Statement> },
    /// `IF cond stmt|BEGIN…END [ELSE …]`: the condition is evaluated by the engine.
    If {
        id: usize,
        cond: Box<Expr>,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    /// `BEGIN TRY … END TRY BEGIN CATCH … END CATCH`.
    TryCatch {
        try_nodes: Vec<Node>,
        catch_nodes: Vec<Node>,
    },
    /// `EXEC [@rc =] sp_getapplock|sp_releaseapplock …`.
    AppLock {
        release: bool,
        /// Arguments as `(lower-cased name or positional name, expression)`.
        args: Vec<(String, Expr)>,
        ret_var: Option<String>,
    },
    /// `EXEC sp_executesql @stmt, @params, @a = …, …` in batch text: the statement runs in its
    /// own scope with its parameters bound, as an RPC `sp_executesql` would.
    ExecSql {
        id: usize,
        /// Arguments in order: `(Some(lower-cased @name), value)` or `(None, value)`.
        args: Vec<(Option<String>, Expr)>,
    },
}

const RETURN_MARK: &str = "@__emu_return";

fn significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

fn prev_significant(tokens: &[Token], before: usize) -> Option<usize> {
    (0..before)
        .rev()
        .find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

fn word_is(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

/// Rewrites the token stream (see the module docs) and renders it back to text.
fn preprocess(sql: &str) -> Result<String, SqlError> {
    let dialect = MsSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlError::syntax(format!("Incorrect syntax: {e}")))?;
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        // Unsupported statement keywords.
        for (kw, next, what) in [
            ("BEGIN", Some("TRY"), "BEGIN TRY inside IF/BEGIN … END"),
            ("BEGIN", Some("CATCH"), "BEGIN CATCH without BEGIN TRY"),
            (
                "BEGIN",
                Some("DISTRIBUTED"),
                "BEGIN DISTRIBUTED TRANSACTION",
            ),
            ("NEXT", Some("VALUE"), "NEXT VALUE FOR (sequences)"),
            ("WAITFOR", None, "WAITFOR"),
            ("OPENQUERY", None, "OPENQUERY"),
            ("OPENROWSET", None, "OPENROWSET"),
            ("WHILE", None, "WHILE"),
            ("MERGE", None, "MERGE"),
            ("GOTO", None, "GOTO"),
            ("CURSOR", None, "cursors"),
            (
                "RETURNING",
                None,
                "RETURNING (PostgreSQL; use OUTPUT INSERTED.col)",
            ),
            (
                "ILIKE",
                None,
                "ILIKE (PostgreSQL; use LIKE, comparisons are case-insensitive)",
            ),
        ] {
            if word_is(t, kw) {
                let matches_next = match next {
                    None => true,
                    Some(n) => significant(&tokens, i + 1).is_some_and(|j| word_is(&tokens[j], n)),
                };
                if matches_next {
                    return Err(SqlError::syntax(format!(
                        "Incorrect syntax near '{kw}': {what} is not supported by the emulator."
                    )));
                }
            }
        }
        if matches!(t, Token::DoubleColon) {
            return Err(SqlError::syntax(
                "Incorrect syntax near '::': PostgreSQL casts are not T-SQL (use CAST).",
            ));
        }
        // GO on its own line.
        if word_is(t, "GO") {
            let line_start = matches!(
                prev_significant_or_ws(&tokens, i),
                None | Some(Token::Whitespace(
                    Whitespace::Newline | Whitespace::SingleLineComment { .. }
                ))
            );
            let line_end = match tokens.get(i + 1) {
                None => true,
                Some(Token::Whitespace(Whitespace::Newline)) => true,
                Some(Token::Whitespace(Whitespace::Space | Whitespace::Tab)) => {
                    significant(&tokens, i + 1).is_none_or(|j| {
                        tokens[i + 1..j]
                            .iter()
                            .any(|t| matches!(t, Token::Whitespace(Whitespace::Newline)))
                    })
                }
                _ => false,
            };
            if line_start && line_end {
                out.push(Token::SemiColon);
                i += 1;
                continue;
            }
        }
        // BEGIN/COMMIT/ROLLBACK TRAN[SACTION] <name>: transaction names are accepted and
        // ignored (sqlparser rejects them).
        if word_is(t, "TRAN") || word_is(t, "TRANSACTION") {
            let after_tx_verb = prev_significant(&tokens, i).is_some_and(|p| {
                word_is(&tokens[p], "BEGIN")
                    || word_is(&tokens[p], "COMMIT")
                    || word_is(&tokens[p], "ROLLBACK")
            });
            if after_tx_verb {
                if let Some(j) = significant(&tokens, i + 1) {
                    let same_line = !tokens[i + 1..j]
                        .iter()
                        .any(|x| matches!(x, Token::Whitespace(Whitespace::Newline)));
                    let is_name = matches!(&tokens[j], Token::Word(w)
                        if w.keyword == Keyword::NoKeyword || w.quote_style.is_some() || w.value.starts_with('@'));
                    if same_line && is_name {
                        let verb = prev_significant(&tokens, i).map(|p| &tokens[p]);
                        if verb.is_some_and(|v| word_is(v, "ROLLBACK")) {
                            // ROLLBACK TRAN name: a savepoint (or the transaction's name, which
                            // the engine treats as a full rollback).
                            out.push(Token::make_keyword("TO"));
                            out.push(Token::Whitespace(Whitespace::Space));
                            out.push(Token::make_keyword("SAVEPOINT"));
                            out.push(Token::Whitespace(Whitespace::Space));
                            out.push(tokens[j].clone());
                        } else {
                            out.push(t.clone());
                        }
                        i = j + 1;
                        continue;
                    }
                }
            }
        }
        // SAVE TRAN[SACTION] name → SAVEPOINT name.
        if word_is(t, "SAVE") {
            if let Some(j) = significant(&tokens, i + 1) {
                if word_is(&tokens[j], "TRAN") || word_is(&tokens[j], "TRANSACTION") {
                    if let Some(k) = significant(&tokens, j + 1) {
                        out.push(Token::make_keyword("SAVEPOINT"));
                        out.push(Token::Whitespace(Whitespace::Space));
                        out.push(tokens[k].clone());
                        i = k + 1;
                        continue;
                    }
                }
            }
        }
        // CLUSTERED / NONCLUSTERED.
        if word_is(t, "CLUSTERED") || word_is(t, "NONCLUSTERED") {
            if let Some(p) = prev_significant(&tokens, i) {
                if word_is(&tokens[p], "CREATE")
                    || word_is(&tokens[p], "UNIQUE")
                    || word_is(&tokens[p], "KEY")
                {
                    i += 1;
                    continue;
                }
            }
        }
        // EXEC @rc = proc args.
        if word_is(t, "EXEC") || word_is(t, "EXECUTE") {
            if let Some(j) = significant(&tokens, i + 1) {
                if let Token::Word(w) = &tokens[j] {
                    if w.value.starts_with('@') {
                        let var = w.value.clone();
                        let eq = significant(&tokens, j + 1);
                        let name = eq.and_then(|e| significant(&tokens, e + 1));
                        if let (Some(e), Some(n)) = (eq, name) {
                            if matches!(tokens[e], Token::Eq) {
                                out.push(t.clone());
                                out.push(Token::Whitespace(Whitespace::Space));
                                out.push(tokens[n].clone());
                                out.push(Token::Whitespace(Whitespace::Space));
                                out.push(Token::make_word(RETURN_MARK, None));
                                out.push(Token::Eq);
                                out.push(Token::make_word(&var, None));
                                let more =
                                    significant(&tokens, n + 1).is_some_and(|k| match &tokens[k] {
                                        Token::Word(w) => {
                                            w.value.starts_with('@')
                                                || w.keyword == Keyword::NoKeyword
                                                    && w.quote_style.is_some()
                                        }
                                        Token::SingleQuotedString(_)
                                        | Token::NationalStringLiteral(_)
                                        | Token::Number(_, _)
                                        | Token::Minus => true,
                                        _ => false,
                                    });
                                if more {
                                    out.push(Token::Comma);
                                }
                                i = n + 1;
                                continue;
                            }
                        }
                    }
                }
            }
        }
        // DELETE T WHERE → DELETE FROM T WHERE (not the `ON DELETE` of a foreign key).
        let after_on = out
            .iter()
            .rev()
            .find(|x| !matches!(x, Token::Whitespace(_)))
            .is_some_and(|x| word_is(x, "ON"));
        if word_is(t, "DELETE") && !after_on {
            if let Some(j) = significant(&tokens, i + 1) {
                if let Token::Word(w) = &tokens[j] {
                    // `DELETE x FROM …` keeps its form; only `DELETE T WHERE …` gets a FROM.
                    let mut k = j;
                    while matches!(tokens.get(k + 1), Some(Token::Period))
                        || significant(&tokens, k + 1)
                            .is_some_and(|n| matches!(tokens[n], Token::Period))
                    {
                        let Some(dot) = significant(&tokens, k + 1) else {
                            break;
                        };
                        let Some(next) = significant(&tokens, dot + 1) else {
                            break;
                        };
                        k = next;
                    }
                    let from_follows =
                        significant(&tokens, k + 1).is_some_and(|n| word_is(&tokens[n], "FROM"));
                    if !w.value.eq_ignore_ascii_case("FROM")
                        && !w.value.eq_ignore_ascii_case("TOP")
                        && !from_follows
                    {
                        out.push(t.clone());
                        out.push(Token::Whitespace(Whitespace::Space));
                        out.push(Token::make_keyword("FROM"));
                        i += 1;
                        continue;
                    }
                }
            }
        }
        out.push(t.clone());
        i += 1;
    }
    Ok(out.iter().map(render).collect())
}

/// Renders a token back to T-SQL text. sqlparser's `Display` does not re-escape quotes inside
/// string literals and bracketed identifiers (`N'6''lı'` would come back as `N'6'lı'`).
fn render(t: &Token) -> String {
    match t {
        Token::SingleQuotedString(s) => format!("'{}'", s.replace('\'', "''")),
        Token::NationalStringLiteral(s) => format!("N'{}'", s.replace('\'', "''")),
        Token::Word(w) => match w.quote_style {
            Some('[') => format!("[{}]", w.value.replace(']', "]]")),
            Some('"') => format!("\"{}\"", w.value.replace('"', "\"\"")),
            _ => t.to_string(),
        },
        _ => t.to_string(),
    }
}

fn prev_significant_or_ws(tokens: &[Token], before: usize) -> Option<&Token> {
    // The nearest previous token that is not a space/tab.
    (0..before)
        .rev()
        .map(|i| &tokens[i])
        .find(|t| !matches!(t, Token::Whitespace(Whitespace::Space | Whitespace::Tab)))
}

/// Parses a batch into nodes.
pub fn parse_batch(sql: &str) -> Result<Vec<Node>, SqlError> {
    let dialect = MsSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlError::syntax(format!("Incorrect syntax: {e}")))?;
    let mut id = 0;
    parse_tokens(&tokens, &mut id)
}

/// Parses a token range: `BEGIN TRY … END TRY BEGIN CATCH … END CATCH` blocks are cut out here
/// (sqlparser cannot parse them), the text between them goes through sqlparser.
fn parse_tokens(tokens: &[Token], id: &mut usize) -> Result<Vec<Node>, SqlError> {
    let mut nodes = Vec::new();
    let mut seg_start = 0;
    let mut i = 0;
    let begins = |i: usize, what: &str| {
        word_is(&tokens[i], "BEGIN")
            && significant(tokens, i + 1).is_some_and(|j| word_is(&tokens[j], what))
    };
    let ends = |i: usize, what: &str| {
        word_is(&tokens[i], "END")
            && significant(tokens, i + 1).is_some_and(|j| word_is(&tokens[j], what))
    };
    // The range [from, to) of a block's body and the index after its END <what>.
    let block = |from: usize, what: &str| -> Result<(usize, usize), SqlError> {
        let mut depth = 1;
        let mut k = from;
        while k < tokens.len() {
            if begins(k, what) {
                depth += 1;
            } else if ends(k, what) {
                depth -= 1;
                if depth == 0 {
                    let kw = significant(tokens, k + 1).unwrap_or(k);
                    return Ok((k, kw + 1));
                }
            }
            k += 1;
        }
        Err(SqlError::syntax(format!(
            "Incorrect syntax: BEGIN {what} without END {what}."
        )))
    };
    while i < tokens.len() {
        if begins(i, "TRY") {
            nodes.extend(parse_text(&render_all(&tokens[seg_start..i]), id)?);
            let body = significant(tokens, i + 1).map_or(tokens.len(), |j| j + 1);
            let (try_end, after_try) = block(body, "TRY")?;
            let Some(c) = significant(tokens, after_try).filter(|&c| begins(c, "CATCH")) else {
                return Err(SqlError::syntax(
                    "Incorrect syntax: END TRY must be followed by BEGIN CATCH.",
                ));
            };
            let cbody = significant(tokens, c + 1).map_or(tokens.len(), |j| j + 1);
            let (catch_end, after_catch) = block(cbody, "CATCH")?;
            let try_nodes = parse_tokens(&tokens[body..try_end], id)?;
            let catch_nodes = parse_tokens(&tokens[cbody..catch_end], id)?;
            nodes.push(Node::TryCatch {
                try_nodes,
                catch_nodes,
            });
            i = after_catch;
            seg_start = i;
            continue;
        }
        i += 1;
    }
    nodes.extend(parse_text(&render_all(&tokens[seg_start..]), id)?);
    Ok(nodes)
}

fn render_all(tokens: &[Token]) -> String {
    tokens.iter().map(render).collect()
}

/// Parses plain T-SQL text (no TRY/CATCH) into nodes.
fn parse_text(sql: &str, id: &mut usize) -> Result<Vec<Node>, SqlError> {
    if sql.trim().trim_matches(';').trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut text = preprocess(sql)?;
    let dialect = MsSqlDialect {};
    let mut attempts = 0;
    let stmts = loop {
        match Parser::parse_sql(&dialect, &text) {
            Ok(s) => break s,
            Err(e) => {
                let msg = e.to_string();
                attempts += 1;
                if attempts < 500 && msg.contains("Expected: end of statement") {
                    if let Some(off) = error_offset(&text, &msg) {
                        text.insert(off, ';');
                        continue;
                    }
                }
                return Err(SqlError::syntax(format!(
                    "Incorrect syntax: {}",
                    msg.trim_start_matches("sql parser error: ")
                )));
            }
        }
    };
    convert(stmts, id)
}

/// Byte offset of " at Line: L, Column: C" in `text`.
fn error_offset(text: &str, msg: &str) -> Option<usize> {
    let at = msg.rfind("Line: ")?;
    let rest = &msg[at + 6..];
    let comma = rest.find(',')?;
    let line: usize = rest[..comma].trim().parse().ok()?;
    let col_at = rest.find("Column: ")?;
    let col: usize = rest[col_at + 8..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()?;
    let mut offset = 0;
    for (n, l) in text.split_inclusive('\n').enumerate() {
        if n + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return Some(offset + within);
        }
        offset += l.len();
    }
    None
}

fn convert(stmts: Vec<Statement>, id: &mut usize) -> Result<Vec<Node>, SqlError> {
    let mut out = Vec::with_capacity(stmts.len());
    for s in stmts {
        *id += 1;
        let my = *id;
        match s {
            Statement::If(ifs) => {
                let cond = ifs
                    .if_block
                    .condition
                    .clone()
                    .ok_or_else(|| SqlError::syntax("Incorrect syntax near 'IF'."))?;
                let then = convert(block(ifs.if_block.conditional_statements), id)?;
                // ELSE IF chains arrive as elseif_blocks in some dialect paths: nest them.
                let mut els = match ifs.else_block {
                    Some(b) => convert(block(b.conditional_statements), id)?,
                    None => Vec::new(),
                };
                for b in ifs.elseif_blocks.into_iter().rev() {
                    *id += 1;
                    let c = b
                        .condition
                        .clone()
                        .ok_or_else(|| SqlError::syntax("Incorrect syntax near 'ELSE'."))?;
                    let t = convert(block(b.conditional_statements), id)?;
                    els = vec![Node::If {
                        id: *id,
                        cond: Box::new(c),
                        then: t,
                        els,
                    }];
                }
                out.push(Node::If {
                    id: my,
                    cond: Box::new(cond),
                    then,
                    els,
                });
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                ..
            } if is_proc(&name.to_string(), "sp_executesql") => {
                let mut args = Vec::new();
                for p in parameters {
                    match p {
                        Expr::BinaryOp {
                            left,
                            op: sqlparser::ast::BinaryOperator::Eq,
                            right,
                        } if matches!(&*left, Expr::Identifier(i) if i.value.starts_with('@')) => {
                            let Expr::Identifier(i) = *left else {
                                continue;
                            };
                            if i.value == RETURN_MARK {
                                return Err(unsupported_exec_return());
                            }
                            args.push((Some(i.value.to_lowercase()), *right));
                        }
                        other => args.push((None, other)),
                    }
                }
                out.push(Node::ExecSql { id: my, args });
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                ..
            } if is_applock(&name.to_string()) => {
                let release = name
                    .to_string()
                    .to_lowercase()
                    .ends_with("sp_releaseapplock");
                let positional: &[&str] = if release {
                    &["@resource", "@lockowner", "@dbprincipal"]
                } else {
                    &[
                        "@resource",
                        "@lockmode",
                        "@lockowner",
                        "@locktimeout",
                        "@dbprincipal",
                    ]
                };
                let mut args = Vec::new();
                let mut ret_var = None;
                let mut pos = 0;
                for p in parameters {
                    match p {
                        Expr::BinaryOp {
                            left,
                            op: sqlparser::ast::BinaryOperator::Eq,
                            right,
                        } if matches!(&*left, Expr::Identifier(i) if i.value.starts_with('@')) => {
                            let Expr::Identifier(i) = *left else {
                                continue;
                            };
                            if i.value == RETURN_MARK {
                                if let Expr::Identifier(v) = *right {
                                    ret_var = Some(v.value.to_lowercase());
                                }
                            } else {
                                args.push((i.value.to_lowercase(), *right));
                            }
                        }
                        other => {
                            let n = positional.get(pos).ok_or_else(|| {
                                SqlError::new(
                                    8144,
                                    format!("Procedure or function {name} has too many arguments specified."),
                                )
                            })?;
                            pos += 1;
                            args.push((n.to_string(), other));
                        }
                    }
                }
                out.push(Node::AppLock {
                    release,
                    args,
                    ret_var,
                });
            }
            other => out.push(Node::Stmt {
                id: my,
                stmt: Box::new(other),
            }),
        }
    }
    Ok(out)
}

fn unsupported_exec_return() -> SqlError {
    SqlError::syntax(
        "Incorrect syntax near 'EXEC @rc = sp_executesql': the return code of sp_executesql is not supported by the emulator.",
    )
}

fn is_proc(name: &str, proc_name: &str) -> bool {
    let n = name.to_lowercase();
    n.rsplit('.').next() == Some(proc_name)
}

fn is_applock(name: &str) -> bool {
    let n = name.to_lowercase();
    let last = n.rsplit('.').next().unwrap_or("");
    last == "sp_getapplock" || last == "sp_releaseapplock"
}

fn block(c: ConditionalStatements) -> Vec<Statement> {
    match c {
        ConditionalStatements::Sequence { statements } => statements,
        ConditionalStatements::BeginEnd(b) => b.statements,
    }
}
