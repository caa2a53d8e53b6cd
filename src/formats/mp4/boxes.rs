//! Bounded box reading (ISO/IEC 14496-12 §4.2, "Object structure").
//!
//! Two readers share one header parser:
//!
//! * [`TopLevel`] walks the boxes of a file through `Read + Seek`, reading
//!   nothing but headers and seeking past everything it does not need (`mdat`
//!   in particular is never read);
//! * [`Children`] walks the boxes packed inside an in-memory box body (a
//!   `moov` or `moof` that was read whole after its size was checked against
//!   [`Limits`](crate::Limits)).
//!
//! Box *contents* are decoded by `mp4-atom`; this module only decides which
//! bytes belong to which box, with every size checked against the bytes that
//! are really there, and keeps the nesting depth bounded.

use std::io::{Read, Seek, SeekFrom};

use mp4_atom::FourCC;

use crate::error::{Here, Result};
use crate::limits::Limit;

/// A box header: its type, where its body starts and how long the box is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoxHeader {
    pub kind: FourCC,
    /// Bytes taken by the header itself (8, 16 with `largesize`, +16 for `uuid`).
    pub header_len: u64,
    /// Size of the whole box, header included. `None`: extends to the end of
    /// its container (size field 0).
    pub size: Option<u64>,
}

/// Parses a box header from the start of `bytes`.
///
/// Returns `Ok(None)` when fewer bytes than a header remain (callers treat a
/// short tail as padding or truncation, as fits their container).
pub(crate) fn parse_header(bytes: &[u8], here: &Here) -> Result<Option<BoxHeader>> {
    let Some(head) = bytes.get(..8) else {
        return Ok(None);
    };
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = FourCC::new(&[head[4], head[5], head[6], head[7]]);
    let (mut header_len, size) = match size32 {
        0 => (8u64, None),
        1 => {
            let Some(large) = bytes.get(8..16) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (16u64, Some(u64::from_be_bytes(b)))
        }
        n => (8u64, Some(u64::from(n))),
    };
    if kind == FourCC::new(b"uuid") {
        header_len += 16;
    }
    if let Some(size) = size {
        if size < header_len {
            return Err(here
                .child(kind)
                .invalid(format!("box size {size} is smaller than its {header_len}-byte header")));
        }
    }
    Ok(Some(BoxHeader { kind, header_len, size }))
}

/// One box inside an in-memory container.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxSlice<'a> {
    pub kind: FourCC,
    /// The whole box, header included (what `mp4-atom`'s `Decode` expects).
    pub bytes: &'a [u8],
    header_len: usize,
}

impl<'a> BoxSlice<'a> {
    /// The box body, after the header.
    pub fn body(&self) -> &'a [u8] {
        // header_len <= bytes.len() was checked when the slice was made.
        self.bytes.get(self.header_len..).unwrap_or(&[])
    }

    /// Decodes the whole box with `mp4-atom`, naming the box path on error.
    pub fn decode<T: mp4_atom::Decode>(&self, here: &Here) -> Result<T> {
        let mut buf = self.bytes;
        T::decode(&mut buf).map_err(|e| here.invalid(atom_error(e)))
    }
}

/// Describes an `mp4-atom` error in words a user can act on.
pub(crate) fn atom_error(e: mp4_atom::Error) -> String {
    use mp4_atom::Error as E;
    match e {
        E::OutOfBounds | E::OverDecode(_) => "box body ends before its fields do".into(),
        E::ShortRead | E::UnderDecode(_) => "box has bytes left over after its fields".into(),
        other => other.to_string(),
    }
}

