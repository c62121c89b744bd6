//! The field mapping of every entity, one file each.
//!
//! Why one file per entity: a shop whose web columns differ from the reference schema changes
//! the file of that entity only — the Mikro columns read ([`Spec::columns`]), how the key is
//! formed, the web SQL, and how deletes are recognised all live there. The machinery around it
//! (paging, watermark, transactions, retries, bisecting bad rows, the report) is generic.

/// Declares an entity file's [`Entity`] handle and its [`ErpEntity`] implementation over the
/// file's `SPEC`, `apply` and `reconcile` (and mapping, if it has one).
macro_rules! erp_entity {
    ($ty:ident, $handle:ident, $name:literal, [$($alias:literal),* $(,)?], $doc:literal $(, mapped: $mapped:expr)?) => {
        #[doc = concat!("The `", $name, "` entity.")]
        pub struct $ty;

        impl $crate::erp_sync::types::Entity {
            #[doc = $doc]
            pub const $handle: $crate::erp_sync::types::Entity =
                $crate::erp_sync::types::Entity(&$ty);
        }

        impl $crate::erp_sync::types::ErpEntity for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn aliases(&self) -> &'static [&'static str] {
                &[$($alias),*]
            }

            fn spec(&self) -> &'static $crate::erp_sync::types::Spec {
                &SPEC
            }

            $(fn mapped(&self) -> Option<$crate::erp_sync::types::Mapped> {
                Some($mapped)
            })?

            fn apply<'a>(
                &'a self,
                tx: &'a ::deadpool_postgres::Transaction<'a>,
                ws: &'a $crate::erp_sync::types::WebSchema,
                rows: &'a [&'a [$crate::erp_sync::types::Val]],
            ) -> ::futures::future::BoxFuture<
                'a,
                Result<$crate::erp_sync::types::Applied, tokio_postgres::Error>,
            > {
                Box::pin(apply(tx, ws, rows))
            }

            fn reconcile<'a>(
                &'a self,
                tx: &'a ::deadpool_postgres::Transaction<'a>,
                ws: &'a $crate::erp_sync::types::WebSchema,
                keys: &'a [Vec<$crate::erp_sync::types::Val>],
                policy: $crate::erp_sync::types::DeletePolicy,
            ) -> ::futures::future::BoxFuture<
                'a,
                Result<$crate::erp_sync::types::Reconciled, tokio_postgres::Error>,
            > {
                Box::pin(reconcile(tx, ws, keys, policy))
            }
        }
    };
}

pub mod banka;
pub mod barkod;
pub mod cari;
pub mod fiyat;
pub mod fiyat_tanim;
pub mod kasa;
pub mod stok;

use std::str::FromStr;

use super::types::{Entity, UnknownEntity, Val};

impl Entity {
    /// Every entity in dependency order: price lists, banks, cash boxes, customers and products
    /// first, because prices and barcodes resolve their stock and list through them. Adding an
    /// entity is a file here and a place in this list.
    pub const ALL: [Entity; 7] = [
        Entity::FIYAT_TANIM,
        Entity::BANKA,
        Entity::KASA,
        Entity::CARI,
        Entity::STOK,
        Entity::FIYAT,
        Entity::BARKOD,
    ];

    /// The web tables of the given entities (read from the catalog once per run).
    pub fn web_tables(entities: &[Entity]) -> Vec<&'static str> {
        entities
            .iter()
            .flat_map(|e| e.spec().web_tables.iter().copied())
            .collect()
    }
}

impl FromStr for Entity {
    type Err = UnknownEntity;

    /// Accepts the names, the web table names and the Mikro table names, case-insensitive, so
    /// operators can type whichever they know.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_lowercase().replace('-', "_");
        Entity::ALL
            .into_iter()
            .find(|e| e.name() == l || e.def().aliases().contains(&l.as_str()))
            .ok_or_else(|| UnknownEntity {
                name: s.to_string(),
                expected: Entity::ALL.map(Entity::name).join(", "),
            })
    }
}

/// Text or NULL when empty: Mikro writes N'' for "no value", the web uses NULL.
pub(crate) fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

/// Keys as a text array (first key column).
pub(crate) fn text_keys(keys: &[Vec<Val>]) -> Vec<String> {
    keys.iter()
        .map(|k| k.first().map(|v| v.s().to_string()).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_parses_to_its_entity() {
        for e in Entity::ALL {
            assert_eq!(e.name().parse::<Entity>().unwrap(), e);
            for a in e.def().aliases() {
                assert_eq!(a.to_uppercase().parse::<Entity>().unwrap(), e, "{a}");
            }
        }
        let err = "kargo".parse::<Entity>().unwrap_err().to_string();
        for e in Entity::ALL {
            assert!(err.contains(e.name()), "{err}");
        }
    }

    #[test]
    fn prices_and_barcodes_run_after_what_they_resolve() {
        let pos = |e: Entity| Entity::ALL.iter().position(|x| *x == e).unwrap();
        for late in [Entity::FIYAT, Entity::BARKOD] {
            for early in [Entity::FIYAT_TANIM, Entity::STOK] {
                assert!(pos(early) < pos(late), "{early} before {late}");
            }
        }
    }
}
