//! The `delphi` backend's byte formats: `l`-bit ring elements packed
//! bit-tight (least significant bit first, `⌈count·l / 8⌉` bytes, the unused
//! bits of the last byte zero) and bounded frame transfers. Every length a
//! receiver accepts is computed from public sizes; anything else is
//! [`SecureError::Malformed`] naming the layer.

use fusion_core::ring::Ring;
use fusion_net::{Channel, NetError};

use crate::error::{SecureError, SecureResult};

/// Bytes of `count` packed `l`-bit values (`None` on overflow).
pub fn packed_len(count: usize, l: u32) -> Option<usize> {
    count.checked_mul(l as usize).map(|b| b.div_ceil(8))
}

/// Packs `values` (`l` bits each, higher bits ignored).
pub fn pack(values: &[u64], l: u32) -> Vec<u8> {
    let l = l as usize;
    let mut out = vec![0u8; (values.len() * l).div_ceil(8)];
    let mut pos = 0usize;
    for &v in values {
        for i in 0..l {
            let bit = ((v >> i) & 1) as u8;
            out[pos / 8] |= bit << (pos % 8);
            pos += 1;
        }
    }
    out
}

/// Unpacks exactly `count` `l`-bit values from `bytes`; the length must be
/// [`packed_len`] and the padding bits zero.
pub fn unpack(bytes: &[u8], count: usize, l: u32, what: &str) -> SecureResult<Vec<u64>> {
    let want = packed_len(count, l)
        .ok_or_else(|| SecureError::Malformed(format!("{what}: {count} values overflow")))?;
    if bytes.len() != want {
        return Err(SecureError::Malformed(format!(
            "{what}: {} bytes where {want} were expected",
            bytes.len()
        )));
    }
    let l = l as usize;
    let total = count * l;
    if !total.is_multiple_of(8)
        && let Some(&last) = bytes.last()
        && last >> (total % 8) != 0
    {
        return Err(SecureError::Malformed(format!(
            "{what}: padding bits are set"
        )));
    }
    let mut out = Vec::with_capacity(count);
    let mut pos = 0usize;
    for _ in 0..count {
        let mut v = 0u64;
        for i in 0..l {
            v |= u64::from((bytes[pos / 8] >> (pos % 8)) & 1) << i;
            pos += 1;
        }
        out.push(v);
    }
    Ok(out)
}

/// The largest frame this backend sends on `ch`: at most 1 MiB and the
/// channel's limit, a multiple of 32 bytes (one garbled AND gate) and of 16
/// (one label).
pub fn frame_size(ch: &Channel) -> SecureResult<usize> {
    let max = usize::try_from(ch.config().max_frame_bytes).unwrap_or(usize::MAX);
    let f = (1usize << 20).min(max) / 32 * 32;
    if f == 0 {
        return Err(SecureError::Config(format!(
            "the channel's frames ({max} bytes) are too small"
        )));
    }
    Ok(f)
}

/// Sends `bytes` in frames of at most [`frame_size`] bytes (at least one
/// frame, so an empty message is an empty frame).
pub async fn send_chunked(ch: &mut Channel, bytes: &[u8]) -> SecureResult<()> {
    let frame = frame_size(ch)?;
    if bytes.is_empty() {
        ch.send_frame(&[]).await?;
        return Ok(());
    }
    for c in bytes.chunks(frame) {
        ch.send_frame(c).await?;
    }
    Ok(())
}

/// Receives exactly `total` bytes sent by [`send_chunked`] (each frame of
/// exactly the expected length).
pub async fn recv_chunked(ch: &mut Channel, total: usize, what: &str) -> SecureResult<Vec<u8>> {
    let frame = frame_size(ch)?;
    let malformed = |e: NetError| match e {
        NetError::Malformed(d) => SecureError::Malformed(format!("{what}: {d}")),
        NetError::FrameTooLarge { len, max } => SecureError::Malformed(format!(
            "{what}: a frame of {len} bytes where at most {max} were expected"
        )),
        e => SecureError::Net(e),
    };
    if total == 0 {
        ch.recv_exact(0).await.map_err(malformed)?;
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let len = frame.min(total - out.len());
        out.extend_from_slice(&ch.recv_exact(len).await.map_err(malformed)?);
    }
    Ok(out)
}

/// Receives `count` packed ring elements in one frame.
pub async fn recv_values(
    ch: &mut Channel,
    count: usize,
    ring: Ring,
    what: &str,
) -> SecureResult<Vec<u64>> {
    let len = packed_len(count, ring.bits())
        .ok_or_else(|| SecureError::Malformed(format!("{what}: {count} values overflow")))?;
    let bytes = recv_chunked(ch, len, what).await?;
    unpack(&bytes, count, ring.bits(), what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_refuses_bad_lengths_and_padding() {
        let vals = [0u64, 1, (1 << 37) - 1, 12345, 1 << 36];
        let b = pack(&vals, 37);
        assert_eq!(b.len(), packed_len(5, 37).unwrap());
        assert_eq!(unpack(&b, 5, 37, "t").unwrap(), vals);
        assert!(matches!(
            unpack(&b[1..], 5, 37, "t"),
            Err(SecureError::Malformed(_))
        ));
        let mut bad = b.clone();
        *bad.last_mut().unwrap() |= 0x80;
        assert!(matches!(
            unpack(&bad, 5, 37, "t"),
            Err(SecureError::Malformed(_))
        ));
        let full = [u64::MAX, 7];
        assert_eq!(unpack(&pack(&full, 64), 2, 64, "t").unwrap(), full);
    }
}
