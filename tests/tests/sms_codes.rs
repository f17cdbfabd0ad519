//! Codes by SMS through the real parts: pamtester and the real pam_twofold.so, a real
//! twofoldd, and Kannel from Debian (bearerbox, smsbox and fakesmsc as the operator's SMS
//! centre, started by the test): `sms` at the prompt, the text at fakesmsc, the code typed
//! in; replayed codes, the limits, and Kannel stopped or refusing.

use std::time::Duration;
use twofold_integration::kannel::{Kannel, installed_or_skip};
use twofold_integration::sms::{
    NUMBER, ask_and_hear_unavailable, ask_for_a_text, code_in, ready_to_text, sms_config,
};
use twofold_integration::*;

const WAIT: Duration = Duration::from_secs(10);

/// A daemon texting through `kannel` (its password file written beside it), the user
/// enrolled with an app and `NUMBER` on record, and the service `twofold` whose pam.d
/// line says a password came first (`offer_enrolment`). Returns the world and the secret.
fn world_with_sms(kannel: &Kannel, password: Option<&str>, extra: &str) -> (World, String) {
    let file = kannel.dir().join("twofold-sms.password");
    match password {
        Some(p) => write_secret_file(&file, p),
        None => kannel.write_password_file(&file),
    }
    let w = World::start(&sms_config(
        extra,
        &format!(
            "[sms.kannel]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
            kannel.sendsms_url(),
            kannel.username(),
            file.display()
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
