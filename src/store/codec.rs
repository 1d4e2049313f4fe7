//! Value encoding: one version byte, then postcard.
//!
//! Postcard is compact (varints, no field names) and serde-driven, so the
//! domain types are stored as they are. The version byte lets a later layout
//! change the encoding and still read old values; an unknown version or
//! undecodable bytes become [`Error::Corrupt`], never a silent skip.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// Version byte written in front of every value.
pub const VALUE_VERSION: u8 = 1;

/// Encodes a value for storage.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    // Serializing our own plain types into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding of a domain type"));
    out
}

/// Decodes a stored value; `tree` and `key` only serve the error message.
pub fn decode<T: DeserializeOwned>(tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| Error::Corrupt {
        tree,
        key: super::keys::display(key),
        reason,
    };
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| corrupt(format!("undecodable value: {e}")))
        }
        Some((version, _)) => Err(corrupt(format!("unknown value version {version}"))),
        None => Err(corrupt("empty value".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Skill;

    #[test]
    fn round_trip_and_corruption_are_reported() {
        let skill = Skill {
            id: "s".into(),
            name: "S".into(),
            prerequisite_ids: vec!["p".into()],
        };
        let bytes = encode(&skill);
        assert_eq!(decode::<Skill>("skills", b"s", &bytes).unwrap(), skill);

        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        let err = decode::<Skill>("skills", b"s", &wrong_version).unwrap_err();
        assert!(err.to_string().contains("unknown value version 9"), "{err}");

        let truncated = &bytes[..2];
        assert!(matches!(
            decode::<Skill>("skills", b"s", truncated),
            Err(Error::Corrupt { .. })
        ));
        assert!(decode::<Skill>("skills", b"s", &[]).is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder: they decode or are reported.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode::<Skill>("skills", b"k", &bytes);
            let _ = decode::<crate::domain::mastery::Attempt>("attempts", b"k", &bytes);
        }
    }
}
