//! Length-prefixed frames on a byte stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent: one sync message.
pub const MAX_FRAME_LEN: usize = synkro_core::MAX_FRAME_LEN;

/// Write one frame: u32 little-endian length, then the bytes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l as usize <= MAX_FRAME_LEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_le_bytes()).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Read one frame; `Ok(None)` on a clean end of stream between frames.
/// A length over `max` is an error before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn round_trip_and_limits() {
        block_on(async {
            let mut wire = Vec::new();
            write_frame(&mut wire, b"hello").await.unwrap();
            write_frame(&mut wire, b"").await.unwrap();
            let mut r = futures::io::Cursor::new(wire.clone());
            assert_eq!(read_frame(&mut r, 16).await.unwrap().as_deref(), Some(&b"hello"[..]));
            assert_eq!(read_frame(&mut r, 16).await.unwrap().as_deref(), Some(&b""[..]));
            assert_eq!(read_frame(&mut r, 16).await.unwrap(), None);
            // A frame over the limit fails before its body is read.
            let mut r = futures::io::Cursor::new(wire.clone());
            assert!(read_frame(&mut r, 4).await.is_err());
            // A huge claimed length is refused without allocating it.
            let mut r = futures::io::Cursor::new(u32::MAX.to_le_bytes().to_vec());
            assert!(read_frame(&mut r, MAX_FRAME_LEN).await.is_err());
            // Truncated frames are errors, not silent ends.
            let mut r = futures::io::Cursor::new(wire[..7].to_vec());
            assert!(read_frame(&mut r, 16).await.is_err());
        });
    }
}
