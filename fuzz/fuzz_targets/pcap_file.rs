//! pcap/pcapng reader and the whole pipeline behind it: garbage ends with an error,
//! never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nightjar::capture::{PacketSource, PcapFileSource};
use nightjar::config::Config;
use nightjar::runtime::{Outputs, Worker};

fuzz_target!(|data: &[u8]| {
    let Ok(mut src) = PcapFileSource::from_reader(std::path::Path::new("fuzz.pcap"), std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    let mut w = Worker::new(&Config::default(), 1024, Outputs { events: true, features: true, ..Outputs::default() });
    while let Ok(n) = src.read_batch(64, &mut |f| w.handle_frame(f)) {
        w.finish_records(&mut |_| {});
        if n == 0 {
            break;
        }
    }
    w.flush();
    w.finish_records(&mut |_| {});
});
