//! Reads tolerate integer width and float/decimal differences between Mikro versions: the same
//! logical value arrives as tinyint, smallint, int or bigint, as float, real or decimal.

use std::borrow::Cow;

use mikro_sync::erp_sync::read::{decode, Kind, Stamp, Val};
use tiberius::numeric::Numeric;
use tiberius::ColumnData;
use tiberius::ToSql;

#[test]
fn integers_of_every_width() {
    for cd in [
        ColumnData::U8(Some(1)),
        ColumnData::I16(Some(1)),
        ColumnData::I32(Some(1)),
        ColumnData::I64(Some(1)),
        ColumnData::Bit(Some(true)),
        ColumnData::Numeric(Some(Numeric::new_with_scale(10, 1))),
        ColumnData::F64(Some(1.0)),
    ] {
        assert_eq!(decode(&cd, Kind::Int), Ok(Val::Int(1)), "{cd:?}");
    }
    assert!(decode(&ColumnData::F64(Some(1.5)), Kind::Int).is_err());
    assert!(decode(&ColumnData::I32(None), Kind::Int).is_err());
    assert!(decode(&ColumnData::String(Some(Cow::from("x"))), Kind::Int).is_err());
}

#[test]
fn numbers_as_float_real_or_decimal() {
    let cases = [
        (ColumnData::F64(Some(2087.5)), 2087.5),
        (ColumnData::F32(Some(2087.5)), 2087.5),
        (
            ColumnData::Numeric(Some(Numeric::new_with_scale(20875, 1))),
            2087.5,
        ),
        (ColumnData::I32(Some(0)), 0.0),
        (ColumnData::U8(Some(0)), 0.0),
    ];
    for (cd, want) in cases {
        assert_eq!(decode(&cd, Kind::Float), Ok(Val::Float(want)), "{cd:?}");
    }
    assert!(decode(&ColumnData::F64(None), Kind::Float).is_err());
    assert!(decode(&ColumnData::F64(Some(f64::NAN)), Kind::Float).is_err());
}

#[test]
fn text_keeps_turkish_and_drops_trailing_blanks() {
    let cd = ColumnData::String(Some(Cow::from("Çağrı Işık Öğüt  ")));
    assert_eq!(
        decode(&cd, Kind::Str),
        Ok(Val::Str("Çağrı Işık Öğüt".into()))
    );
    assert_eq!(
        decode(&ColumnData::String(None), Kind::Str),
        Ok(Val::Str(String::new()))
    );
    assert_eq!(
        decode(&ColumnData::I16(Some(7)), Kind::Str),
        Ok(Val::Str("7".into()))
    );
}

#[test]
fn legacy_datetime_is_sent_back_exactly() {
    // 2/300 s is 6.666… ms: as datetime2 it would be rounded; as datetime it is exact.
    let s = Stamp::Legacy {
        days: 46000,
        ticks: 2,
    };
    match s.to_sql() {
        ColumnData::DateTime(Some(dt)) => {
            assert_eq!((dt.days(), dt.seconds_fragments()), (46000, 2))
        }
        other => panic!("expected a legacy datetime, got {other:?}"),
    }
    let n = s.naive();
    assert_eq!(n.and_utc().timestamp_subsec_nanos(), 6_666_666);
    assert!(
        Stamp::Legacy {
            days: 46000,
            ticks: 3
        } > s
    );
}