/// Iterator over the boxes packed in a container body, in order.
///
/// Yields an error (once, then stops) for a box that claims more bytes than
/// its container has. A tail shorter than a box header is ignored as padding,
/// as QuickTime writers leave one.
pub(crate) struct Children<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Children<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Children {
            rest: body,
            done: false,
        }
    }

    /// The next box, or an error naming `here` (the container's path).
    pub fn next_box(&mut self, here: &Here) -> Result<Option<BoxSlice<'a>>> {
        if self.done {
            return Ok(None);
        }
        let header = match parse_header(self.rest, here) {
            Ok(Some(h)) => h,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        let available = self.rest.len() as u64;
        let size = header.size.unwrap_or(available);
        if size > available || header.header_len > size {
            self.done = true;
            return Err(here.child(header.kind).truncated(format!(
                "box declares {size} bytes but only {available} remain in its container"
            )));
        }
        // Both fit in usize: they are at most rest.len().
        let size = size as usize;
        let (bytes, rest) = self.rest.split_at(size);
        self.rest = rest;
        Ok(Some(BoxSlice {
            kind: header.kind,
            bytes,
            header_len: header.header_len as usize,
        }))
    }
}

/// Where a top-level box sits in a file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopBox {
    pub kind: FourCC,
    /// Offset of the box's first header byte.
    pub offset: u64,
    pub header_len: u64,
    /// Size of the whole box as declared (to the end of the file for size 0).
    pub size: u64,
}

impl TopBox {
    /// Offset of the first body byte.
    pub fn body_offset(&self) -> u64 {
        self.offset.saturating_add(self.header_len)
    }

    /// Offset just past the box, as declared.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }
}

/// Walks the top-level boxes of a file by their headers alone.
pub(crate) struct TopLevel {
    pos: u64,
    file_len: u64,
}

impl TopLevel {
    pub fn new(file_len: u64) -> Self {
        TopLevel { pos: 0, file_len }
    }

    /// Offset of the next box header.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next top-level box. Stops at the end of the file, or after a box
    /// that runs past the end (the caller sees `end() > file_len`).
    pub fn next_box<R: Read + Seek>(&mut self, r: &mut R, here: &Here) -> Result<Option<TopBox>> {
        if self.pos >= self.file_len {
            return Ok(None);
        }
        let mut head = [0u8; 32];
        let want = (self.file_len - self.pos).min(head.len() as u64) as usize;
        r.seek(SeekFrom::Start(self.pos)).map_err(|e| here.io(e))?;
        r.read_exact(&mut head[..want]).map_err(|e| here.io(e))?;
        let at = here.child(format!("@{}", self.pos));
        let Some(header) = parse_header(&head[..want], &at)? else {
            return Err(at.truncated(format!(
                "{} stray bytes at the end of the file, too few for a box header",
                self.file_len - self.pos
            )));
        };
        let size = header.size.unwrap_or(self.file_len - self.pos);
        let top = TopBox {
            kind: header.kind,
            offset: self.pos,
            header_len: header.header_len,
            size,
        };
        // Past the end means we stop after this box; the caller decides
        // whether that matters (a short `mdat` is checked sample by sample).
        self.pos = self.pos.saturating_add(size);
        Ok(Some(top))
    }
}

