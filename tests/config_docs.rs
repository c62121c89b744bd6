//! The one configuration table (docs/configuration.md) lists every setting the code reads, and
//! the TOML example in it is valid.

use mikro_sync::config::{is_known_setting, parse_toml, Config, SETTINGS};

const DOC: &str = include_str!("../docs/configuration.md");

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
