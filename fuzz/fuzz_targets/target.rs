//! One fuzz target per binary name: `cargo fuzz run mail` feeds `pushgate::fuzzing::mail`.
#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<pushgate::fuzzing::Target> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| {
        let name = env!("CARGO_BIN_NAME");
        pushgate::fuzzing::TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .unwrap_or_else(|| panic!("pushgate::fuzzing has no target `{name}`"))
    });
    target(data);
});
