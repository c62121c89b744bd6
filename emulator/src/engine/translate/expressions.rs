//! Expressions: columns, literals, parameters and variables, operators, CASE, CAST/CONVERT and
//! the T-SQL functions, each typed as SQL Server types it.

use super::*;

impl<'a> Translator<'a> {
    pub(super) fn resolve_column(&mut self, qual: &[String], col: &str) -> Result<TExpr, SqlError> {
        let lc = ident_key(col);
        let qual_lc = qual.last().map(|q| {
            if q.eq_ignore_ascii_case("inserted") || q.eq_ignore_ascii_case("deleted") {
                q.to_ascii_lowercase()
            } else {
                ident_key(q)
            }
        });
        if !self.output_alias.is_empty() {
            match &qual_lc {
                Some(q) if self.output_alias.contains(&q.as_str()) => {}
                Some(q) if q == "inserted" || q == "deleted" => {
                    return Err(unsupported(format!(
                        "{}.{col} in this statement",
                        q.to_uppercase()
                    )))
                }
                _ => {
                    return Err(SqlError::new(
                        4104,
                        format!("The multi-part identifier \"{col}\" could not be bound."),
                    ))
                }
            }
        }
        for (depth, scope) in self.scopes.iter().enumerate().rev() {
            let mut found: Option<(&ScopeTable, &ColumnDef)> = None;
            for t in scope {
                if let Some(q) = &qual_lc {
                    if &t.alias != q {
                        continue;
                    }
                }
                if let Some(c) = t.def.column(&lc) {
                    if found.is_some() {
                        return Err(SqlError::new(
                            209,
                            format!("Ambiguous column name '{col}'."),
                        ));
                    }
                    found = Some((t, c));
                }
            }
            if let Some((t, c)) = found {
                let mut sql = if self.unqualified {
                    quote_ident(&c.lc)
                } else {
                    format!("{}.{}", quote_ident(&t.alias), quote_ident(&c.lc))
                };
                if let SqlType::Char(n) | SqlType::NChar(n) = c.ty {
                    sql = padded_char(&sql, n);
                }
                if is_string(&c.ty)
                    && self
                        .group_keys
                        .iter()
                        .any(|(d, keys)| *d == depth && keys.contains(&sql))
                {
                    sql = format!("min({sql})");
                }
                return Ok(TExpr {
                    sql,
                    ty: Some(c.ty.clone()),
                    literal: false,
                    nullable: c.nullable,
                    name: col.to_string(),
                });
            }
            if let Some(q) = &qual_lc {
                if scope.iter().any(|t| &t.alias == q) {
                    return Err(invalid_column(col));
                }
            }
        }
        if let Some(q) = qual_lc {
            if !self.scopes.iter().flatten().any(|t| t.alias == q) {
                return Err(SqlError::new(
                    4104,
                    format!(
                        "The multi-part identifier \"{}.{col}\" could not be bound.",
                        qual.join(".")
                    ),
                ));
            }
        }
        Err(invalid_column(col))
    }

    pub(super) fn variable(&mut self, name: &str) -> Result<TExpr, SqlError> {
        let lc = name.to_lowercase();
        let (src, ty) = match lc.as_str() {
            "@@rowcount" => (Bind::RowCount, SqlType::Int),
            "@@trancount" => (Bind::TranCount, SqlType::Int),
            "@@identity" => (
                Bind::Identity,
                SqlType::Decimal {
                    precision: 38,
                    scale: 0,
                },
            ),
            "@@spid" => {
                return Ok(TExpr::new(
                    "pg_backend_pid()::smallint".into(),
                    SqlType::SmallInt,
                ))
            }
            "@@error" => (Bind::Error, SqlType::Int),
            "@@version" => {
                return Ok(TExpr::new(
                    quote_lit(SERVER_VERSION_TEXT),
                    SqlType::NVarChar(Some(300)),
                ))
            }
            _ if lc.starts_with("@@") => return Err(unsupported(name)),
            _ => {
                if let Some(i) = self.params.iter().position(|(n, _)| n.to_lowercase() == lc) {
                    (Bind::Param(i), self.params[i].1.clone())
                } else if let Some(t) = self.vars.get(&lc) {
                    (Bind::Var(lc.clone()), t.clone())
                } else {
                    return Err(SqlError::new(
                        137,
                        format!("Must declare the scalar variable \"{name}\"."),
                    ));
                }
            }
        };
        let p = self.bind(src, ty.clone());
        Ok(TExpr {
            sql: p,
            ty: Some(ty),
            literal: false,
            nullable: true,
            name: String::new(),
        })
    }

