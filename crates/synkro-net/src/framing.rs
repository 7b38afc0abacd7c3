//! Length-prefixed frames on a byte stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted or sent: one sync message.
pub const MAX_FRAME_LEN: usize = synkro_core::MAX_FRAME_LEN;

/// Write one frame: u32 little-endian length, then the bytes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    write_frames(w, [payload]).await
}

/// Write frames queued together in one write and one flush, so they leave
/// in as few packets (muxer frames, Noise messages, WebSocket messages) as
/// they fit in, rather than two of each per frame. Nothing is written if a
/// frame is over [`MAX_FRAME_LEN`].
pub async fn write_frames<W, I>(w: &mut W, frames: I) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    I: IntoIterator<Item: AsRef<[u8]>>,
{
    let mut out = Vec::new();
    for payload in frames {
        let payload = payload.as_ref();
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l as usize <= MAX_FRAME_LEN)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
    }
    w.write_all(&out).await?;
    w.flush().await
}

/// Read one frame; `Ok(None)` on a clean end of stream between frames.
/// A length over `max` is an error before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    match read_frame_len(r, max).await? {
        Some(len) => read_frame_body(r, len).await.map(Some),
        None => Ok(None),
    }
}

/// Read a frame's length, to reserve room for it before reading it with
/// [`read_frame_body`]; `Ok(None)` on a clean end of stream between
/// frames, an error for a length over `max`.
pub async fn read_frame_len<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<usize>> {
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
    Ok(Some(len))
}

/// Read the `len` bytes of a frame whose length [`read_frame_len`] read.
pub async fn read_frame_body<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
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
            write_frames(&mut wire, [&b"one"[..], b"", b"three"]).await.unwrap();
            let mut r = futures::io::Cursor::new(wire.clone());
            assert_eq!(read_frame(&mut r, 16).await.unwrap().as_deref(), Some(&b"hello"[..]));
            assert_eq!(read_frame(&mut r, 16).await.unwrap().as_deref(), Some(&b""[..]));
            for expected in [&b"one"[..], b"", b"three"] {
                assert_eq!(read_frame(&mut r, 16).await.unwrap().as_deref(), Some(expected));
            }
            assert_eq!(read_frame(&mut r, 16).await.unwrap(), None);
            // A batch with a frame over the limit writes nothing.
            let mut none = Vec::new();
            let huge = vec![0u8; MAX_FRAME_LEN + 1];
            assert!(write_frames(&mut none, [&b"ok"[..], &huge]).await.is_err());
            assert!(none.is_empty());
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
