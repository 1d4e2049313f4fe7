//! The protobuf codec of our generated services (`build.rs` names it with
//! tonic-prost-build's `codec_path`).
//!
//! It is `tonic_prost::ProstCodec` with one change: a message that does not
//! decode is INVALID_ARGUMENT, not INTERNAL. Bytes a client sent that are
//! not a valid message (a string that is not UTF-8, a truncated field, a
//! bad varint) are the client's mistake, and the code says so; the message
//! keeps prost's description, which names the field where it can
//! (`GetSkillRequest.skill_id: invalid string value: ...`). Encoding stays
//! prost's: a failure there is ours, INTERNAL.
//!
//! The generated clients (the CLI's) share this codec, so a response that
//! does not decode is also INVALID_ARGUMENT on their side; our server only
//! sends prost-encoded messages, so only a broken or incompatible peer
//! could cause one, and the CLI reports every failure alike.
//!
//! Health and reflection keep their own codecs: they are not generated from
//! our protos.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// A [`Codec`] for `application/grpc+proto` that encodes `T` and decodes
/// `U` like `tonic_prost::ProstCodec`, but refuses undecodable input as
/// INVALID_ARGUMENT (see the module documentation for why).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    /// The codec with tonic's default buffer settings, as the generated
    /// code builds it for every call.
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes a `U`; a message that does not decode is INVALID_ARGUMENT with
/// prost's description (see the module documentation for why).
#[derive(Debug, Clone, Default)]
pub struct ProtoDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|err| Status::invalid_argument(err.to_string()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tonic::Code;
    use tonic::codec::{Codec, Streaming};

    use super::ProtoCodec;
    use crate::api::pb;

    /// Decodes `payload` as the server does a request body: one gRPC frame
    /// through tonic's framing and our decoder.
    async fn decode(payload: &[u8]) -> Result<Option<pb::GetSkillRequest>, tonic::Status> {
        let mut frame = VecDeque::from([0u8]);
        frame.extend((payload.len() as u32).to_be_bytes());
        frame.extend(payload);
        let decoder = ProtoCodec::<pb::Skill, pb::GetSkillRequest>::default().decoder();
        let body = http_body_util::Full::new(frame);
        Streaming::new_request(decoder, body, None, None)
            .message()
            .await
    }

    #[tokio::test]
    async fn undecodable_bodies_are_invalid_argument_naming_the_field() {
        let err = decode(&[0x0a, 0x02, 0xff, 0xfe]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("GetSkillRequest.skill_id: invalid string value"),
            "{}",
            err.message()
        );
        for payload in [&[0x0a, 0x10, 0x61, 0x62][..], &[0xff, 0xff, 0xff][..]] {
            let err = decode(payload).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
            assert!(
                err.message()
                    .starts_with("failed to decode Protobuf message")
            );
        }
        let ok = decode(&[0x0a, 0x01, 0x61]).await.unwrap().unwrap();
        assert_eq!(ok.skill_id, "a");
    }
}
