//! Codes by SMS through the real parts: pamtester and the real pam_twofold.so, a real
//! twofoldd, and Kannel from Debian (bearerbox, smsbox and fakesmsc as the operator's SMS
//! centre, started by the test): `sms` at the prompt, the text at fakesmsc, the code typed
//! in; replayed codes, the limits, and Kannel stopped or refusing.

use std::time::Duration;
use twofold_integration::kannel::{Kannel, installed_or_skip, local_user_line};
use twofold_integration::sms::{
    NUMBER, ask_and_hear_unavailable, ask_for_a_text, code_in, ready_to_text, sms_config,
};
use twofold_integration::*;

const WAIT: Duration = Duration::from_secs(10);

/// A daemon texting through `kannel` (its password file written beside it), the user
/// enrolled with an app and `NUMBER` on record, and the service `twofold` whose pam.d
/// line says a password came first (`offer_enrolment`). Returns the world and the secret.
fn world_with_sms(kannel: &Kannel, password: Option<&str>, extra: &str) -> (World, String) {
    world_with_kannel(kannel, password, extra, "")
}

/// [`world_with_sms`], with `kannel_extra` keys in `[sms.kannel]`.
fn world_with_kannel(
    kannel: &Kannel,
    password: Option<&str>,
    extra: &str,
    kannel_extra: &str,
) -> (World, String) {
    let file = kannel.dir().join("twofold-sms.password");
    match password {
        Some(p) => write_secret_file(&file, p),
        None => kannel.write_password_file(&file),
    }
    let w = World::start(&sms_config(
        extra,
        &format!(
            "[sms.kannel]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n{}{kannel_extra}\n",
            kannel.sendsms_url(),
            kannel.username(),
            file.display(),
            local_user_line()
        ),
    ));
    let secret = ready_to_text(&w);
    (w, secret)
}

#[test]
fn sms_at_the_prompt_texts_a_code_that_logs_in_once() {
    if !installed_or_skip("sms_at_the_prompt_texts_a_code_that_logs_in_once") {
        return;
    }
    let kannel = Kannel::start();
    let (w, _) = world_with_sms(&kannel, None, "");
    let mut login = ask_for_a_text(&w);
    let sms = kannel
        .wait_for_message(WAIT)
        .unwrap_or_else(|| panic!("no text arrived\n{}\n{}", kannel.logs(), w.daemon_log()));
    assert_eq!(sms.to, NUMBER);
    assert!(
        sms.text
            .contains("is your twofold login code for twofold on")
            && sms.text.contains("valid 5 min. Not you? Tell IT"),
        "{}",
        sms.text
    );
    let code = code_in(&sms.text);
    login.line(&code);
    let run = login.finish();
    assert!(run.passed(), "{run:?}\n{}", w.daemon_log());
    println!(
        "proved: 'sms' at the prompt -> Kannel -> fakesmsc got the code for {NUMBER}; typed in, it passed"
    );

    let replay = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(!replay.passed() && replay.has("Wrong code"), "{replay:?}");
    let log = w.daemon_log();
    assert!(!log.contains(&code) && !log.contains(NUMBER), "{log}");
    println!("proved: the texted code works once; neither code nor number is in twofoldd's log");

    // 60 s must pass between texts: said with the seconds left.
    let soon = w.pam("twofold", me(), "sms\n");
    assert!(
        soon.has("SMS limit reached; try again in ")
            && soon.has(" s, or use your authenticator app"),
        "{soon:?}"
    );
    assert!(kannel.wait_for_message(Duration::from_secs(1)).is_none());
    println!("proved: a second text within 60 s is refused and the user told when to try again");
}

