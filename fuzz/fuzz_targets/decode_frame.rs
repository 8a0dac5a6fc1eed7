//! Packet decoder: any bytes, every link type, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar::capture::LinkType;
use nightjar::decode::decode_frame;

fuzz_target!(|data: &[u8]| {
    for link in [LinkType::Ethernet, LinkType::Raw, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::Null] {
        let _ = decode_frame(link, 0, data.len() as u32, data);
    }
});
