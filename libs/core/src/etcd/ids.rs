//! etcd's ids of members and clusters: 64-bit numbers that etcd, etcdctl and
//! every line of ours print in lower-case hex without padding
//! (`8e9e05c52164694d`). One type each, so the hex is written in one place and
//! a member id is never taken for a cluster id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! etcd_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            // Through `LowerHex`, so a table's width and alignment apply.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            /// Hex, as [`Display`](fmt::Display) writes it.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                u64::from_str_radix(text, 16).map(Self)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                Self(id)
            }
        }

        /// As hex text, the way every report and manifest has written it.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(|e| {
                    serde::de::Error::custom(format!("{text:?} is not a hex id: {e}"))
                })
            }
        }
    };
}

etcd_id!(
    /// A member of an etcd cluster.
    MemberId
);

etcd_id!(
    /// An etcd cluster: a new one is born at every formation and every restore.
    ClusterId
);

/// Ids as a list for people: `1, 2, 3a`.
pub fn joined<T: fmt::Display>(ids: &[T]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_etcdctl_prints_them() {
        assert_eq!(MemberId(0x8e9e05c52164694d).to_string(), "8e9e05c52164694d");
        assert_eq!(ClusterId(0xc1).to_string(), "c1");
    }

    #[test]
    fn ids_fill_a_table_column() {
        assert_eq!(format!("{:<5}|", ClusterId(0xc1)), "c1   |");
    }

    #[test]
    fn ids_read_back_from_their_hex() {
        assert_eq!("8e9e05c52164694d".parse(), Ok(MemberId(0x8e9e05c52164694d)));
        assert!("not-hex".parse::<ClusterId>().is_err());
    }

    #[test]
    fn a_list_of_ids_reads_as_etcdctl_prints_each() {
        assert_eq!(joined(&[MemberId(1), MemberId(0x3a)]), "1, 3a");
        assert_eq!(joined::<MemberId>(&[]), "");
    }

    #[test]
    fn ids_travel_as_hex_text() {
        let json = serde_json::to_string(&MemberId(0xab)).unwrap_or_default();
        assert_eq!(json, r#""ab""#);
        let back: Result<MemberId, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(MemberId(0xab)));
        assert!(serde_json::from_str::<ClusterId>(r#""zz""#).is_err());
    }
}
