//! HTTP request parser and URL tokeniser, fed in two chunks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar_parse::decode::http::HttpStream;
use nightjar_parse::url;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let (a, b) = rest.split_at(usize::from(cut).min(rest.len()));
    let mut s = HttpStream::new(1024, 64);
    let mut out = None;
    s.feed(a, &mut out);
    s.feed(b, &mut out);
    if let Some(req) = out {
        let _ = url::tokens(&req.uri);
    }
    let _ = url::tokens(&String::from_utf8_lossy(data));
});