    /// Translates an expression. The stack grows on demand (`recursive`): a client's
    /// `@P1 + @P2 + … + @P400` nests 400 levels deep, and an overflow would abort the process.
    #[recursive::recursive]
    pub fn expr(&mut self, e: &Expr) -> Result<TExpr, SqlError> {
        match e {
            Expr::Identifier(id) => {
                if id.value.starts_with('@') {
                    return self.variable(&id.value);
                }
                if id.quote_style.is_none() {
                    match id.value.to_uppercase().as_str() {
                        "CURRENT_TIMESTAMP" => {
                            return Ok(TExpr::new(
                                "emu_catalog.dt300(localtimestamp)".into(),
                                SqlType::DateTime,
                            ))
                        }
                        "NULL" => return Ok(null_lit()),
                        _ => {}
                    }
                }
                self.resolve_column(&[], &id.value)
            }
            Expr::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(|p| p.value.clone()).collect();
                let (col, qual) = names.split_last().ok_or_else(|| unsupported(e))?;
                let qual: Vec<String> = if qual.len() > 1 {
                    qual[qual.len() - 1..].to_vec()
                } else {
                    qual.to_vec()
                };
                self.resolve_column(&qual, col)
            }
            Expr::Value(v) => self.literal(&v.value),
            Expr::Nested(inner) => {
                let mut t = self.expr(inner)?;
                t.sql = format!("({})", t.sql);
                Ok(t)
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let t = self.expr(x)?;
                let not = if matches!(e, Expr::IsNotNull(_)) {
                    " NOT"
                } else {
                    ""
                };
                Ok(TExpr::new(
                    format!("({} IS{not} NULL)", t.sql),
                    SqlType::Bit,
                ))
            }
            Expr::UnaryOp { op, expr } => {
                let t = self.expr(expr)?;
                let s = match op {
                    UnaryOperator::Not => format!("(NOT {})", t.sql),
                    UnaryOperator::Minus => format!("(-{})", t.sql),
                    UnaryOperator::Plus => t.sql.clone(),
                    other => return Err(unsupported(other)),
                };
                Ok(TExpr {
                    sql: s,
                    ty: t.ty.clone().or(Some(SqlType::Int)),
                    literal: false,
                    nullable: t.nullable,
                    name: String::new(),
                })
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let mut a = self.expr(expr)?;
                let mut l = self.expr(low)?;
                let mut h = self.expr(high)?;
                let strings = [&a, &l, &h]
                    .iter()
                    .all(|x| x.ty.as_ref().is_some_and(is_string));
                let coll = if strings {
                    pad_insensitive(expr, &mut a);
                    pad_insensitive(low, &mut l);
                    pad_insensitive(high, &mut h);
                    " COLLATE emu_catalog.tr_ci"
                } else {
                    ""
                };
                let (a1, l) = coerce_pair(&a, &l);
                let (_, h) = coerce_pair(&a, &h);
                let not = if *negated { " NOT" } else { "" };
                Ok(TExpr::new(
                    format!(
                        "(({}{coll}){not} BETWEEN ({}) AND ({}))",
                        a1.sql, l.sql, h.sql
                    ),
                    SqlType::Bit,
                ))
            }
            Expr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let mut a = self.expr(expr)?;
                let strings = a.ty.as_ref().is_some_and(is_string);
                if strings {
                    pad_insensitive(expr, &mut a);
                }
                let mut items = Vec::new();
                for x in list {
                    let mut t = self.expr(x)?;
                    if strings && t.ty.as_ref().is_some_and(is_string) {
                        pad_insensitive(x, &mut t);
                    }
                    items.push(coerce_pair(&a, &t).1.sql);
                }
                let not = if *negated { " NOT" } else { "" };
                let coll = if strings {
                    " COLLATE emu_catalog.tr_ci"
                } else {
                    ""
                };
                Ok(TExpr::new(
                    format!("({}{coll}{not} IN ({}))", a.sql, items.join(", ")),
                    SqlType::Bit,
                ))
            }
            Expr::In {
                expr,
                target: ast::InTarget::Subquery(subquery),
                negated,
                global: false,
            } => {
                let mut a = self.expr(expr)?;
                let (mut q, cols) = self.query(subquery)?;
                let strings = a.ty.as_ref().is_some_and(is_string)
                    && cols.first().is_some_and(|c| is_string(&c.ty));
                let mut coll = "";
                if strings {
                    // Both sides without trailing spaces, under the database collation.
                    pad_insensitive(expr, &mut a);
                    q = format!("SELECT rtrim(\"_in\".\"_v\", ' ') FROM ({q}) AS \"_in\"(\"_v\")");
                    coll = " COLLATE emu_catalog.tr_ci";
                }
                let not = if *negated { " NOT" } else { "" };
                Ok(TExpr::new(
                    format!("({}{coll}{not} IN ({q}))", a.sql),
                    SqlType::Bit,
                ))
            }
            Expr::Exists { subquery, negated } => {
                let (q, _) = self.query(subquery)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(TExpr::new(format!("({not}EXISTS ({q}))"), SqlType::Bit))
            }
            Expr::Subquery(q) => {
                let (s, cols) = self.query(q)?;
                let ty = cols.first().map(|c| c.ty.clone()).unwrap_or(SqlType::Int);
                Ok(TExpr::new(format!("({s})"), ty))
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => {
                let a = self.expr(expr)?;
                let mut p = self.expr(pattern)?;
                // T-SQL's [set] / [^set] classes have no PostgreSQL LIKE equivalent: refused
                // rather than matched literally.
                if let Expr::Value(v) = pattern.as_ref() {
                    if let AV::SingleQuotedString(s) | AV::NationalStringLiteral(s) = &v.value {
                        if s.contains('[') {
                            return Err(unsupported(
                                "LIKE with a [ ] character class (not supported by the emulator; use OR of LIKEs or IN)",
                            ));
                        }
                    }
                } else {
                    p.sql = format!("emu_catalog.like_pattern(({})::text)", p.sql);
                }
                let not = if *negated { "NOT " } else { "" };
                // T-SQL has no default escape character; PostgreSQL's is the backslash.
                let esc = match escape_char {
                    None => "''".to_string(),
                    Some(c) => format!("({})::text", self.expr(c)?.sql),
                };
                // Nondeterministic collations reject LIKE in PostgreSQL 15: compare the
                // Turkish lower-case forms under a deterministic collation instead.
                let (v, pat) = (
                    format!("lower(({})::text COLLATE emu_catalog.tr_det)", a.sql),
                    format!("lower(({})::text COLLATE emu_catalog.tr_det)", p.sql),
                );
                // Only a Unicode comparison (either side nvarchar/nchar) matches the value's
                // trailing spaces; a non-Unicode one lets them go unmatched, as SQL Server does.
                let unicode = [&a.ty, &p.ty]
                    .iter()
                    .any(|t| matches!(t, Some(SqlType::NVarChar(_) | SqlType::NChar(_))));
                let sql = if unicode {
                    format!("({not}({v} LIKE {pat} ESCAPE {esc}))")
                } else {
                    format!("({not}emu_catalog.like_ansi({v}, {pat}, {esc}))")
                };
                Ok(TExpr::new(sql, SqlType::Bit))
            }
            Expr::ILike { .. } => Err(unsupported(
                "ILIKE (PostgreSQL; use LIKE, comparisons are case-insensitive)",
            )),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut sql = String::from("CASE");
                let mut string_operand = false;
                if let Some(o) = operand {
                    let mut x = self.expr(o)?;
                    if x.ty.as_ref().is_some_and(is_string) {
                        // `CASE x WHEN v`: compared as `x = v`, without trailing spaces.
                        pad_insensitive(o, &mut x);
                        x.sql = format!("{} COLLATE emu_catalog.tr_ci", x.sql);
                        string_operand = true;
                    }
                    sql.push(' ');
                    sql.push_str(&x.sql);
                }
                let mut ty: Option<SqlType> = None;
                let mut results = Vec::new();
                for w in conditions {
                    let mut c = self.expr(&w.condition)?;
                    if string_operand && c.ty.as_ref().is_some_and(is_string) {
                        pad_insensitive(&w.condition, &mut c);
                    }
                    let r = self.expr(&w.result)?;
                    ty = higher(ty, r.ty.clone());
                    results.push((c.sql, r));
                }
                let els = match else_result {
                    Some(x) => {
                        let r = self.expr(x)?;
                        ty = higher(ty, r.ty.clone());
                        Some(r)
                    }
                    None => None,
                };
                let target = ty.clone().unwrap_or(SqlType::Int);
                for (c, r) in results {
                    sql.push_str(&format!(" WHEN {c} THEN {}", cast_if_needed(&r, &target)));
                }
                if let Some(r) = els {
                    sql.push_str(&format!(" ELSE {}", cast_if_needed(&r, &target)));
                }
                sql.push_str(" END");
                Ok(TExpr::new(sql, target))
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return Err(unsupported("CAST … FORMAT"));
                }
                match kind {
                    CastKind::Cast => {}
                    CastKind::DoubleColon => {
                        return Err(unsupported(":: (PostgreSQL cast; use CAST)"))
                    }
                    _ => return Err(unsupported("TRY_CAST/SAFE_CAST")),
                }
                let t = self.expr(expr)?;
                let target = data_type_to_sql(data_type, 30)?;
                self.cast(&t, &target, None)
            }
            Expr::Convert {
                is_try: false,
                expr,
                data_type: Some(dt),
                charset: None,
                styles,
                ..
            } => {
                let t = self.expr(expr)?;
                let target = data_type_to_sql(dt, 30)?;
                let style = match styles.first() {
                    None => None,
                    Some(Expr::Value(v)) => match &v.value {
                        AV::Number(n, _) => n.parse::<i32>().ok(),
                        _ => return Err(unsupported("CONVERT style")),
                    },
                    Some(_) => return Err(unsupported("CONVERT style expression")),
                };
                self.cast(&t, &target, style)
            }
            Expr::Collate { expr, .. } => self.expr(expr),
            Expr::Function(f) => self.function(f),
            Expr::Trim {
                trim_where: None,
                trim_what: None,
                expr,
                trim_characters: None,
            } => {
                let t = self.expr(expr)?;
                Ok(TExpr::new(
                    format!("btrim({}, ' ')", t.sql),
                    t.ty_or(SqlType::NVarChar(Some(4000))),
                ))
            }
            Expr::Substring {
                expr,
                substring_from: Some(from),
                substring_for: Some(len),
                ..
            } => {
                let t = self.expr(expr)?;
                let f = self.expr(from)?;
                let l = self.expr(len)?;
                Ok(TExpr::new(
                    format!(
                        "substr(({})::text, ({}), {})",
                        t.sql,
                        f.sql,
                        length_arg(&l, "substring")
                    ),
                    t.ty_or(SqlType::NVarChar(Some(4000))),
                ))
            }
            other => Err(unsupported(first_words(&other.to_string()))),
        }
    }

    pub(super) fn literal(&mut self, v: &AV) -> Result<TExpr, SqlError> {
        let lit = |sql: String, ty: SqlType| TExpr {
            sql,
            ty: Some(ty),
            literal: true,
            nullable: false,
            name: String::new(),
        };
        Ok(match v {
            AV::Number(n, _) => {
                if n.contains(['e', 'E']) {
                    lit(format!("({n})::double precision"), SqlType::Float)
                } else if let Some(dot) = n.find('.') {
                    let digits = n.chars().filter(|c| c.is_ascii_digit()).count();
                    let scale = n.len() - dot - 1;
                    let precision = digits.max(scale).max(1);
                    lit(
                        n.clone(),
                        SqlType::Decimal {
                            precision: precision.min(38) as u8,
                            scale: scale.min(38) as u8,
                        },
                    )
                } else {
                    match n.parse::<i64>() {
                        Ok(i) if i32::try_from(i).is_ok() => lit(n.clone(), SqlType::Int),
                        _ => lit(
                            format!("({n})::numeric"),
                            SqlType::Decimal {
                                precision: n.len().min(38) as u8,
                                scale: 0,
                            },
                        ),
                    }
                }
            }
            AV::SingleQuotedString(s) => lit(
                quote_lit(s),
                SqlType::VarChar(Some(s.chars().count().clamp(1, 8000) as u16)),
            ),
            AV::NationalStringLiteral(s) => lit(
                quote_lit(s),
                SqlType::NVarChar(Some(s.chars().count().clamp(1, 4000) as u16)),
            ),
            AV::Null => null_lit(),
            AV::Placeholder(p) => {
                return Err(unsupported(format!(
                    "{p} (PostgreSQL placeholder; use @P1 parameters)"
                )))
            }
            AV::DoubleQuotedString(s) => {
                return Err(unsupported(format!(
                    "\"{s}\" (double-quoted string literal; use '…')"
                )))
            }
            AV::Boolean(b) => return Err(unsupported(format!("{b} (boolean literal; use 1/0)"))),
            AV::DollarQuotedString(_) => return Err(unsupported("$$ (dollar-quoted string)")),
            AV::EscapedStringLiteral(_) => return Err(unsupported("E'…' (escaped string)")),
            other => return Err(unsupported(other)),
        })
    }

    pub(super) fn binary(
        &mut self,
        l: &Expr,
        op: &BinaryOperator,
        r: &Expr,
    ) -> Result<TExpr, SqlError> {
        let mut a = self.expr(l)?;
        let mut b = self.expr(r)?;
        if matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
        ) {
            self.identity_as_bigint(&mut a, &b);
            self.identity_as_bigint(&mut b, &a);
            if a.ty.as_ref().is_some_and(is_string) && b.ty.as_ref().is_some_and(is_string) {
                pad_insensitive(l, &mut a);
                pad_insensitive(r, &mut b);
            }
        }
        // Two strings compare under the database collation even when neither is a column
        // (PostgreSQL would compare literals and parameters case-sensitively).
        let both_strings =
            a.ty.as_ref().is_some_and(is_string) && b.ty.as_ref().is_some_and(is_string);
        let cmp = |s: &str, a: &TExpr, b: &TExpr| {
            let (a, b) = coerce_pair(a, b);
            let coll = if both_strings {
                " COLLATE emu_catalog.tr_ci"
            } else {
                ""
            };
            TExpr::new(format!("({} {s} {}{coll})", a.sql, b.sql), SqlType::Bit)
        };
        Ok(match op {
            BinaryOperator::Eq => cmp("=", &a, &b),
            BinaryOperator::NotEq => cmp("<>", &a, &b),
            BinaryOperator::Lt => cmp("<", &a, &b),
            BinaryOperator::LtEq => cmp("<=", &a, &b),
            BinaryOperator::Gt => cmp(">", &a, &b),
            BinaryOperator::GtEq => cmp(">=", &a, &b),
            BinaryOperator::And => TExpr::new(format!("({} AND {})", a.sql, b.sql), SqlType::Bit),
            BinaryOperator::Or => TExpr::new(format!("({} OR {})", a.sql, b.sql), SqlType::Bit),
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo => {
                let is_str = |t: &Option<SqlType>| t.as_ref().is_some_and(is_string);
                // A string next to a number is converted to the number's type (higher
                // precedence), so '5' + 1 is 6 as in SQL Server, not '51'.
                let other = |t: &Option<SqlType>| t.as_ref().filter(|t| !is_string(t)).cloned();
                if let (true, Some(to)) = (is_str(&a.ty), other(&b.ty)) {
                    a = self.string_to(&a, &to)?;
                } else if let (true, Some(to)) = (is_str(&b.ty), other(&a.ty)) {
                    b = self.string_to(&b, &to)?;
                }
                let at = a.ty.clone();
                let bt = b.ty.clone();
                if matches!(op, BinaryOperator::Plus) && (is_str(&at) || is_str(&bt)) {
                    // T-SQL string concatenation; NULL + 'x' is NULL as in PostgreSQL's ||.
                    let len = |t: &Option<SqlType>| match t {
                        Some(SqlType::NVarChar(Some(n)) | SqlType::VarChar(Some(n))) => {
                            Some(*n as u32)
                        }
                        Some(SqlType::NChar(n) | SqlType::Char(n)) => Some(*n as u32),
                        None => Some(0),
                        _ => Some(30),
                    };
                    let n = match (len(&at), len(&bt)) {
                        (Some(x), Some(y)) if x + y <= 4000 => Some((x + y).max(1) as u16),
                        _ => None,
                    };
                    let nat = matches!(at, Some(SqlType::NVarChar(_) | SqlType::NChar(_)))
                        || matches!(bt, Some(SqlType::NVarChar(_) | SqlType::NChar(_)));
                    let ty = if nat {
                        SqlType::NVarChar(n)
                    } else {
                        SqlType::VarChar(n)
                    };
                    return Ok(TExpr::new(
                        format!("(({})::text || ({})::text)", a.sql, b.sql),
                        ty,
                    ));
                }
                let temporal = |t: &Option<SqlType>| t.as_ref().is_some_and(is_temporal);
                if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus)
                    && temporal(&at)
                    && !temporal(&bt)
                {
                    let sign = if matches!(op, BinaryOperator::Plus) {
                        "+"
                    } else {
                        "-"
                    };
                    return Ok(TExpr::new(
                        format!("({} {sign} ({}) * interval '1 day')", a.sql, b.sql),
                        at.unwrap_or(SqlType::DateTime),
                    ));
                }
                let ty = arith_type(&at, &bt, op);
                let o = match op {
                    BinaryOperator::Plus => "+",
                    BinaryOperator::Minus => "-",
                    BinaryOperator::Multiply => "*",
                    BinaryOperator::Divide => "/",
                    _ => "%",
                };
                let (a2, b2) = (numeric_operand(&a), numeric_operand(&b));
                TExpr::new(format!("({a2} {o} {b2})"), ty)
            }
            BinaryOperator::BitwiseAnd => {
                TExpr::new(format!("({} & {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::BitwiseOr => {
                TExpr::new(format!("({} | {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::BitwiseXor => {
                TExpr::new(format!("({} # {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::StringConcat => {
                return Err(unsupported("|| (PostgreSQL concatenation; use +)"))
            }
            other => return Err(unsupported(other)),
        })
    }

    /// A string operand of arithmetic converted to the other operand's numeric type. Strings
    /// next to dates or GUIDs are refused: SQL Server converts them and adds datetimes, which
    /// the emulator does not do.
    fn string_to(&mut self, x: &TExpr, to: &SqlType) -> Result<TExpr, SqlError> {
        if !is_numeric(to) {
            return Err(unsupported(
                "+ between a string and a date or uniqueidentifier (not supported by the emulator; CAST one side)",
            ));
        }
        let to = match to {
            SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt => SqlType::Int,
            t => t.clone(),
        };
        let mut y = self.cast(x, &to, None)?;
        y.literal = false;
        Ok(y)
    }

    /// `x` is `SCOPE_IDENTITY()` / `@@IDENTITY` (decimal(38,0) in T-SQL, a `numeric` parameter
    /// here) compared with an integer expression: compare as `bigint` instead. PostgreSQL would
    /// otherwise cast the integer column to `numeric`, which no btree index on the column can
    /// serve, so `WHERE RECno = SCOPE_IDENTITY()` scanned the whole table on every call. The
    /// value is always an identity read as `i64`, so the cast is exact (NULL stays NULL) and the
    /// comparison's result is unchanged; the expression's T-SQL type stays decimal(38,0).
    pub(super) fn identity_as_bigint(&self, x: &mut TExpr, other: &TExpr) {
        if !other.ty.as_ref().is_some_and(|t| {
            matches!(
                t,
                SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
            )
        }) {
            return;
        }
        let is_identity_bind = [Bind::ScopeIdentity, Bind::Identity].iter().any(|b| {
            self.bind_ix
                .get(b)
                .is_some_and(|i| x.sql == format!("${}", i + 1))
        });
        if is_identity_bind {
            x.sql = format!("CAST({} AS bigint)", x.sql);
        }
    }

    pub(super) fn cast(
        &mut self,
        t: &TExpr,
        target: &SqlType,
        style: Option<i32>,
    ) -> Result<TExpr, SqlError> {
        let src = t.ty.clone();
        let pgt = pg_type_name(target);
        let sql = match (&src, target) {
            (_, _) if t.ty.is_none() => format!("CAST(NULL AS {pgt})"),
            (Some(s), tg)
                if is_integer(tg)
                    && matches!(
                        s,
                        SqlType::Float | SqlType::Real | SqlType::Decimal { .. } | SqlType::Money
                    ) =>
            {
                format!("CAST(trunc({}) AS {pgt})", t.sql)
            }
            (Some(s), SqlType::Bit) if is_numeric(s) => {
                format!("CAST(({} <> 0)::int AS smallint)", t.sql)
            }
            (Some(s), tg) if is_temporal(s) && is_string(tg) => {
                let text = temporal_text(&t.sql, s, style)?;
                match tg {
                    SqlType::Char(n) | SqlType::NChar(n) => {
                        format!("rpad(CAST({text} AS varchar({n})), {n})")
                    }
                    _ => format!("CAST({text} AS {pgt})"),
                }
            }
            (_, SqlType::DateTime) => format!("emu_catalog.dt300(CAST({} AS timestamp))", t.sql),
            // SQL Server writes float with six significant digits (PostgreSQL: all of them).
            (Some(SqlType::Float | SqlType::Real), tg) if is_string(tg) => {
                format!("CAST(emu_catalog.float_text({}) AS {pgt})", t.sql)
            }
            // money as text has two decimals (style 0).
            (Some(SqlType::Money), tg) if is_string(tg) => {
                format!("CAST(round({}, 2) AS {pgt})", t.sql)
            }
            // SQL Server writes a uniqueidentifier as upper-case text.
            (Some(SqlType::UniqueIdentifier), tg) if is_string(tg) => {
                format!("CAST(upper(({})::text) AS {pgt})", t.sql)
            }
            // char(n) keeps its padding as text (PostgreSQL's char drops it when read).
            (_, SqlType::Char(n) | SqlType::NChar(n)) => {
                format!("rpad(CAST({} AS varchar({n})), {n})", cast_source(t))
            }
            (Some(s), tg) if is_string(s) && is_string(tg) => format!("CAST({} AS {pgt})", t.sql),
            _ => format!("CAST({} AS {pgt})", t.sql),
        };
        Ok(TExpr {
            sql,
            ty: Some(target.clone()),
            literal: false,
            nullable: t.nullable,
            name: String::new(),
        })
    }

    pub(super) fn args(&mut self, f: &ast::Function) -> Result<Vec<FunctionArgExpr>, SqlError> {
        match &f.args {
            FunctionArguments::None => Ok(Vec::new()),
            FunctionArguments::List(l) => {
                if !l.clauses.is_empty() {
                    return Err(unsupported(format!("{} clauses", f.name)));
                }
                l.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(x) => Ok(x.clone()),
                        _ => Err(unsupported("named function arguments")),
                    })
                    .collect()
            }
            FunctionArguments::Subquery(_) => Err(unsupported("function(subquery)")),
        }
    }

    pub(super) fn function(&mut self, f: &ast::Function) -> Result<TExpr, SqlError> {
        if f.over.is_some() {
            return Err(unsupported("window functions (OVER)"));
        }
        if f.filter.is_some()
            || (!f.within_group.is_empty() && !name_is(&f.name, "string_agg"))
            || f.null_treatment.is_some()
        {
            return Err(unsupported(&f.name));
        }
        let parts = name_parts(&f.name);
        let name = parts.last().cloned().unwrap_or_default().to_lowercase();
        let distinct = matches!(
            &f.args,
            FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct))
        );
        let raw = self.args(f)?;
        let star = raw.len() == 1 && matches!(raw[0], FunctionArgExpr::Wildcard);
        let mut a = Vec::new();
        // An aggregate reads its rows' stored values, not its select's group keys.
        let aggregate = matches!(
            name.as_str(),
            "count" | "count_big" | "sum" | "avg" | "min" | "max" | "string_agg"
        );
        let keys = if aggregate {
            self.aggregates += 1;
            std::mem::take(&mut self.group_keys)
        } else {
            Vec::new()
        };
        let r = self.function_args(&name, star, &raw, &mut a);
        if aggregate {
            self.group_keys = keys;
        }
        r?;
        // A DISTINCT aggregate counts 'A' and 'A  ' (or 'a') once, as SQL Server compares them.
        if distinct && aggregate {
            if let Some(x) = a.first_mut() {
                if x.ty.as_ref().is_some_and(is_string) {
                    x.sql = format!("rtrim({}, ' ') COLLATE emu_catalog.tr_ci", x.sql);
                }
            }
        }
        self.function_body(f, &name, distinct, star, a)
    }

    fn function_args(
        &mut self,
        name: &str,
        star: bool,
        raw: &[FunctionArgExpr],
        a: &mut Vec<TExpr>,
    ) -> Result<(), SqlError> {
        if !star {
            for x in raw {
                match x {
                    FunctionArgExpr::Expr(e) => {
                        // DATEADD(day, …) / DATEDIFF(day, …): the first argument is a keyword.
                        if (name == "dateadd" || name == "datediff" || name == "datepart")
                            && a.is_empty()
                        {
                            if let Expr::Identifier(i) = e {
                                a.push(TExpr::new(i.value.to_lowercase(), SqlType::Int));
                                continue;
                            }
                        }
                        a.push(self.expr(e)?)
                    }
                    _ => return Err(unsupported(format!("{name}(*)"))),
                }
            }
        }
        Ok(())
    }

    fn function_body(
        &mut self,
        f: &ast::Function,
        name: &str,
        distinct: bool,
        star: bool,
        a: Vec<TExpr>,
    ) -> Result<TExpr, SqlError> {
        let n = a.len();
        let need = |k: usize| -> Result<(), SqlError> {
            if n == k {
                Ok(())
            } else {
                Err(SqlError::new(
                    174,
                    format!("The {name} function requires {k} argument(s)."),
                ))
            }
        };
        let d = if distinct { "DISTINCT " } else { "" };
        let t = |sql: String, ty: SqlType| Ok(TExpr::new(sql, ty));
        match name {
            "count" | "count_big" => {
                let ty = if name == "count" {
                    SqlType::Int
                } else {
                    SqlType::BigInt
                };
                let inner = if star {
                    "*".to_string()
                } else {
                    need(1)?;
                    format!("{d}{}", a[0].sql)
                };
                let mut r = TExpr::new(format!("count({inner})"), ty);
                r.nullable = false;
                Ok(r)
            }
            "sum" => {
                need(1)?;
                let ty = match a[0].ty_or(SqlType::Int) {
                    SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => {
                        SqlType::Int
                    }
                    SqlType::BigInt => SqlType::BigInt,
                    SqlType::Real | SqlType::Float => SqlType::Float,
                    SqlType::Decimal { scale, .. } => SqlType::Decimal {
                        precision: 38,
                        scale,
                    },
                    SqlType::Money => SqlType::Money,
                    _ => {
                        return Err(SqlError::new(
                            8117,
                            "Operand data type is invalid for sum operator.",
                        ))
                    }
                };
                t(format!("sum({d}{})", a[0].sql), ty)
            }
            "avg" => {
                need(1)?;
                let at = a[0].ty_or(SqlType::Int);
                if is_integer(&at) {
                    let ty = if at == SqlType::BigInt {
                        SqlType::BigInt
                    } else {
                        SqlType::Int
                    };
                    t(format!("trunc(avg({d}{}))", a[0].sql), ty)
                } else {
                    let ty = match at {
                        SqlType::Decimal { scale, .. } => SqlType::Decimal {
                            precision: 38,
                            scale: scale.max(6),
                        },
                        SqlType::Money => SqlType::Money,
                        _ => SqlType::Float,
                    };
                    t(format!("avg({d}{})", a[0].sql), ty)
                }
            }
            "max" | "min" => {
                need(1)?;
                t(format!("{name}({d}{})", a[0].sql), a[0].ty_or(SqlType::Int))
            }
            "isnull" => {
                need(2)?;
                let ty = a[0].ty.clone().or(a[1].ty.clone()).unwrap_or(SqlType::Int);
                // The replacement is converted to the first argument's type, as SQL Server
                // does: ISNULL(@v3, 'abcdef') is 'abc', ISNULL(@int, 2.7) is 2.
                let second = match (&a[0].ty, &a[1].ty) {
                    (Some(t0), Some(t1)) if t0 != t1 && !(a[1].literal && fits(&a[1], t0)) => {
                        self.cast(&a[1], t0, None)?.sql
                    }
                    _ => cast_if_needed(&a[1], &ty),
                };
                let mut r = TExpr::new(format!("COALESCE({}, {second})", a[0].sql), ty);
                r.nullable = a[1].nullable;
                Ok(r)
            }
            "coalesce" => {
                if n < 2 {
                    return Err(SqlError::new(
                        174,
                        "The coalesce function requires 2 or more arguments.",
                    ));
                }
                let mut ty = None;
                for x in &a {
                    ty = higher(ty, x.ty.clone());
                }
                let ty = ty.unwrap_or(SqlType::Int);
                let items: Vec<String> = a.iter().map(|x| cast_if_needed(x, &ty)).collect();
                t(format!("COALESCE({})", items.join(", ")), ty)
            }
            "nullif" => {
                need(2)?;
                let strings = a.iter().all(|x| x.ty.as_ref().is_some_and(is_string));
                if strings {
                    // Equal as SQL Server compares strings: collation, no trailing spaces.
                    return t(
                        format!(
                            "CASE WHEN rtrim(({})::text, ' ') = rtrim(({})::text, ' ') COLLATE emu_catalog.tr_ci THEN NULL ELSE {} END",
                            a[0].sql, a[1].sql, a[0].sql
                        ),
                        a[0].ty_or(SqlType::Int),
                    );
                }
                let (x, y) = coerce_pair(&a[0], &a[1]);
                t(
                    format!("NULLIF({}, {})", x.sql, y.sql),
                    a[0].ty_or(SqlType::Int),
                )
            }
            "getdate" | "current_timestamp" => {
                need(0)?;
                t(
                    "emu_catalog.dt300(localtimestamp)".into(),
                    SqlType::DateTime,
                )
            }
            "getutcdate" => {
                need(0)?;
                t(
                    "emu_catalog.dt300((now() AT TIME ZONE 'UTC'))".into(),
                    SqlType::DateTime,
                )
            }
            "sysdatetime" => {
                need(0)?;
                t("localtimestamp".into(), SqlType::DateTime2(7))
            }
            "sysutcdatetime" => {
                need(0)?;
                t("(now() AT TIME ZONE 'UTC')".into(), SqlType::DateTime2(7))
            }
            "newid" => {
                need(0)?;
                t("gen_random_uuid()".into(), SqlType::UniqueIdentifier)
            }
            "string_agg" => {
                need(2)?;
                let sep = &a[1];
                if !sep.literal {
                    return Err(unsupported(
                        "STRING_AGG with a separator that is not a literal (not supported by the emulator)",
                    ));
                }
                let order = if f.within_group.is_empty() {
                    String::new()
                } else {
                    let mut keys = Vec::new();
                    for o in &f.within_group {
                        let k = self.expr(&o.expr)?;
                        let dir = match o.options.sort {
                            Some(ast::OrderBySort::Desc) => " DESC NULLS LAST",
                            Some(ast::OrderBySort::Asc) | None => " NULLS FIRST",
                            Some(_) => return Err(unsupported("ORDER BY … USING")),
                        };
                        keys.push(format!("{}{dir}", k.sql));
                    }
                    format!(" ORDER BY {}", keys.join(", "))
                };
                // SQL Server: nvarchar(4000)/varchar(8000), or (n)varchar(max) for max input.
                let ty = match &a[0].ty {
                    Some(SqlType::NVarChar(None) | SqlType::VarChar(None)) => {
                        a[0].ty.clone().unwrap_or(SqlType::NVarChar(None))
                    }
                    Some(SqlType::VarChar(_) | SqlType::Char(_)) => SqlType::VarChar(Some(8000)),
                    _ => SqlType::NVarChar(Some(4000)),
                };
                t(
                    format!(
                        "string_agg(({})::text, ({})::text{order})",
                        a[0].sql, sep.sql
                    ),
                    ty,
                )
            }
            "error_number" | "error_message" | "error_severity" | "error_state" | "error_line"
            | "error_procedure" | "xact_state" => {
                need(0)?;
                let (b, ty) = match name {
                    "error_number" => (Bind::ErrNumber, SqlType::Int),
                    "error_message" => (Bind::ErrMessage, SqlType::NVarChar(Some(4000))),
                    "error_severity" => (Bind::ErrSeverity, SqlType::Int),
                    "error_state" => (Bind::ErrState, SqlType::Int),
                    "error_line" => (Bind::ErrLine, SqlType::Int),
                    "xact_state" => (Bind::XactState, SqlType::SmallInt),
                    _ => return t("CAST(NULL AS text)".into(), SqlType::NVarChar(Some(128))),
                };
                let p = self.bind(b, ty.clone());
                t(p, ty)
            }
            "scope_identity" => {
                need(0)?;
                let ty = SqlType::Decimal {
                    precision: 38,
                    scale: 0,
                };
                let p = self.bind(Bind::ScopeIdentity, ty.clone());
                t(p, ty)
            }
            "object_id" => {
                if n == 0 || n > 2 {
                    return Err(SqlError::new(
                        174,
                        "The object_id function requires 1 to 2 arguments.",
                    ));
                }
                let second = if n == 2 {
                    format!("({})::text", a[1].sql)
                } else {
                    "NULL".into()
                };
                // A literal name is resolved here with the Turkish identifier rules.
                if a[0].literal && a[0].sql.len() >= 2 && a[0].sql.starts_with('\'') {
                    let raw = a[0].sql[1..a[0].sql.len() - 1].replace("''", "'");
                    let last = raw
                        .rsplit('.')
                        .next()
                        .unwrap_or("")
                        .replace(['[', ']', '"'], "");
                    return t(
                        format!(
                            "(SELECT object_id FROM emu_catalog.tables WHERE name_lc = {} AND ({second} IS NULL OR upper(btrim({second})) = 'U'))",
                            quote_lit(&ident_key(&last))
                        ),
                        SqlType::Int,
                    );
                }
                t(
                    format!("emu_catalog.object_id(({})::text, {second})", a[0].sql),
                    SqlType::Int,
                )
            }
            "iif" => {
                need(3)?;
                let ty = higher(a[1].ty.clone(), a[2].ty.clone()).unwrap_or(SqlType::Int);
                t(
                    format!(
                        "CASE WHEN {} THEN {} ELSE {} END",
                        a[0].sql,
                        cast_if_needed(&a[1], &ty),
                        cast_if_needed(&a[2], &ty)
                    ),
                    ty,
                )
            }
            "concat" => {
                if n < 2 {
                    return Err(SqlError::new(
                        189,
                        "The concat function requires 2 to 254 arguments.",
                    ));
                }
                let nat = a
                    .iter()
                    .any(|x| matches!(x.ty, Some(SqlType::NVarChar(_) | SqlType::NChar(_))));
                // Each argument becomes text as CAST writes it (dates in style 0, money with
                // two decimals, GUIDs upper case).
                let mut items = Vec::new();
                for x in &a {
                    match &x.ty {
                        Some(ty) if !is_string(ty) => {
                            items.push(self.cast(x, &SqlType::NVarChar(None), None)?.sql)
                        }
                        _ => items.push(format!("({})::text", x.sql)),
                    }
                }
                let mut r = TExpr::new(
                    format!("concat({})", items.join(", ")),
                    if nat {
                        SqlType::NVarChar(Some(4000))
                    } else {
                        SqlType::VarChar(Some(8000))
                    },
                );
                r.nullable = false;
                Ok(r)
            }
            "db_name" => t(
                "current_setting('emu.database')".into(),
                SqlType::NVarChar(Some(128)),
            ),
            "len" => {
                need(1)?;
                let ty = match a[0].ty {
                    Some(SqlType::NVarChar(None) | SqlType::VarChar(None)) => SqlType::BigInt,
                    _ => SqlType::Int,
                };
                t(format!("length(rtrim(({})::text, ' '))", a[0].sql), ty)
            }
            "upper" | "lower" => {
                need(1)?;
                t(
                    format!("{name}(({})::text COLLATE emu_catalog.tr_det)", a[0].sql),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "ltrim" | "rtrim" => {
                need(1)?;
                t(
                    format!("{name}(({})::text, ' ')", a[0].sql),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "left" | "right" => {
                need(2)?;
                t(
                    format!("{name}(({})::text, {})", a[0].sql, length_arg(&a[1], name)),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "substring" => {
                need(3)?;
                t(
                    format!(
                        "substr(({})::text, {}, {})",
                        a[0].sql,
                        a[1].sql,
                        length_arg(&a[2], name)
                    ),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "replace" => {
                need(3)?;
                // Turkish_CI_AS: the pattern matches case-insensitively with Turkish casing.
                t(
                    format!(
                        "emu_catalog.ci_replace(({})::text, ({})::text, ({})::text)",
                        a[0].sql, a[1].sql, a[2].sql
                    ),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "charindex" => {
                if n == 3 {
                    return t(
                        format!(
                            "emu_catalog.ci_charindex(({})::text, ({})::text, CAST({} AS bigint))",
                            a[0].sql, a[1].sql, a[2].sql
                        ),
                        SqlType::Int,
                    );
                }
                need(2)?;
                t(
                    format!(
                        "emu_catalog.ci_charindex(({})::text, ({})::text)",
                        a[0].sql, a[1].sql
                    ),
                    SqlType::Int,
                )
            }
            "datalength" => {
                need(1)?;
                // Bytes as SQL Server stores the value: trailing spaces count, nvarchar is
                // UTF-16 (two bytes a character, four outside the BMP), varchar one byte (cp1254).
                let x = &a[0].sql;
                let fixed =
                    |bytes: i32| format!("CASE WHEN ({x}) IS NULL THEN NULL ELSE {bytes} END");
                let (sql, ty) = match a[0].ty.clone() {
                    None => ("CAST(NULL AS integer)".to_string(), SqlType::Int),
                    Some(ty) => {
                        let sql = match &ty {
                            // char(n) is padded to n, as on SQL Server.
                            SqlType::Char(n) => fixed(i32::from(*n)),
                            SqlType::NChar(n) => fixed(2 * i32::from(*n)),
                            SqlType::NVarChar(_) => format!(
                                "(2 * length(({x})::text) + 2 * length(regexp_replace(({x})::text COLLATE \"C\", '[\\u0001-\\uffff]', '', 'g')))"
                            ),
                            SqlType::VarBinary(_) => format!("octet_length({x})"),
                            t if is_string(t) => format!("length(({x})::text)"),
                            SqlType::Bit | SqlType::TinyInt => fixed(1),
                            SqlType::SmallInt => fixed(2),
                            SqlType::Int | SqlType::Real | SqlType::SmallDateTime => fixed(4),
                            SqlType::Date => fixed(3),
                            SqlType::UniqueIdentifier => fixed(16),
                            SqlType::Decimal { precision, .. } => fixed(match precision {
                                0..=9 => 5,
                                10..=19 => 9,
                                20..=28 => 13,
                                _ => 17,
                            }),
                            SqlType::DateTime2(p) => fixed(match p {
                                0..=2 => 6,
                                3..=4 => 7,
                                _ => 8,
                            }),
                            _ => fixed(8),
                        };
                        let big = matches!(
                            ty,
                            SqlType::NVarChar(None)
                                | SqlType::VarChar(None)
                                | SqlType::VarBinary(None)
                        );
                        (sql, if big { SqlType::BigInt } else { SqlType::Int })
                    }
                };
                let sql = if ty == SqlType::BigInt {
                    format!("CAST({sql} AS bigint)")
                } else {
                    format!("CAST({sql} AS integer)")
                };
                t(sql, ty)
            }
            "abs" => {
                need(1)?;
                t(format!("abs({})", a[0].sql), a[0].ty_or(SqlType::Int))
            }
            "round" => {
                if n != 2 && n != 3 {
                    return Err(SqlError::new(
                        174,
                        "The round function requires 2 or 3 arguments.",
                    ));
                }
                let ty = a[0].ty_or(SqlType::Float);
                // ROUND(x, n, f): a non-zero f truncates instead of rounding.
                let (x, d) = (format!("({})::numeric", a[0].sql), &a[1].sql);
                let r = if n == 2 {
                    format!("round({x}, {d})")
                } else {
                    format!(
                        "CASE WHEN ({}) <> 0 THEN trunc({x}, {d}) ELSE round({x}, {d}) END",
                        a[2].sql
                    )
                };
                t(format!("CAST({r} AS {})", pg_type_name(&ty)), ty)
            }
            "ceiling" | "floor" => {
                need(1)?;
                let f = if name == "ceiling" { "ceil" } else { "floor" };
                t(format!("{f}({})", a[0].sql), a[0].ty_or(SqlType::Float))
            }
            "year" | "month" | "day" => {
                need(1)?;
                t(
                    format!("CAST(extract({name} FROM {}) AS integer)", a[0].sql),
                    SqlType::Int,
                )
            }
            "datepart" => {
                need(2)?;
                let p = date_part(&a[0].sql)?;
                let x = &a[1].sql;
                // PostgreSQL's second and millisecond include the fraction / the seconds;
                // SQL Server's are whole parts (datetime shown rounded to the millisecond).
                let sql = match (p, a[0].sql.trim_matches('\'')) {
                    (_, "dayofyear" | "dy" | "y") => {
                        format!("CAST(extract(doy FROM {x}) AS integer)")
                    }
                    ("second", _) => format!("CAST(floor(extract(second FROM {x})) AS integer)"),
                    ("millisecond", _) => {
                        let v = if a[1].ty == Some(SqlType::DateTime) {
                            format!("date_trunc('millisecond', ({x}) + interval '0.5 millisecond')")
                        } else {
                            x.clone()
                        };
                        format!("(CAST(floor(extract(millisecond FROM {v})) AS integer) % 1000)")
                    }
                    _ => format!("CAST(extract({p} FROM {x}) AS integer)"),
                };
                t(sql, SqlType::Int)
            }
            "dateadd" => {
                need(3)?;
                let p = date_part(&a[0].sql)?;
                let ty = a[2].ty_or(SqlType::DateTime);
                let ty = if is_string(&ty) {
                    SqlType::DateTime
                } else {
                    ty
                };
                let base = format!("CAST({} AS timestamp)", a[2].sql);
                let sql = format!("({base} + ({}) * interval '1 {p}')", a[1].sql);
                let sql = match ty {
                    SqlType::Date => format!("CAST({sql} AS date)"),
                    SqlType::DateTime => format!("emu_catalog.dt300({sql})"),
                    _ => sql,
                };
                t(sql, ty)
            }
            "datediff" => {
                need(3)?;
                let p = date_part(&a[0].sql)?;
                let (x, y) = (
                    format!("CAST({} AS timestamp)", a[1].sql),
                    format!("CAST({} AS timestamp)", a[2].sql),
                );
                let sql = match p {
                    "day" => format!("(CAST({y} AS date) - CAST({x} AS date))"),
                    "year" => format!("CAST(extract(year FROM {y}) - extract(year FROM {x}) AS integer)"),
                    "month" => format!("CAST((extract(year FROM {y}) - extract(year FROM {x})) * 12 + extract(month FROM {y}) - extract(month FROM {x}) AS integer)"),
                    "hour" => format!("CAST(floor(extract(epoch FROM date_trunc('hour', {y}) - date_trunc('hour', {x})) / 3600) AS integer)"),
                    "minute" => format!("CAST(floor(extract(epoch FROM date_trunc('minute', {y}) - date_trunc('minute', {x})) / 60) AS integer)"),
                    "second" => format!("CAST(floor(extract(epoch FROM date_trunc('second', {y}) - date_trunc('second', {x}))) AS integer)"),
                    _ => format!("CAST(floor(extract(epoch FROM {y} - {x}) * 1000) AS integer)"),
                };
                t(sql, SqlType::Int)
            }
            "now" | "current_date" | "array_agg" | "to_char" | "to_date" | "nextval"
            | "currval" | "generate_series" | "concat_ws" | "strpos" | "ilike" | "date_trunc" => {
                Err(unsupported(format!(
                    "{name}() (PostgreSQL function, not T-SQL)"
                )))
            }
            _ => Err(unsupported(format!("{name}()"))),
        }
    }
}

/// The length argument of LEFT, RIGHT or SUBSTRING: a negative one is SQL Server's error 536 /
/// 537 (PostgreSQL would count it from the end, or return an empty string).
fn length_arg(x: &TExpr, function: &str) -> String {
    if x.literal && x.sql.parse::<u32>().is_ok() {
        return x.sql.clone();
    }
    format!(
        "emu_catalog.length_arg(CAST({} AS bigint), {})",
        x.sql,
        quote_lit(function)
    )
}

/// A `char(n)`/`nchar(n)` column read as SQL Server reads it: padded with spaces to `n`
/// characters. PostgreSQL's `char(n)` pads when stored but drops the padding when the value is
/// used as text (`+`, LIKE, functions), so the padding is restored here.
pub(super) fn padded_char(col: &str, n: u16) -> String {
    format!("rpad(({col})::text, {n})")
}

/// The column inside [`padded_char`]'s form, if `sql` is one.
pub(super) fn padded_char_column(sql: &str) -> Option<&str> {
    let inner = sql.strip_prefix("rpad((")?;
    let (col, n) = inner.rsplit_once(")::text, ")?;
    let n = n.strip_suffix(')')?;
    (n.parse::<u16>().is_ok() && !col.contains('(')).then_some(col)
}

/// The value to CAST: a temporal value as its text form is not needed here, every source
/// converts to varchar as PostgreSQL casts it.
fn cast_source(t: &TExpr) -> String {
    match &t.ty {
        Some(ty) if is_string(ty) || t.literal => t.sql.clone(),
        _ => format!("({})::text", t.sql),
    }
}

/// A date/time value `x` of type `src` as SQL Server's CONVERT writes it in `style` (CAST: no
/// style). Styles the emulator does not know, two-digit-year styles and time styles of a
/// `date` are refused rather than answered in another format.
fn temporal_text(x: &str, src: &SqlType, style: Option<i32>) -> Result<String, SqlError> {
    // datetime is stored in 1/300 s (…003333): shown rounded to the millisecond, as SQL Server.
    let v = if matches!(src, SqlType::DateTime | SqlType::SmallDateTime) {
        format!("date_trunc('millisecond', ({x}) + interval '0.5 millisecond')")
    } else {
        format!("({x})")
    };
    let tc = |f: &str| format!("to_char({v}, '{f}')");
    let date = *src == SqlType::Date;
    let fraction = |p: u8| {
        if p == 0 {
            "''".to_string()
        } else {
            format!(
                "('.' || rpad(substr({}, 1, {}), {p}, '0'))",
                tc("US"),
                p.min(6)
            )
        }
    };
    let digits = match src {
        SqlType::DateTime2(p) => *p,
        SqlType::Date => 0,
        _ => 3,
    };
    let refuse = || {
        Err(unsupported(format!(
            "CONVERT style {} of {} (not supported by the emulator)",
            style.map_or("(none)".to_string(), |s| s.to_string()),
            super::super::catalog::type_to_string(src)
        )))
    };
    let default_100 = || {
        format!(
            "({} || lpad({}, 2) || {} || lpad({}, 2) || {})",
            tc("Mon "),
            tc("FMDD"),
            tc(" YYYY "),
            tc("FMHH12"),
            tc(":MIAM")
        )
    };
    Ok(match style {
        None if date => tc("YYYY-MM-DD"),
        None if matches!(src, SqlType::DateTime2(_)) => {
            format!("({} || {})", tc("YYYY-MM-DD HH24:MI:SS"), fraction(digits))
        }
        None | Some(0) | Some(100) if !date => default_100(),
        Some(101) => tc("MM/DD/YYYY"),
        Some(102) => tc("YYYY.MM.DD"),
        Some(103) => tc("DD/MM/YYYY"),
        Some(104) => tc("DD.MM.YYYY"),
        Some(105) => tc("DD-MM-YYYY"),
        Some(106) => tc("DD Mon YYYY"),
        Some(107) => tc("Mon DD, YYYY"),
        Some(110) => tc("MM-DD-YYYY"),
        Some(111) => tc("YYYY/MM/DD"),
        Some(112) => tc("YYYYMMDD"),
        Some(23) => tc("YYYY-MM-DD"),
        Some(8 | 108) if !date => tc("HH24:MI:SS"),
        Some(20 | 120) if !date => tc("YYYY-MM-DD HH24:MI:SS"),
        Some(21 | 121) if !date => {
            format!("({} || {})", tc("YYYY-MM-DD HH24:MI:SS"), fraction(digits))
        }
        // ISO 8601: SQL Server leaves out the milliseconds when they are zero.
        Some(126 | 127) if matches!(src, SqlType::DateTime | SqlType::SmallDateTime) => format!(
            "({} || CASE WHEN {} = '000' THEN '' ELSE '.' || {} END)",
            tc("YYYY-MM-DD\"T\"HH24:MI:SS"),
            tc("MS"),
            tc("MS")
        ),
        _ => return refuse(),
    })
}

/// A literal that converts to `to` unchanged (a string no longer than its length, an integer
/// into an integer or decimal type): no CAST needed.
fn fits(x: &TExpr, to: &SqlType) -> bool {
    match (&x.ty, to) {
        (
            Some(SqlType::VarChar(Some(n)) | SqlType::NVarChar(Some(n))),
            SqlType::VarChar(m) | SqlType::NVarChar(m),
        ) => m.is_none_or(|m| *n <= m),
        (Some(SqlType::Int), t) => is_integer(t) && *t != SqlType::TinyInt && *t != SqlType::Bit,
        _ => false,
    }
}
