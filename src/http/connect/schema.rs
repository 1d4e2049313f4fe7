//! The schema the bridge works from: our descriptor set, read at run time
//! with prost-reflect, which resolves a Connect path to its method and
//! turns JSON into protobuf bytes and back (the canonical proto3 JSON
//! mapping: lowerCamelCase names, enums by name, 64-bit integers as
//! strings, `Timestamp` and `Duration` as RFC 3339 and `"1.5s"` strings).
//!
//! Why prost-reflect: the generated types (prost) carry no JSON mapping,
//! and the `connectrpc` crate brings its own protobuf runtime rather than
//! prost's. prost-reflect works with prost 0.14 from the descriptor set
//! `build.rs` already writes for server reflection, so a field added to a
//! `.proto` file reaches JSON callers with no code here. The bridge sees
//! messages only as descriptors and bytes, never as generated types.

use std::sync::LazyLock;

use axum::body::Bytes;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// The package whose services the bridge serves.
const PACKAGE: &str = "spoc.v1";

/// Our messages and services, and the `google.rpc` error details (for the
/// `debug` form of error details).
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let mut pool = DescriptorPool::decode(crate::api::pb::FILE_DESCRIPTOR_SET)
        .expect("build.rs writes a valid descriptor set");
    pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .expect("tonic-types ships a valid descriptor set");
    pool
});

/// The message type named `full_name` (e.g. `google.rpc.BadRequest`).
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    POOL.get_message_by_name(full_name)
}

/// The method of `/service/method`, if `service` is one of ours.
pub fn method(service: &str, method: &str) -> Option<MethodDescriptor> {
    if service.rsplit_once('.').map(|(package, _)| package) != Some(PACKAGE) {
        return None;
    }
    POOL.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// How a call's messages are written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Canonical proto3 JSON.
    Json,
    /// Protobuf bytes, passed through as they are.
    Proto,
}

impl Codec {
    /// The codec of a Connect content subtype (`json` or `proto`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "proto" => Some(Self::Proto),
            _ => None,
        }
    }

    /// `json` or `proto`, as content types spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Proto => "proto",
        }
    }

    /// A request message as protobuf bytes. Protobuf passes through (the
    /// gRPC decoder checks it, as for a gRPC call); JSON is parsed against
    /// `input`, and a body that does not fit is INVALID_ARGUMENT with a
    /// `google.rpc.BadRequest` naming the JSON path. An empty body is the
    /// empty message.
    pub fn request_to_proto(self, input: &MessageDescriptor, body: Bytes) -> Result<Bytes, Status> {
        match self {
            Self::Proto => Ok(body),
            Self::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(Bytes::new()),
            Self::Json => json_to_proto(input, &body).map(Bytes::from),
        }
    }

    /// A response message from protobuf bytes to this codec.
    pub fn response_from_proto(
        self,
        output: &MessageDescriptor,
        message: Bytes,
    ) -> Result<Bytes, Status> {
        match self {
            Self::Proto => Ok(message),
            Self::Json => proto_to_json(output, &message).map(Bytes::from),
        }
    }
}

/// Parses `json` as `input`, naming where it does not fit.
fn json_to_proto(input: &MessageDescriptor, json: &[u8]) -> Result<Vec<u8>, Status> {
    let mut track = serde_path_to_error::Track::new();
    let mut parser = serde_json::Deserializer::from_slice(json);
    // Unknown fields are refused (the proto3 JSON default): a misspelt
    // field would otherwise be dropped without a word.
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let parsed = DynamicMessage::deserialize_with_options(
        input.clone(),
        serde_path_to_error::Deserializer::new(&mut parser, &mut track),
        &options,
    )
    .and_then(|message| parser.end().map(|()| message));
    match parsed {
        Ok(message) => Ok(message.encode_to_vec()),
        Err(err) => {
            let path = track.path().to_string();
            let mut field = if path == "." { String::new() } else { path };
            // An unknown key fails before the path reaches it: name it too.
            if let Some(key) = unknown_key(&err.to_string()) {
                field = if field.is_empty() {
                    key.to_string()
                } else {
                    format!("{field}.{key}")
                };
            }
            let reason = format!("not a valid {} in JSON: {err}", input.name());
            let message = if field.is_empty() {
                format!("request body is {reason}")
            } else {
                format!("{field}: {reason}")
            };
            Err(Status::with_error_details(
                tonic::Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ))
        }
    }
}

