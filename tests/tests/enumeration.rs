//! No user enumeration (checklist item 20): an unknown name, a name with no factor, and
//! an enrolled name given a wrong code get the same prompts, messages and PAM result; and
//! their response times, measured over 1,000 tries each (`bash bench/enumeration.sh`,
//! which runs the ignored measurement below), cannot be told apart.

use twofold_integration::*;
use twofold_pamtest::Transaction;

const UNKNOWN: &str = "tf-no-such-user";
const UNENROLLED: &str = "nobody";

/// One try per login, and room for many wrong codes before the lock (which every name
/// reaches alike; the measurement unlocks them all between rounds).
/// `$TWOFOLD_ENUMERATION_FLOOR_US`, when set, is the daemon's `[login] timing_floor_us`.
fn world() -> (World, String) {
    let floor = std::env::var("TWOFOLD_ENUMERATION_FLOOR_US")
        .ok()
        .filter(|f| !f.is_empty())
        .map(|f| format!("timing_floor_us = {f}\n"))
        .unwrap_or_default();
    let w = World::start(&format!(
        "[login]\nmax_tries = 1\nunenrolled = \"deny\"\n{floor}[lockout]\nmax_failures = 100\nsource_failures = 100",
    ));
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(me());
    // Activated, as a real user's is.
    assert!(
        w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)))
            .passed()
    );
    (w, secret)
}

/// A code an hour ahead: wrong now for the enrolled name, and for the others anyway.
fn wrong_code(secret: &str) -> String {
    let now = unix_now() as i64;
    let wrong = code_at_time(secret, now + 3600);
    for t in [now - 60, now - 30, now, now + 30, now + 60] {
        assert_ne!(wrong, code_at_time(secret, t), "pick another wrong code");
    }
    wrong
}

fn attempt(user: &str, code: &str) -> Transaction {
    Transaction {
        service: "twofold".into(),
        user: user.into(),
        answers: vec![code.into()],
        rhost: Some("192.0.2.7".into()),
        ..Default::default()
    }
}

#[test]
fn unknown_unenrolled_and_enrolled_names_see_the_same_and_get_the_same_result() {
    let (w, secret) = world();
    let code = wrong_code(&secret);
    let names = [UNKNOWN, UNENROLLED, me()];
    let report = w.pam_inprocess(
        &names.iter().map(|n| attempt(n, &code)).collect::<Vec<_>>(),
        &[],
    );
    let seen: Vec<(i64, Vec<String>)> = (0..names.len())
        .map(|i| {
            let r = &report["results"][i];
            let conv: Vec<String> = r["conversation"]
                .as_array()
                .expect("conversation")
                .iter()
                .map(|l| l.as_str().unwrap_or("").replace(names[i], "USER"))
                .collect();
            (r["rc"].as_i64().expect("rc"), conv)
        })
        .collect();
    assert_ne!(seen[0].0, 0, "{seen:?}");
    assert_eq!(seen[0], seen[1], "unknown and unenrolled differ");
    assert_eq!(seen[1], seen[2], "unenrolled and enrolled differ");
    println!(
        "proved: unknown, unenrolled and enrolled names with a wrong code: the same conversation {:?} and PAM code {}",
        seen[0].1, seen[0].0
    );
}

/// The measurement: rounds of interleaved tries (unknown, unenrolled, enrolled, ...) in
/// one process, every name unlocked between rounds; writes the times (µs) per kind to
/// `$TWOFOLD_ENUMERATION_OUT` as `kind microseconds` lines.
#[test]
#[ignore = "a measurement: bash bench/enumeration.sh runs it"]
fn measure_response_times_of_unknown_unenrolled_and_enrolled_names() {
    let out = std::env::var("TWOFOLD_ENUMERATION_OUT").expect("TWOFOLD_ENUMERATION_OUT");
    let tries: usize = std::env::var("TWOFOLD_ENUMERATION_TRIES")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1000);
    let (w, secret) = world();
    let code = wrong_code(&secret);
    let names = [
        ("unknown", UNKNOWN),
        ("unenrolled", UNENROLLED),
        ("enrolled", me()),
    ];
    let per_round = 90; // under max_failures (100) for each name
    let mut lines = String::new();
    let mut done = 0;
    // One unmeasured round first: the first logins of a process pay for loading.
    let mut warm = true;
    while done < tries {
        let n = if warm {
            10
        } else {
            per_round.min(tries - done)
        };
        let batch: Vec<Transaction> = (0..n)
            .flat_map(|_| names.iter().map(|(_, user)| attempt(user, &code)))
            .collect();
        let report = w.pam_inprocess(&batch, &[]);
        for (i, r) in report["results"]
            .as_array()
            .expect("results")
            .iter()
            .enumerate()
        {
            assert_ne!(r["rc"], 0, "a wrong code passed: {r}");
            // Every try measured is a wrong code looked at, never a lock's refusal.
            assert!(r["conversation"].to_string().contains("Wrong code"), "{r}");
            let secs = r["total"]["secs"].as_u64().expect("secs");
            let nanos = r["total"]["nanos"].as_u64().expect("nanos");
            if !warm {
                let micros = secs * 1_000_000 + nanos / 1000;
                lines.push_str(&format!("{} {micros}\n", names[i % names.len()].0));
            }
        }
        for (_, user) in names {
            // For a name with no factor this ends its count too, and says it has none.
            let out = w.ctl(&["unlock", user], "");
            assert!(
                out.status.success() || combined(&out).contains("has no factor"),
                "{}",
                combined(&out)
            );
        }
        if !warm {
            done += n;
        }
        warm = false;
    }
    std::fs::write(&out, lines).expect("write the times");
    println!("measured {tries} tries of each kind into {out}");
}
