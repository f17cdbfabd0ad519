//! Recovery codes end to end: `twofoldctl enrol` shows them once, one passes the real
//! module once (typed as printed, or in lower case without dashes), `status` counts what
//! is left, `twofoldctl recovery --regenerate` replaces them, and none reaches the log.

use twofold_integration::*;

fn codes_of(out: &std::process::Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["recovery_codes"]
        .as_array()
        .expect("recovery_codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_recovery_code_passes_the_module_once_and_regenerating_replaces_them() {
    let w = World::start("");
    w.write_service("twofold", &w.module_line(""));
    let user = me();
    let out = w.ctl(&["--json", "enrol", user, "--no-verify"], "");
    assert!(out.status.success(), "{}", combined(&out));
    let codes = codes_of(&out);
    assert_eq!(codes.len(), 10, "{codes:?}");
    let text = w.ctl(
        &["enrol", user, "--no-verify", "--replace", "--qr", "none"],
        "",
    );
    let shown = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        shown.contains("Recovery codes for") && shown.contains("not shown again"),
        "{shown}"
    );
    // The text enrolment replaced the JSON one's codes; take them from its output.
    let codes: Vec<String> = shown
        .split_whitespace()
        .filter(|w| w.len() == 19 && w.matches('-').count() == 3)
        .map(String::from)
        .collect();
    assert_eq!(codes.len(), 10, "{shown}");

    let typed = codes[0].replace('-', "").to_lowercase();
    let ok = w.pam("twofold", user, &format!("{typed}\n"));
    assert!(ok.passed() && ok.has("Recovery code accepted"), "{ok:?}");
    let again = w.pam("twofold", user, &format!("{}\n", codes[0]));
    assert!(!again.passed(), "a recovery code worked twice: {again:?}");
    let status = w.ctl(&["status", user], "");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("9 recovery code(s) left"),
        "{}",
        combined(&status)
    );
    println!("proved: a recovery code passes the real module once; status counts the rest");

    let out = w.ctl(&["--json", "recovery", user, "--regenerate"], "");
    assert!(out.status.success(), "{}", combined(&out));
    let new = codes_of(&out);
    assert_eq!(new.len(), 10);
    let old = w.pam("twofold", user, &format!("{}\n", codes[1]));
    assert!(!old.passed(), "an old code survived regenerating: {old:?}");
    let ok = w.pam("twofold", user, &format!("{}\n", new[0]));
    assert!(ok.passed(), "{ok:?}");
    let log = w.daemon_log();
    assert!(
        codes.iter().chain(&new).all(|c| !log.contains(c.as_str())),
        "a recovery code reached the log"
    );
    println!("proved: --regenerate replaces the codes; no code in the log");
}
