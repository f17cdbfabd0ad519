//! Marks the tests that need root: with `cfg(as_root)` unset they are compiled as
//! ignored (with their reason), so a run as another user reports them as skipped, never
//! as passed. tests/run.sh sets TWOFOLD_TEST_UID; otherwise the building user counts.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(as_root)");
    println!("cargo::rerun-if-env-changed=TWOFOLD_TEST_UID");
    let uid = std::env::var("TWOFOLD_TEST_UID").ok().or_else(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
            })
    });
    if uid.as_deref().map(str::trim) == Some("0") {
        println!("cargo::rustc-cfg=as_root");
    }
}
