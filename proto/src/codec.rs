//! The codec of every `rampart.v1` service: protobuf as `tonic_prost` encodes it,
//! with small starting buffers.
//!
//! tonic gives each stream an 8 KiB buffer each way by default. A collector holds
//! one stream for every connected agent, nearly all idle (an agent scans a few times
//! a day and otherwise sends nothing), so those buffers are most of what an idle
//! agent costs it. Buffers start at [`START_BYTES`] and grow to the largest message
//! the stream carries, as before; the yield threshold is tonic's.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Where a stream's encode and decode buffers start.
pub const START_BYTES: usize = 1024;

/// tonic's default: an encoder hands what it has to the transport past this size.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// The settings both directions use.
pub fn buffer_settings() -> BufferSettings {
    BufferSettings::new(START_BYTES, YIELD_THRESHOLD)
}

/// `tonic_prost::ProstCodec` with [`buffer_settings`].
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(buffer_settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codec::{Decoder, Encoder};

    #[test]
    fn both_directions_start_small() {
        let mut c = LeanCodec::<crate::v1::Ack, crate::v1::Ack>::default();
        let (e, d) = (c.encoder(), c.decoder());
        for s in [e.buffer_settings(), d.buffer_settings()] {
            // BufferSettings keeps its fields private; its Debug shows them.
            let shown = format!("{s:?}");
            assert!(shown.contains("buffer_size: 1024"), "{shown}");
            assert!(shown.contains("yield_threshold: 32768"), "{shown}");
        }
    }
}
