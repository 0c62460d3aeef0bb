//! Fuzzes the usage parser and the usage filter with arbitrary bytes cut at an arbitrary point:
//! neither may panic, and the parser must give the same answer however the bytes are cut.
#![no_main]

use feen_core::inject::UsageChunkFilter;
use feen_core::usage::{Format, UsageParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let cut = usize::from(cut).min(bytes.len());
    for format in [Format::Sse, Format::Json] {
        let mut whole = UsageParser::new(format);
        whole.feed(bytes);
        let mut split = UsageParser::new(format);
        split.feed(&bytes[..cut]);
        split.feed(&bytes[cut..]);
        assert_eq!(whole.finish(), split.finish());
    }
    let mut filter = UsageChunkFilter::new();
    let _ = filter.push(&bytes[..cut]);
    let _ = filter.push(&bytes[cut..]);
    let _ = filter.finish();
});
