//! The link-layer framing of a captured frame: what [`crate::decode::decode_frame`]
//! takes next to the bytes, read from a capture file's header or set by a live source.

/// The link-layer framing of a frame (a subset of the tcpdump LINKTYPE values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101), IPV4 (228), IPV6 (229): the frame starts at the IP header.
    Raw,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    /// LINKTYPE_NULL (0) and LOOP (108): BSD loopback.
    Null,
    /// Anything else; frames of this type are counted as undecodable.
    Other(i32),
}

impl LinkType {
    /// Maps a tcpdump LINKTYPE number.
    pub fn from_linktype(n: i32) -> LinkType {
        match n {
            1 => LinkType::Ethernet,
            101 | 228 | 229 | 12 | 14 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 | 108 => LinkType::Null,
            other => LinkType::Other(other),
        }
    }
}
