//! Packet decoder: any bytes, every link type, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar_parse::decode::decode_frame;
use nightjar_parse::link::LinkType;

fuzz_target!(|data: &[u8]| {
    for link in [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null] {
        let _ = decode_frame(link, 0, data.len() as u32, data);
    }
});