#[test]
fn kannel_down_or_refusing_is_told_at_once_locks_nothing_and_the_app_still_works() {
    if !installed_or_skip(
        "kannel_down_or_refusing_is_told_at_once_locks_nothing_and_the_app_still_works",
    ) {
        return;
    }
    let mut kannel = Kannel::start();
    let (w, secret) = world_with_sms(&kannel, None, "min_interval_seconds = 10");
    kannel.stop_smsbox();
    let (mut login, took) = ask_and_hear_unavailable(&w, Duration::from_secs(5));
    // The same login goes on with the app's code.
    login.line(&code_at_time(&secret, unix_now() as i64));
    let run = login.finish();
    assert!(run.passed(), "{run:?}");
    assert!(
        w.daemon_log().contains("the SMS gateway is unavailable"),
        "{}",
        w.daemon_log()
    );
    println!(
        "proved: with smsbox stopped 'sms' is answered in {took:?} with the reason; the app's code then passes in the same login"
    );

    // A wrong password: Kannel's 403, a refusal for good, in the audit.
    kannel.start_smsbox();
    drop(w);
    let (w, _) = world_with_sms(&kannel, Some("not-the-password"), "");
    let refused = w.pam("twofold", me(), "sms\n");
    assert!(
        refused.has("The text could not be sent (the SMS gateway refused it)"),
        "{refused:?}\n{}",
        w.daemon_log()
    );
    let log = w.daemon_log();
    assert!(log.contains("HTTP 403"), "{log}");
    assert!(
        !log.contains("not-the-password") && !log.contains(kannel.password()),
        "{log}"
    );
    println!(
        "proved: Kannel's 403 for a wrong password is told as a refusal and logged as HTTP 403, without the password"
    );
}

#[test]
fn a_flood_of_sms_answers_from_parallel_logins_sends_one_text() {
    if !installed_or_skip("a_flood_of_sms_answers_from_parallel_logins_sends_one_text") {
        return;
    }
    let kannel = Kannel::start();
    let (w, _) = world_with_sms(&kannel, None, "");
    let login = twofold_pamtest::Transaction {
        service: "twofold".into(),
        user: me().into(),
        answers: vec!["sms".into()],
        ..Default::default()
    };
    // 16 host processes at once, each a login answering `sms` to the offer.
    let conversations: Vec<Vec<String>> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| first_outcome(&w.pam_inprocess(std::slice::from_ref(&login), &[])).1)
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let told = |what: &str| {
        conversations
            .iter()
            .filter(|c| c.iter().any(|line| line.contains(what)))
            .count()
    };
    let (sent, limited) = (
        told("Code sent by SMS"),
        told("SMS limit reached; try again in"),
    );
    assert_eq!(
        (sent, limited),
        (1, 15),
        "{conversations:#?}\n{}",
        w.daemon_log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(kannel.messages().len(), 1, "{:?}", kannel.messages());
    println!(
        "proved: 16 parallel logins answering 'sms' sent exactly one text; the other 15 were told when to try again"
    );
}