/// The key of prost-reflect's unknown-field error
/// (`unrecognized field name 'colour' at line 1 column 23`).
fn unknown_key(error: &str) -> Option<&str> {
    let rest = error.strip_prefix("unrecognized field name '")?;
    rest.split_once('\'').map(|(key, _)| key)
}

/// The JSON form of a message the service encoded.
fn proto_to_json(output: &MessageDescriptor, message: &[u8]) -> Result<Vec<u8>, Status> {
    let decoded = DynamicMessage::decode(output.clone(), message).map_err(|e| {
        Status::internal(format!("the reply is not a valid {}: {e}", output.name()))
    })?;
    to_json(&decoded)
        .map_err(|e| Status::internal(format!("cannot write {} as JSON: {e}", output.name())))
}

/// A message of ours (`full_name`, e.g. `spoc.v1.Report`) in proto3 JSON
/// with the Connect endpoint's field names, every scalar and list written
/// (defaults included, so that a script reading a file need not know
/// proto3's defaults; a message field left unset stays out).
pub fn message_to_json<M: prost::Message>(full_name: &str, message: &M) -> Result<Vec<u8>, String> {
    let descriptor = self::message(full_name).ok_or_else(|| format!("no message {full_name}"))?;
    let decoded = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| format!("not a valid {full_name}: {e}"))?;
    let mut writer = serde_json::Serializer::pretty(Vec::new());
    decoded
        .serialize_with_options(
            &mut writer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .map_err(|e| format!("cannot write {full_name} as JSON: {e}"))?;
    Ok(writer.into_inner())
}

/// `message` in canonical proto3 JSON (default values left out).
pub fn to_json(message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    let mut writer = serde_json::Serializer::new(Vec::new());
    message.serialize_with_options(&mut writer, &SerializeOptions::new())?;
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_services_resolve() {
        let found = method("spoc.v1.MasteryService", "GetMastery").expect("ours");
        assert_eq!(found.input().full_name(), "spoc.v1.GetMasteryRequest");
        assert!(method("spoc.v1.MasteryService", "Nope").is_none());
        assert!(method("grpc.health.v1.Health", "Check").is_none());
        assert!(method("spoc.v1", "GetMastery").is_none());
    }

    #[test]
    fn json_round_trips_through_protobuf_with_the_canonical_mapping() {
        let method = method("spoc.v1.MasteryService", "RecordAttempts").unwrap();
        let json = br#"{"attempts": [{"attemptId": "a1", "learner_id": "alice",
            "skillIds": ["s"], "correct": true, "occurredAt": "2026-03-01T10:00:00Z",
            "timeSpent": "30s"}]}"#;
        let proto = Codec::Json
            .request_to_proto(&method.input(), Bytes::from_static(json))
            .unwrap();
        let back = proto_to_json(&method.input(), &proto).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"attempts": [{"attemptId": "a1", "learnerId": "alice",
                "skillIds": ["s"], "correct": true, "occurredAt": "2026-03-01T10:00:00Z",
                "timeSpent": "30s"}]})
        );
    }

    #[test]
    fn json_that_does_not_fit_names_its_path() {
        let method = method("spoc.v1.MasteryService", "RecordAttempts").unwrap();
        for (json, field) in [
            (
                &br#"{"attempts": [{}, {"correct": "yes"}]}"#[..],
                "attempts[1].correct",
            ),
            (br#"{"attempts": [{"colour": 1}]}"#, "attempts[0].colour"),
            (
                br#"{"attempts": [{"occurredAt": "yesterday"}]}"#,
                "attempts[0].occurredAt",
            ),
            (br#"{"attempts": [], "colour": 1}"#, "colour"),
            (br#"[1]"#, ""),
        ] {
            let status = Codec::Json
                .request_to_proto(&method.input(), Bytes::from_static(json))
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            let details = status.get_error_details();
            let violations = &details.bad_request().expect("BadRequest").field_violations;
            assert_eq!(violations[0].field, field, "{}", status.message());
        }
    }

    #[test]
    fn an_empty_json_body_is_the_empty_message() {
        let method = method("spoc.v1.CatalogService", "ListSkills").unwrap();
        let proto = Codec::Json
            .request_to_proto(&method.input(), Bytes::from_static(b" \n"))
            .unwrap();
        assert!(proto.is_empty());
    }
}
