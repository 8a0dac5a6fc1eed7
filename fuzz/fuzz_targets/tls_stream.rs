//! TLS record scanner and handshake parser: the first byte picks a split point, the rest
//! is fed as two chunks from each side.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar_parse::decode::tls::{Side, TlsInfo, TlsStream};
use nightjar_parse::fingerprint;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let cut = usize::from(cut).min(rest.len());
    let (a, b) = rest.split_at(cut);
    let mut info = TlsInfo::default();
    for side in [Side::Client, Side::Server] {
        let mut s = TlsStream::new(4096);
        s.feed(side, a, &mut info, &mut |_| {});
        s.feed(side, b, &mut info, &mut |_| {});
    }
    if let Some(ch) = info.client_hello() {
        let _ = fingerprint::ja3(ch);
        let _ = fingerprint::ja4(ch, fingerprint::Transport::Tcp);
    }
});