#[test]
fn kannel_s_delivery_reports_reach_the_audit_and_the_prompt() {
    if !installed_or_skip("kannel_s_delivery_reports_reach_the_audit_and_the_prompt") {
        return;
    }
    let mut kannel = Kannel::start();
    let port = free_port();
    let (w, _) = world_with_kannel(
        &kannel,
        None,
        "",
        &format!("reports_address = \"127.0.0.1:{port}\""),
    );
    assert!(
        w.daemon_log().contains(&format!(
            "listening for SMS delivery reports on 127.0.0.1:{port}"
        )),
        "{}",
        w.daemon_log()
    );
    // The link to the SMS centre is down: Kannel queues the text, nothing is reported.
    kannel.disconnect_smsc();
    let mut login = ask_for_a_text(&w);
    login.line("000000");
    let shown = login.wait_for("'sms' for a new one): ");
    assert!(
        shown.contains("Code from the text (not delivered yet; or 'sms' for a new one): "),
        "{shown}\n{}",
        w.daemon_log()
    );
    println!("proved: with the SMS centre unreachable the next prompt says 'not delivered yet'");
    // Back: the text goes out, and smsbox calls twofoldd back (types 8 then 1).
    kannel.reconnect_smsc();
    let sms = kannel
        .wait_for_message(WAIT)
        .unwrap_or_else(|| panic!("no text arrived\n{}\n{}", kannel.logs(), w.daemon_log()));
    let deadline = std::time::Instant::now() + WAIT;
    while !w.daemon_log().contains("delivered to the phone") && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = w.daemon_log();
    assert!(
        log.contains("action=sms-report outcome=accepted")
            && log.contains("the operator took it (Kannel report type 8)"),
        "{log}\n{}",
        kannel.logs()
    );
    assert!(
        log.contains("action=sms-report outcome=delivered")
            && log.contains(
                "text 1 to +49********678: delivered to the phone (Kannel report type 1)"
            ),
        "{log}"
    );
    login.line("000000");
    let shown = login.wait_for("(delivered; or 'sms' for a new one): ");
    assert!(shown.contains("(delivered; or 'sms'"), "{shown}");
    login.line(&code_in(&sms.text));
    let run = login.finish();
    assert!(run.passed(), "{run:?}\n{}", w.daemon_log());
    println!(
        "proved: Kannel's delivery reports (taken by the SMS centre, delivered) reach twofoldd's audit and the login's next prompt; the code then passes"
    );
    // Forged reports: a guessed reference changes nothing and is not audited.
    let before = w.daemon_log().matches("action=sms-report").count();
    for url in [
        format!("http://127.0.0.1:{port}/dlr/{}?type=16", "0".repeat(32)),
        format!("http://127.0.0.1:{port}/dlr/x?type=1"),
    ] {
        let answer = twofold_integration::kannel::http_get(&url, Duration::from_secs(2));
        assert!(answer.is_ok(), "{answer:?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.daemon_log().matches("action=sms-report").count(), before);
    let log = w.daemon_log();
    assert!(
        !log.contains("/dlr/"),
        "the reference is never logged: {log}"
    );
    println!("proved: a report for a guessed reference is answered alike and ignored");
}

#[test]
fn with_sole_factor_a_number_alone_enrols_and_logs_in_through_kannel() {
    if !installed_or_skip("with_sole_factor_a_number_alone_enrols_and_logs_in_through_kannel") {
        return;
    }
    let kannel = Kannel::start();
    let file = kannel.dir().join("twofold-sms.password");
    kannel.write_password_file(&file);
    let w = World::start(&sms_config(
        "sole_factor = true",
        &format!(
            "[sms.kannel]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n{}",
            kannel.sendsms_url(),
            kannel.username(),
            file.display(),
            local_user_line()
        ),
    ));
    w.write_service("twofold", &w.module_line("offer_enrolment"));
    let out = w.ctl(&["user", "set", me(), "--phone", NUMBER], "");
    assert!(out.status.success(), "{}", combined(&out));
    let status = w.ctl(&["status", me()], "");
    assert!(
        combined(&status).contains("active codes by SMS"),
        "{}",
        combined(&status)
    );
    let mut login = ask_for_a_text(&w);
    let sms = kannel
        .wait_for_message(WAIT)
        .unwrap_or_else(|| panic!("no text arrived\n{}\n{}", kannel.logs(), w.daemon_log()));
    login.line(&code_in(&sms.text));
    let run = login.finish();
    assert!(run.passed(), "{run:?}\n{}", w.daemon_log());
    println!(
        "proved: with [sms] sole_factor = true a number alone is a factor: status says 'codes by SMS' and a texted code logs in through Kannel"
    );
    // Without a known first factor there is no offer and nothing passes.
    w.write_service("bare", &w.module_line(""));
    let bare = w.pam("bare", me(), "sms\n000000\n");
    assert!(!bare.passed() && !bare.has("'sms'"), "{bare:?}");
    assert!(kannel.wait_for_message(Duration::from_secs(1)).is_none());
    println!("proved: an SMS-only user is refused where no first factor is known to have passed");
}

/// A daemon whose `[sms.kannel]` url is `address` (no Kannel: a stand-in), its password
/// file in `dir`, `extra` keys in the section; ready to text (see `ready_to_text`).
fn world_with_a_gateway_at(dir: &tempfile::TempDir, address: &str, extra: &str) -> (World, String) {
    let file = dir.path().join("password");
    write_secret_file(&file, "kannel-password");
    let w = World::start(&sms_config(
        "",
        &format!(
            "[sms.kannel]\nurl = \"http://{address}/cgi-bin/sendsms\"\nusername = \"twofold\"\npassword_file = \"{}\"\n{extra}",
            file.display()
        ),
    ));
    let secret = ready_to_text(&w);
    (w, secret)
}

#[test]
fn a_gateway_that_never_answers_holds_its_login_1_5_s_and_no_other_login() {
    // smsbox that takes the request and never answers (a hung Kannel): a listener that
    // accepts and stays silent.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in silent.incoming().take(4) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    let dir = tempfile::tempdir().unwrap();
    let (w, secret) = world_with_a_gateway_at(
        &dir,
        &address.to_string(),
        &format!("timeout_seconds = 10\n{}", local_user_line()),
    );
    let started = std::time::Instant::now();
    let mut login = w.pam_typing("twofold", me());
    login.wait_for("'sms' to text a code");
    login.line("sms");
    // While that login waits for the gateway, another one goes through with the app.
    std::thread::sleep(Duration::from_millis(200));
    let other_started = std::time::Instant::now();
    let other = w.pam(
        "twofold",
        me(),
        &format!("{}\n", code_at_time(&secret, unix_now() as i64)),
    );
    let other_took = other_started.elapsed();
    assert!(other.passed(), "{other:?}\n{}", w.daemon_log());
    assert!(
        other_took < Duration::from_millis(1000),
        "the other login took {other_took:?}"
    );
    let shown = login.wait_for("valid 5 min: ");
    let told = started.elapsed();
    assert!(shown.contains("Code sent by SMS to"), "{shown}");
    assert!(
        told < Duration::from_secs(4),
        "told after {told:?}: the login waits 1.5 s for the gateway, not its 10 s timeout"
    );
    drop(login.finish());
    assert!(
        w.daemon_log().contains("no answer from the gateway yet"),
        "{}",
        w.daemon_log()
    );
    println!(
        "proved: with a gateway that never answers, 'sms' is answered after {told:?} (taken as sent, audited as unanswered) and another login meanwhile passed in {other_took:?}"
    );
    drop(held);
}

#[test]
fn a_local_user_holding_the_gateway_s_port_gets_nothing() {
    if !is_root() {
        println!(
            "skipped: a_local_user_holding_the_gateway_s_port_gets_nothing needs root (another account binds the port)"
        );
        return;
    }
    ensure_test_users();
    // Kannel is down and tf-alice (uid 1001) has bound its port, to hear the password
    // and the codes: twofoldd, expecting root or a system account there, sends nothing.
    let port = free_port();
    let mut impostor = KilledWhenDropped(std::process::Command::new("setpriv")
        .args(["--reuid", USER_A, "--regid", USER_A, "--clear-groups", "/usr/bin/perl"])
        .args([
            "-MIO::Socket::INET",
            "-e",
            "$| = 1; my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die $!; print \"ready\\n\"; while (my $c = $s->accept) { print \"connected\\n\"; close $c }",
        ])
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("perl as tf-alice"));
    let mut out = std::io::BufReader::new(impostor.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    let dir = tempfile::tempdir().unwrap();
    let (w, secret) = world_with_a_gateway_at(&dir, &format!("127.0.0.1:{port}"), "");
    let (mut login, _) = ask_and_hear_unavailable(&w, Duration::from_secs(5));
    login.line(&code_at_time(&secret, unix_now() as i64));
    assert!(login.finish().passed(), "the app still works");
    let uid = nix::unistd::User::from_name(USER_A).unwrap().unwrap().uid;
    let log = w.daemon_log();
    assert!(
        log.contains(&format!(
            "port {port} is held by uid {uid}, not by root or a system account"
        )),
        "{log}"
    );
    drop(impostor);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    assert!(
        !rest.contains("connected"),
        "the impostor was connected to: {rest}"
    );
    println!(
        "proved: with {USER_A} holding smsbox's port, twofoldd never connected to it (no password, no code), told the user the gateway is unavailable, and the app's code still passed"
    );
}

/// A process killed (and reaped) when the test ends, also when it fails.
struct KilledWhenDropped(std::process::Child);

impl Drop for KilledWhenDropped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