/// Reads the body of a top-level box into memory after checking its size
/// against `max` bytes and against the end of the file.
pub(crate) fn read_body<R: Read + Seek>(
    r: &mut R,
    top: &TopBox,
    file_len: u64,
    max: u64,
    here: &Here,
) -> Result<Vec<u8>> {
    let here = here.child(top.kind);
    if top.end() > file_len {
        return Err(here.truncated(format!(
            "box declares {} bytes but the file ends {} bytes into it",
            top.size,
            file_len - top.offset
        )));
    }
    let len = top.size - top.header_len;
    Limit::MoovBytes.check(len, max, &here, "box size")?;
    let len =
        usize::try_from(len).map_err(|_| here.invalid(format!("box size {len} exceeds this machine's memory")))?;
    let mut body = vec![0u8; len];
    r.seek(SeekFrom::Start(top.body_offset())).map_err(|e| here.io(e))?;
    r.read_exact(&mut body).map_err(|e| here.io(e))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn here() -> Here<'static> {
        Here::new(Path::new("t.mp4"), "moov")
    }

    #[test]
    fn children_walks_boxes_and_ignores_short_padding() {
        let mut body = Vec::new();
        body.extend_from_slice(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']);
        body.extend_from_slice(&[0, 0, 0, 12, b's', b'k', b'i', b'p', 1, 2, 3, 4]);
        body.extend_from_slice(&[0, 0, 0, 0]); // QuickTime terminator
        let mut it = Children::new(&body);
        let a = it.next_box(&here()).unwrap().unwrap();
        assert_eq!(a.kind, FourCC::new(b"free"));
        assert!(a.body().is_empty());
        let b = it.next_box(&here()).unwrap().unwrap();
        assert_eq!(b.body(), &[1, 2, 3, 4]);
        assert!(it.next_box(&here()).unwrap().is_none());
    }

    #[test]
    fn child_larger_than_container_is_an_error_naming_the_box() {
        let body = [0xff, 0xff, 0xff, 0xff, b's', b't', b's', b'z', 0, 0];
        let err = Children::new(&body).next_box(&here()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("moov/stsz"), "{msg}");
        assert!(msg.contains("4294967295"), "{msg}");
    }

    #[test]
    fn size_smaller_than_header_is_invalid() {
        let body = [0, 0, 0, 3, b't', b'r', b'a', b'k'];
        let e = Children::new(&body).next_box(&here()).unwrap_err();
        assert_eq!(e.category(), "invalid");
        assert!(
            e.to_string()
                .ends_with("moov/trak: box size 3 is smaller than its 8-byte header"),
            "{e}"
        );
        let large = [0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 9];
        let e = Children::new(&large).next_box(&here()).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("moov/mdat: box size 9 is smaller than its 16-byte header"),
            "{e}"
        );
    }

    #[test]
    fn largesize_and_size_zero() {
        let mut body = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 18, 7, 7];
        body.extend_from_slice(&[0, 0, 0, 0, b's', b'k', b'i', b'p', 9]);
        let mut it = Children::new(&body);
        let a = it.next_box(&here()).unwrap().unwrap();
        assert_eq!(a.body(), &[7, 7]);
        let b = it.next_box(&here()).unwrap().unwrap();
        assert_eq!(b.kind, FourCC::new(b"skip"));
        assert_eq!(b.body(), &[9]);
    }

    #[test]
    fn top_level_reports_box_past_end() {
        let mut file = vec![0, 0, 0, 16, b'f', b't', b'y', b'p'];
        file.extend_from_slice(b"isom\0\0\0\0");
        file.extend_from_slice(&[0, 0, 1, 0, b'm', b'o', b'o', b'v', 1, 2]);
        let len = file.len() as u64;
        let mut cur = std::io::Cursor::new(file);
        let mut top = TopLevel::new(len);
        let f = top.next_box(&mut cur, &here()).unwrap().unwrap();
        assert_eq!(f.kind, FourCC::new(b"ftyp"));
        let m = top.next_box(&mut cur, &here()).unwrap().unwrap();
        assert!(m.end() > len);
        let err = read_body(&mut cur, &m, len, 1 << 20, &here()).unwrap_err();
        assert_eq!(err.category(), "truncated");
        assert!(top.next_box(&mut cur, &here()).unwrap().is_none());
    }

    #[test]
    fn read_body_respects_the_limit() {
        let mut file = vec![0, 0, 0, 40, b'm', b'o', b'o', b'v'];
        file.resize(40, 0);
        let mut cur = std::io::Cursor::new(file);
        let mut top = TopLevel::new(40);
        let m = top.next_box(&mut cur, &here()).unwrap().unwrap();
        let err = read_body(&mut cur, &m, 40, 16, &here()).unwrap_err();
        assert_eq!(err.category(), "limit");
        assert!(err.to_string().contains("max_moov_bytes"));
    }
}
