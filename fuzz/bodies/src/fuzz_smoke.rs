//! The fuzz targets on the stable toolchain, at every `cargo test --workspace`: each body
//! runs over its seeds (fuzz/seeds/TARGET/), the inputs that once crashed it
//! (fuzz/regressions/TARGET/, if any) and 5,000 inputs made from the seeds by a
//! fixed-seed generator (bit flips; interesting bytes, lengths and characters written in
//! place; truncations, cuts, insertions, repeats; splices of two seeds), the same inputs
//! at every run. No sanitizer and no coverage feedback, so it finds what a mutation or
//! two of a seed finds; its use is to keep every target building and passing its seeds,
//! and to catch the shallow panics, without nightly or cargo-fuzz (bench/fuzz.sh runs
//! the real fuzzing). A panic fails the test with the target, the input (saved to a
//! file) and the command that replays it under cargo-fuzz.

use crate::TARGETS;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MUTATIONS: usize = 5000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn seeds_of(target: &str) -> Vec<(String, Vec<u8>)> {
    files_in(&fuzz_dir().join("seeds").join(target))
}

/// Inputs that once crashed a target (fuzz/regressions/TARGET/), if any.
fn regressions_of(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("regressions").join(target);
    if dir.exists() {
        files_in(&dir)
    } else {
        Vec::new()
    }
}

fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a seed").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("a readable seed"))
        })
        .collect();
    seeds.sort();
    seeds
}

/// SplitMix64: the same inputs at every run, on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b' ', b'\n', b'\t', b'"', b'\\', b'/', b':', b'@', b'=', b'[', b'{',
    b'-', b'*', b'.', b'%',
];
/// Written over bytes in place, so a D-Bus string keeps its length prefix: characters
/// of two, three and four bytes, and pieces of the names and values the targets know.
const INTERESTING_PIECES: &[&[u8]] = &[
    "И".as_bytes(),
    "é".as_bytes(),
    "\u{feff}".as_bytes(),
    "\u{202e}".as_bytes(),
    "😀".as_bytes(),
    b"\xff\xfe",
    b"tf-",
    b"@staff",
    b"alice",
    b"SHA256:",
    b"\r\n",
];
const INTERESTING_U32: &[u32] = &[
    0,
    1,
    2,
    7,
    8,
    255,
    256,
    1024,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// One input: a seed changed by one to three mutations.
fn mutate(seeds: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].1.clone();
    for _ in 0..=rng.below(3) {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            // D-Bus lengths and counts are u32s, TOML numbers digits.
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                input[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            3 if rng.below(2) == 0 => input.truncate(rng.below(len + 1)),
            3 => {
                let piece = INTERESTING_PIECES[rng.below(INTERESTING_PIECES.len())];
                if len >= piece.len() {
                    let at = rng.below(len - piece.len() + 1);
                    input[at..at + piece.len()].copy_from_slice(piece);
                }
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                input.drain(from..to);
            }
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            6 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(32)).min(len);
                let chunk = input[from..to].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, chunk);
            }
            7 => {
                let other = &seeds[rng.below(seeds.len())].1;
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            // The first byte picks a method (manage_body) or starts the text.
            _ if len > 0 => input[0] = rng.next() as u8,
            _ => input.push(rng.next() as u8),
        }
    }
    input
}

fn run(target: &str, body: crate::Body, input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| body(input)).is_err() {
        let path = std::env::temp_dir().join(format!(
            "fuzz-smoke-{target}-{:016x}.bin",
            crate::manage_body::fnv1a(input)
        ));
        let saved = std::fs::write(&path, input).map_or_else(
            |e| format!("could not be saved: {e}"),
            |()| format!("saved to {}", path.display()),
        );
        panic!(
            "the fuzz target {target} panicked on {what} ({} bytes, {saved}); \
             replay: cd fuzz && cargo +nightly fuzz run {target} {}",
            input.len(),
            path.display()
        );
    }
}

/// Written past the test harness's capture, so every run shows the counts.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "fuzz_smoke: {line}");
}

#[test]
fn every_target_survives_its_seeds_and_5000_mutations() {
    let mut total = 0;
    let started = Instant::now();
    for (target, body) in TARGETS {
        let seeds = seeds_of(target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ holds no seed");
        let t0 = Instant::now();
        for (name, seed) in &seeds {
            run(target, *body, seed, &format!("its seed {name}"));
        }
        let regressions = regressions_of(target);
        for (name, input) in &regressions {
            run(
                target,
                *body,
                input,
                &format!("its regression input {name}"),
            );
        }
        let mut rng = Rng(crate::manage_body::fnv1a(target.as_bytes()));
        for i in 0..MUTATIONS {
            let input = mutate(&seeds, &mut rng);
            run(target, *body, &input, &format!("mutation {i}"));
        }
        let n = seeds.len() + regressions.len() + MUTATIONS;
        total += n;
        say(&format!(
            "{target}: {} seeds + {} regression inputs + {MUTATIONS} mutations = {n} inputs in {:.2} s, no panic",
            seeds.len(),
            regressions.len(),
            t0.elapsed().as_secs_f64()
        ));
    }
    say(&format!(
        "{} targets, {total} inputs in {:.2} s",
        TARGETS.len(),
        started.elapsed().as_secs_f64()
    ));
}

/// The targets here are the binaries of fuzz/Cargo.toml and the ones bench/fuzz.sh runs:
/// a new target is smoke-tested as soon as it is added.
#[test]
fn the_smoke_covers_every_fuzz_target() {
    let ours: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let mut bins = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            bins.push(name.trim_matches('"'));
        }
    }
    assert_eq!(bins, ours, "fuzz/Cargo.toml's [[bin]]s");
    let script = std::fs::read_to_string(fuzz_dir().join("../bench/fuzz.sh")).unwrap();
    let listed = script
        .lines()
        .find_map(|l| l.strip_prefix("all_targets=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("bench/fuzz.sh's all_targets=(...) line");
    assert_eq!(
        listed.split_whitespace().collect::<Vec<_>>(),
        ours,
        "bench/fuzz.sh's targets"
    );
}

/// fuzz/seeds/manage_body/ holds exactly [`crate::manage_body::seeds`]; with
/// `TWOFOLD_WRITE_SEEDS=1` this writes them there instead.
#[test]
fn the_manage_body_seeds_are_the_generated_ones() {
    let dir = fuzz_dir().join("seeds/manage_body");
    let wanted = crate::manage_body::seeds();
    if std::env::var_os("TWOFOLD_WRITE_SEEDS").is_some_and(|v| v == "1") {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &wanted {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut wanted = wanted;
    wanted.sort();
    assert_eq!(
        seeds_of("manage_body"),
        wanted,
        "fuzz/seeds/manage_body/ is not what manage_body::seeds() makes; \
         rewrite it: TWOFOLD_WRITE_SEEDS=1 cargo test -p twofold-fuzz-bodies manage_body_seeds"
    );
}
