#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_fuzz_harness::run("pam_limits", data));
