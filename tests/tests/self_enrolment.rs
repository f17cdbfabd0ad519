//! Enrolment at the first login, end to end through the real module (pamtester): within
//! a grace period the login shows a QR code that a real decoder (zbar) reads as the
//! otpauth URI of the key shown beside it, asks for the app's first code, and the factor
//! is active only after a right one; Enter declines and the login goes on.

use twofold_integration::*;

/// The key the offer shows, without its spaces.
fn offered_key(shown: &str) -> String {
    shown
        .lines()
        .find_map(|l| {
            l.split_once("(time-based): ")
                .map(|(_, k)| k.replace(' ', ""))
        })
        .unwrap_or_else(|| panic!("no key in {shown}"))
}

/// 2027-01-15T08:00:00Z, the start of a TOTP step; the daemon's clock (a test clock).
const T0: i64 = 1_800_000_000;

fn grace_world() -> World {
    let w = World::start_at("[enrolment]\ndeadline = \"2099-01-01\"\n", T0);
    // pamtester runs as root: the module's pam.d word says a first factor came before.
    w.write_service("twofold", &w.module_line("offer_enrolment"));
    w
}

fn state_of(w: &World, user: &str) -> String {
    let out = w.ctl(&["--json", "status", user], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    v[0]["state"].as_str().unwrap_or("").to_string()
}

#[test]
fn the_first_login_offers_a_qr_code_and_a_right_first_code_sets_the_app_up() {
    let w = grace_world();
    let user = me();
    let mut login = w.pam_typing("twofold", user);
    let shown = login.wait_for("Press Enter to continue: ");
    assert!(
        shown.contains("Set up your authenticator app now"),
        "{shown}"
    );
    let key = offered_key(&shown);
    let uri = qr_decode(w.dir.path(), &shown, "dark")
        .unwrap_or_else(|| panic!("zbar found no QR code in {shown}"));
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={key}")),
        "the QR code is not the key shown: {uri}"
    );
    assert_eq!(state_of(&w, user), "none", "offered is not enrolled");
    login.line("000000");
    login.wait_for("does not match");
    assert_eq!(state_of(&w, user), "none", "a wrong code enrolled");
    let code = code_at_time(&key, T0);
    login.line(&code);
    let shown = login.wait_for("Press Enter when you have written them down: ");
    assert!(shown.contains("Recovery codes"), "{shown}");
    login.line("");
    let run = login.finish();
    assert!(run.passed(), "{run:?}");
    assert_eq!(state_of(&w, user), "active");
    println!(
        "proved: zbar reads the login's QR code as the key shown; the app is active only after a right first code"
    );

    // From now on the login asks for the app's code.
    w.set_clock(T0 + 30);
    let next = w.pam(
        "twofold",
        user,
        &format!("{}\n", code_at_time(&key, T0 + 30)),
    );
    assert!(next.passed() && next.has("Verification code: "), "{next:?}");
    assert!(!w.daemon_log().contains(&key), "the key reached the log");
}

#[test]
fn enter_declines_and_the_login_goes_on_under_the_grace_rules() {
    let w = grace_world();
    let user = me();
    let run = w.pam("twofold", user, "\n");
    assert!(
        run.passed() && run.has("Set up your authenticator app now"),
        "{run:?}"
    );
    assert_eq!(state_of(&w, user), "none");
    println!("proved: Enter declines the offer; the grace period lets the login on");
}
