//! Request bodies that are not valid protobuf, sent as raw bytes through a
//! real channel: the client got them wrong, so they are INVALID_ARGUMENT
//! (with prost's description, naming the field where it can), never
//! INTERNAL, and nothing stored changes.

use crate::common::*;
use prost::bytes::BufMut;
use spoc_engine::api::codec::ProtoDecoder;
use spoc_engine::api::pb;
use tonic::Code;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

/// Sends its bytes as the request message, unchecked, and decodes the
/// reply as `R`.
struct RawCodec<R>(std::marker::PhantomData<R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl<R: prost::Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = ProtoDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ProtoDecoder<R> {
        ProtoDecoder::default()
    }
}

/// Calls `method` with `body` as the message bytes, with the admin key.
async fn call_raw<R: prost::Message + Default + Send + 'static>(
    server: &TestServer,
    method: &'static str,
    body: &[u8],
) -> Result<R, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body.to_vec()),
        PathAndQuery::from_static(method),
        RawCodec::<R>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

const GET_SKILL: &str = "/spoc.v1.CatalogService/GetSkill";
const UPSERT_SKILL: &str = "/spoc.v1.CatalogService/UpsertSkill";

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument() {
    let server = TestServer::start().await;
    seed(&server).await;
    let before = catalog_snapshot(&server).await;

    // skill_id (field 1, length 2) holding bytes that are not UTF-8.
    let err = call_raw::<pb::Skill>(&server, GET_SKILL, &[0x0a, 0x02, 0xff, 0xfe])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("GetSkillRequest.skill_id: invalid string value"),
        "{}",
        err.message()
    );
    // A length of 16 with 2 bytes left; a varint that never ends.
    for body in [&[0x0a, 0x10, 0x61, 0x62][..], &[0xff, 0xff, 0xff][..]] {
        let err = call_raw::<pb::Skill>(&server, GET_SKILL, body)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{body:x?}: {err:?}");
        assert!(
            err.message().contains("failed to decode Protobuf message"),
            "{}",
            err.message()
        );
    }
    // A write whose nested skill.id is not UTF-8 is refused alike.
    let err = call_raw::<pb::Skill>(
        &server,
        UPSERT_SKILL,
        &[0x0a, 0x06, 0x0a, 0x02, 0xff, 0xfe, 0x12, 0x00],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("Skill.id"), "{}", err.message());

    // Well-formed bytes, raw or through the generated client, still work.
    let a: pb::Skill = call_raw(&server, GET_SKILL, &[0x0a, 0x01, b'a'])
        .await
        .unwrap();
    assert_eq!(a, skill("a", &[]));
    let b = server.stored_skill("b").await;
    assert_eq!(b, skill("b", &["a"]));

    assert_eq!(
        catalog_snapshot(&server).await,
        before,
        "nothing stored changed"
    );
    server.stop().await;
}
