//! The agent output line reader on any byte stream with a small cap: never panics,
//! never returns a line over the cap or containing `\n`, and accounts for every byte
//! (kept + dropped + one newline per line = input length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use semantest_hub::internals::read_capped_line;

fuzz_target!(|data: &[u8]| {
    let Some((&cap, input)) = data.split_first() else {
        return;
    };
    let max = usize::from(cap % 64) + 1;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // A tiny buffer, so lines straddle many reads.
        let mut reader = tokio::io::BufReader::with_capacity(7, input);
        let mut buf = Vec::new();
        let (mut kept, mut dropped_total, mut lines) = (0usize, 0usize, 0usize);
        while let Some(dropped) = read_capped_line(&mut reader, &mut buf, max)
            .await
            .expect("in-memory read")
        {
            assert!(
                buf.len() <= max,
                "line of {} bytes over the cap {max}",
                buf.len()
            );
            assert!(!buf.contains(&b'\n'), "a line kept its newline");
            kept += buf.len();
            dropped_total += dropped;
            lines += 1;
        }
        let newlines = input.iter().filter(|&&b| b == b'\n').count();
        assert!(lines == newlines || lines == newlines + 1);
        assert_eq!(kept + dropped_total + newlines, input.len());
    });
});
