//! The module's exchange (`client::run`) without PAM: a scripted conversation through the
//! `Ui` trait against a scripted D-Bus peer-to-peer server on a temporary socket, the way
//! twofoldd serves its own. The real `.so` under libpam is tested in `tests/`.

use pam_twofold::client::{Ui, run};
use pam_twofold::options;
use pam_twofold::verdict::Failure;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofold_protocol::{Action, LoginContext, Step, Style};

/// What the fake Ui saw and answered.
#[derive(Default)]
struct Script {
    answers: Vec<&'static str>,
    seen: Vec<String>,
}

impl Ui for Script {
    fn show(&mut self, style: Style, text: &str) {
        self.seen.push(format!("{style:?}: {text}"));
    }
    fn prompt(&mut self, secret: bool, text: &str) -> Option<String> {
        self.seen.push(format!("prompt secret={secret}: {text}"));
        (!self.answers.is_empty()).then(|| self.answers.remove(0).to_string())
    }
}

/// The server's side: its steps in order, and what it was told.
#[derive(Default)]
struct Served {
    steps: Vec<Step>,
    answers: Vec<String>,
    cancelled: Vec<String>,
    contexts: Vec<LoginContext>,
    /// Sent as the first step's action code instead of its own.
    raw_action: Option<u32>,
}

/// A step as it travels: (messages, action, prompt).
type RawStep = (Vec<(u32, String)>, u32, String);

fn raw(step: Step, action: Option<u32>) -> RawStep {
    (
        step.messages
            .into_iter()
            .map(|m| (m.style.code(), m.text))
            .collect(),
        action.unwrap_or(step.action.code()),
        step.prompt,
    )
}

struct FakeAuth(Arc<Mutex<Served>>);

#[zbus::interface(name = "org.twofold.Twofold1.Auth")]
impl FakeAuth {
    fn begin(&self, context: LoginContext) -> (String, RawStep) {
        let mut s = self.0.lock().unwrap();
        s.contexts.push(context);
        let first = s.steps.remove(0);
        ("c1".into(), raw(first, s.raw_action))
    }
    fn answer(&self, conversation: String, response: String) -> Step {
        let mut s = self.0.lock().unwrap();
        assert_eq!(conversation, "c1");
        s.answers.push(response);
        if s.steps.is_empty() {
            // Keeps asking: the client must give up by itself.
            return Step::prompt(Action::PromptSecret, "Again: ");
        }
        s.steps.remove(0)
    }
    fn cancel(&self, conversation: String) {
        self.0.lock().unwrap().cancelled.push(conversation);
    }
}

/// Serves `steps` on a fresh socket in its own thread; returns the socket's directory
/// (kept alive by the caller) and the shared record.
fn serve(steps: Vec<Step>) -> (tempfile::TempDir, String, Arc<Mutex<Served>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("socket");
    let served = Arc::new(Mutex::new(Served {
        steps,
        ..Default::default()
    }));
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let shared = served.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let conn = zbus::connection::Builder::unix_stream(stream.into_std().unwrap())
                    .server(zbus::Guid::generate())
                    .p2p()
                    .serve_at(twofold_protocol::OBJECT_PATH, FakeAuth(shared.clone()))
                    .build()
                    .await
                    .unwrap();
                // Kept open until the client closes it.
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let mut m = zbus::MessageStream::from(&conn);
                    while let Some(Ok(_)) = m.next().await {}
                });
            }
        });
    });
    (dir, path.display().to_string(), served)
}

/// Options for `socket`, accepting the test's own uid as the daemon's.
fn opts(socket: &str) -> options::Options {
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let args = [
        format!("socket={socket}"),
        format!("daemon_user={me}"),
        "timeout=5".to_string(),
    ];
    options::parse(args.iter().map(String::as_str)).unwrap()
}

fn ctx() -> LoginContext {
    LoginContext {
        user: "alice".into(),
        service: "sudo".into(),
        tty: "pts/3".into(),
        ..Default::default()
    }
}

#[test]
fn messages_and_prompts_reach_the_ui_in_order_and_answers_reach_the_daemon() {
    let (_dir, socket, served) = serve(vec![
        Step::prompt(Action::PromptSecret, "Verification code: ").info("Welcome"),
        Step::prompt(Action::PromptVisible, "Trust this device? [y/N] ").error("Note"),
        Step::new(Action::Success).info("Done"),
    ]);
    let mut ui = Script {
        answers: vec!["123456", "n"],
        ..Default::default()
    };
    let verdict = run(&opts(&socket), &ctx(), &mut ui);
    assert_eq!(verdict.unwrap(), Action::Success);
    assert_eq!(
        ui.seen,
        [
            "Info: Welcome",
            "prompt secret=true: Verification code: ",
            "Error: Note",
            "prompt secret=false: Trust this device? [y/N] ",
            "Info: Done",
        ]
    );
    let s = served.lock().unwrap();
    assert_eq!(s.answers, ["123456", "n"]);
    assert_eq!(s.contexts, [ctx()]);
    assert!(s.cancelled.is_empty());
}

#[test]
fn no_answer_from_the_application_cancels_the_conversation_and_fails() {
    let (_dir, socket, served) = serve(vec![Step::prompt(Action::PromptSecret, "Code: ")]);
    let mut ui = Script::default();
    let verdict = run(&opts(&socket), &ctx(), &mut ui);
    assert!(matches!(verdict, Err(Failure::Conversation)), "{verdict:?}");
    // The Cancel went out before the connection closed.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(served.lock().unwrap().cancelled, ["c1"]);
}

#[test]
fn a_daemon_that_never_stops_asking_is_given_up_on() {
    let (_dir, socket, served) = serve(vec![Step::prompt(Action::PromptSecret, "Code: ")]);
    let mut ui = Script {
        answers: vec!["1"; 100],
        ..Default::default()
    };
    let verdict = run(&opts(&socket), &ctx(), &mut ui);
    assert!(matches!(verdict, Err(Failure::Protocol(_))), "{verdict:?}");
    let s = served.lock().unwrap();
    assert_eq!(s.answers.len(), 32, "at most MAX_STEPS answers");
}

#[test]
fn a_final_refusal_is_passed_on_as_it_is() {
    for action in [
        Action::Denied,
        Action::MaxTries,
        Action::OutOfScope,
        Action::Error,
    ] {
        let (_dir, socket, _) = serve(vec![Step::new(action).error("no")]);
        let mut ui = Script::default();
        assert_eq!(run(&opts(&socket), &ctx(), &mut ui).unwrap(), action);
        assert_eq!(ui.seen, ["Error: no"]);
    }
}

#[test]
fn a_step_with_an_unknown_action_fails_closed() {
    let (_dir, socket, served) = serve(vec![Step::prompt(Action::PromptSecret, "Code: ")]);
    served.lock().unwrap().raw_action = Some(99);
    let mut ui = Script::default();
    let verdict = run(&opts(&socket), &ctx(), &mut ui);
    assert!(matches!(verdict, Err(Failure::Protocol(_))), "{verdict:?}");
    assert!(
        ui.seen.is_empty(),
        "nothing of that step was shown: {:?}",
        ui.seen
    );
}
