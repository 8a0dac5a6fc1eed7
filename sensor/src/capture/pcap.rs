//! Offline capture: pcap and pcapng files, read with rusticata's `pcap-parser` through a
//! bounded streaming buffer (memory stays constant whatever the file size).
//!
//! A corrupt or truncated file ends the source with a [`CaptureError`] that names the
//! file and the byte offset of the bad record; frames before it have been delivered.

use std::fs::File;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

use super::{Frame, LinkType, PacketSource};
use crate::error::CaptureError;

/// Read buffer size, bytes. Must hold at least one whole record.
const READ_BUFFER_BYTES: usize = 1 << 20;
/// Largest record accepted, bytes (the buffer grows up to this).
const MAX_RECORD_BYTES: usize = 16 << 20;

/// Per-interface state of a pcapng section.
#[derive(Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset_secs: i64,
}

/// Frames from one pcap or pcapng file.
pub struct PcapFileSource {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Link type and timestamp unit of a legacy pcap file.
    legacy: Option<(LinkType, u64)>,
    /// Interfaces of the current pcapng section.
    interfaces: Vec<Interface>,
    /// The current pcapng section is big-endian.
    big_endian: bool,
    done: bool,
}

impl PcapFileSource {
    /// Opens a pcap or pcapng file (the format is detected from its magic number).
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|source| CaptureError::Open { path: path.to_path_buf(), source })?;
        Self::from_reader(path, std::io::BufReader::new(file))
    }

    /// Reads a capture from any byte stream (an embedded sample, a pipe); `label` names
    /// it in errors.
    pub fn from_reader(label: &Path, reader: impl std::io::Read + Send + 'static) -> Result<Self, CaptureError> {
        let reader = create_reader(READ_BUFFER_BYTES, reader).map_err(|e| CaptureError::Format {
            path: label.to_path_buf(),
            offset: 0,
            reason: format_pcap_error(&e),
        })?;
        Ok(Self {
            path: label.to_path_buf(),
            reader,
            legacy: None,
            interfaces: Vec::new(),
            big_endian: false,
            done: false,
        })
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, reason: String) -> CaptureError {
        CaptureError::Format { path: self.path.clone(), offset: self.reader.consumed() as u64, reason }
    }
}

fn format_pcap_error<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "end of file".into(),
        PcapError::BufferTooSmall => "record larger than the read buffer".into(),
        PcapError::UnexpectedEof | PcapError::Incomplete(_) => "truncated record".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::HeaderNotRecognized => "not a pcap or pcapng file".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed record ({kind:?})")
        }
    }
}

/// The fields of an obsolete Packet Block's body.
struct ObsoletePacket<'a> {
    if_id: u16,
    ts: u64,
    len: u32,
    data: &'a [u8],
}

/// Parses an obsolete Packet Block's body: interface id (16 bits), drops count (16),
/// timestamp high and low (32 each), captured and original length (32 each), data.
fn obsolete_packet(body: &[u8], big_endian: bool) -> Option<ObsoletePacket<'_>> {
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = body.get(o..o + 2)?.try_into().ok()?;
        Some(if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = body.get(o..o + 4)?.try_into().ok()?;
        Some(if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    };
    let caplen = usize::try_from(u32_at(12)?).ok()?;
    Some(ObsoletePacket {
        if_id: u16_at(0)?,
        ts: (u64::from(u32_at(4)?) << 32) | u64::from(u32_at(8)?),
        len: u32_at(16)?,
        data: body.get(20..20usize.checked_add(caplen)?)?,
    })
}

/// The frame of an obsolete Packet Block (type 2, pcapng draft; old Wireshark and WinPcap
/// tools still write it; pcap-parser leaves it unknown), or why it is malformed.
fn obsolete_frame<'a>(interfaces: &[Interface], body: &'a [u8], big_endian: bool) -> Result<Frame<'a>, String> {
    let p = obsolete_packet(body, big_endian).ok_or("malformed obsolete Packet Block")?;
    let ifc = interfaces
        .get(usize::from(p.if_id))
        .copied()
        .ok_or_else(|| format!("packet for undeclared interface {}", p.if_id))?;
    Ok(Frame { ts_ns: to_nanos(p.ts, ifc.resolution, ifc.offset_secs), link: ifc.link, wire_len: p.len, data: p.data })
}

