//! The one configuration table (docs/configuration.md) lists every setting the code reads, and
//! the TOML example in it is valid.

use mikro_sync::config::{is_known_setting, parse_duration, parse_toml, Config, SETTINGS};

const DOC: &str = include_str!("../../docs/configuration.md");

#[test]
fn every_setting_is_documented() {
    for s in SETTINGS {
        for name in s.name.split(" / ") {
            assert!(
                DOC.contains(&format!("`{name}`")),
                "{name} missing from docs/configuration.md"
            );
        }
    }
}

#[test]
fn toml_example_in_the_docs_parses() {
    let start = DOC.find("```toml").expect("toml example") + "```toml".len();
    let end = start + DOC[start..].find("```").expect("end of example");
    let map = parse_toml(&DOC[start..end]).expect("example parses");
    for k in map.keys() {
        assert!(is_known_setting(k), "example uses unknown setting {k}");
    }
    Config::from_map(&map).expect("example is a valid configuration");
}

/// The rows of the settings table in docs/configuration.md: (names, default, meaning).
fn doc_rows() -> Vec<(String, String, String)> {
    DOC.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "table row with three cells: {l}");
            (
                cells[0].replace('`', ""),
                cells[1].to_string(),
                cells[2].to_string(),
            )
        })
        .collect()
}

#[test]
fn docs_table_is_the_settings_list() {
    let rows = doc_rows();
    let list: Vec<(String, String, String)> = SETTINGS
        .iter()
        .map(|s| (s.name.into(), s.default.into(), s.help.into()))
        .collect();
    assert_eq!(
        rows, list,
        "regenerate the table with `mikro-sync config --list`"
    );
}

#[test]
fn table_defaults_are_what_the_parser_uses() {
    let map: std::collections::BTreeMap<String, String> = [
        ("PG_DATABASE", "web"),
        ("PG_USER", "u"),
        ("MSSQL_SERVER", "h"),
        ("MSSQL_DATABASE", "d"),
        ("MSSQL_USER", "u"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let shown = Config::from_map(&map).unwrap().render_masked();
    let same = |table: &str, parsed: &str| {
        table == parsed
            || matches!((parse_duration(table), parse_duration(parsed)), (Some(a), Some(b)) if a == b)
            || (table.starts_with('—') && parsed == "(none)")
            || table.strip_prefix("— ") == Some(parsed)
            || parsed.ends_with(&format!("({table})"))
    };
    let mut compared = 0;
    for line in shown.lines() {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Some(s) = SETTINGS
            .iter()
            .find(|s| s.name.split(" / ").any(|n| n == name))
        else {
            continue;
        };
        compared += 1;
        assert!(
            same(s.default, value.trim()),
            "{name}: the table says {:?}, an empty configuration gives {:?}",
            s.default,
            value.trim()
        );
    }
    assert!(compared > 30, "{shown}");
}