/// Converts a timestamp in `resolution` units per second to nanoseconds.
fn to_nanos(units: u64, resolution: u64, offset_secs: i64) -> u64 {
    let ns = if resolution == 1_000_000_000 {
        u128::from(units)
    } else {
        u128::from(units) * 1_000_000_000 / u128::from(resolution.max(1))
    };
    let off = i128::from(offset_secs) * 1_000_000_000;
    u64::try_from((ns as i128 + off).max(0)).unwrap_or(u64::MAX)
}

impl PacketSource for PcapFileSource {
    fn read_batch(&mut self, max: usize, sink: &mut dyn FnMut(&Frame<'_>)) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < max && !self.done {
            match self.reader.next() {
                Ok((len, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            let res = if h.is_nanosecond_precision() { 1_000_000_000 } else { 1_000_000 };
                            self.legacy = Some((LinkType::from_linktype(h.network.0), res));
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (link, res) = self.legacy.unwrap_or((LinkType::Ethernet, 1_000_000));
                            let units = u64::from(b.ts_sec) * res + u64::from(b.ts_usec);
                            sink(&Frame { ts_ns: to_nanos(units, res, 0), link, wire_len: b.origlen, data: b.data });
                            n += 1;
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                            self.interfaces.clear();
                            self.big_endian = shb.big_endian();
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            self.interfaces.push(Interface {
                                link: LinkType::from_linktype(idb.linktype.0),
                                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                                offset_secs: idb.ts_offset(),
                            });
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let Some(ifc) = self.interfaces.get(epb.if_id as usize).copied() else {
                                let reason = format!("packet for undeclared interface {}", epb.if_id);
                                self.done = true;
                                return Err(CaptureError::Format {
                                    path: self.path.clone(),
                                    offset: self.reader.consumed() as u64,
                                    reason,
                                });
                            };
                            let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            sink(&Frame {
                                ts_ns: to_nanos(units, ifc.resolution, ifc.offset_secs),
                                link: ifc.link,
                                wire_len: epb.origlen,
                                data: epb.data,
                            });
                            n += 1;
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let link = self.interfaces.first().map_or(LinkType::Ethernet, |i| i.link);
                            sink(&Frame { ts_ns: 0, link, wire_len: spb.origlen, data: spb.data });
                            n += 1;
                        }
                        // The obsolete Packet Block (type 2, pcapng draft; old Wireshark and
                        // WinPcap tools still write it): pcap-parser leaves it unknown.
                        PcapBlockOwned::NG(Block::Unknown(u)) if u.block_type == 2 || u.block_type == 0x0200_0000 => {
                            match obsolete_frame(&self.interfaces, u.data, self.big_endian) {
                                Ok(frame) => {
                                    sink(&frame);
                                    n += 1;
                                }
                                Err(reason) => {
                                    self.done = true;
                                    return Err(self.corrupt(reason));
                                }
                            }
                        }
                        // Other blocks (statistics, name resolution, custom, decryption
                        // secrets) carry no packets.
                        PcapBlockOwned::NG(_) => {}
                    }
                    self.reader.consume(len);
                }
                Err(PcapError::Eof) => self.done = true,
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        let e = self.corrupt("truncated record at end of file".into());
                        self.done = true;
                        return Err(e);
                    }
                    if let Err(e) = self.reader.refill() {
                        let reason = format_pcap_error(&e);
                        self.done = true;
                        return Err(self.corrupt(reason));
                    }
                }
                Err(PcapError::BufferTooSmall) => {
                    let want = self.reader.data().len().max(READ_BUFFER_BYTES) * 2;
                    if want > MAX_RECORD_BYTES || !self.reader.grow(want) {
                        self.done = true;
                        return Err(self.corrupt("record larger than 16 MiB".into()));
                    }
                    if let Err(e) = self.reader.refill() {
                        let reason = format_pcap_error(&e);
                        self.done = true;
                        return Err(self.corrupt(reason));
                    }
                }
                Err(e) => {
                    let reason = format_pcap_error(&e);
                    self.done = true;
                    return Err(self.corrupt(reason));
                }
            }
        }
        Ok(n)
    }

    fn position(&self) -> u64 {
        self.reader.consumed() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A legacy pcap header (microseconds, Ethernet) followed by one 4-byte record.
    fn tiny_pcap() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for x in [10u32, 500, 4, 60] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    /// A pcapng block: type, total length, body padded to 4 bytes, total length.
    fn block(typ: u32, body: &[u8]) -> Vec<u8> {
        let pad = (4 - body.len() % 4) % 4;
        let total = u32::try_from(12 + body.len() + pad).expect("small");
        let mut v = Vec::new();
        v.extend_from_slice(&typ.to_le_bytes());
        v.extend_from_slice(&total.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&vec![0; pad]);
        v.extend_from_slice(&total.to_le_bytes());
        v
    }

    /// A pcapng file: section header, one Ethernet interface (microseconds), then `rest`.
    fn pcapng_with(rest: &[u8]) -> Vec<u8> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_le_bytes()); // Ethernet
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&65535u32.to_le_bytes());
        let mut v = block(0x0a0d_0d0a, &shb);
        v.extend(block(1, &idb));
        v.extend_from_slice(rest);
        v
    }

    fn obsolete_block(if_id: u16, ts_us: u64, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&if_id.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u32::try_from(ts_us >> 32).expect("high").to_le_bytes());
        b.extend_from_slice(&u32::try_from(ts_us & 0xffff_ffff).expect("low").to_le_bytes());
        let len = u32::try_from(data.len()).expect("small");
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(data);
        block(2, &b)
    }

    #[test]
    fn reads_the_obsolete_packet_block() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("old.pcapng");
        let frame = [7u8; 60];
        let mut rest = obsolete_block(0, 1_700_000_000_000_001, &frame);
        rest.extend(obsolete_block(0, 1_700_000_000_000_002, &frame[..42]));
        std::fs::write(&p, pcapng_with(&rest)).expect("write");
        let (frames, err) = read_all(&p);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(frames, vec![(1_700_000_000_000_001_000, 60), (1_700_000_000_000_002_000, 42)]);
        // A block for an interface the section never declared is an error, not a guess.
        std::fs::write(&p, pcapng_with(&obsolete_block(3, 1, &frame))).expect("write");
        let (frames, err) = read_all(&p);
        assert!(frames.is_empty() && err.is_some());
        // A captured length past the block is malformed.
        let mut bad = obsolete_block(0, 1, &frame);
        bad[8 + 12..8 + 16].copy_from_slice(&1000u32.to_le_bytes());
        std::fs::write(&p, pcapng_with(&bad)).expect("write");
        let (frames, err) = read_all(&p);
        assert!(frames.is_empty() && err.is_some(), "{err:?}");
    }

    fn read_all(path: &Path) -> (Vec<(u64, usize)>, Option<CaptureError>) {
        let mut src = PcapFileSource::open(path).expect("open");
        let mut frames = Vec::new();
        loop {
            match src.read_batch(8, &mut |f| frames.push((f.ts_ns, f.data.len()))) {
                Ok(0) => return (frames, None),
                Ok(_) => {}
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    #[test]
    fn reads_legacy_pcap() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(&tiny_pcap()).expect("write");
        let (frames, err) = read_all(f.path());
        assert!(err.is_none());
        assert_eq!(frames, vec![(10_000_500_000, 4)]);
    }

    #[test]
    fn truncated_file_names_file_and_offset() {
        let mut data = tiny_pcap();
        data.extend_from_slice(&tiny_pcap()[24..30]); // half a record header
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(&data).expect("write");
        let (frames, err) = read_all(f.path());
        assert_eq!(frames.len(), 1);
        let msg = err.expect("error").to_string();
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(msg.contains("offset 44"), "{msg}");
    }

    #[test]
    fn garbage_is_refused() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        f.write_all(b"this is not a capture file at all").expect("write");
        let err = PcapFileSource::open(f.path()).err().expect("must fail");
        assert!(err.to_string().contains("not a pcap"), "{err}");
    }
}
