//! pam_twofold's exchange with twofoldd called in this process without libpam: the
//! module's own code (`client::run`: a fresh runtime, connect, peer check, handshake, the
//! calls, teardown) with a scripted conversation. Set beside a PAM login, it splits the
//! module's cost into "talking to twofoldd" and "being a PAM module".

use crate::User;
use pam_twofold::client::{Ui, run};
use pam_twofold::options;
use std::path::Path;
use std::time::{Duration, Instant};
use twofold_protocol::{Action, LoginContext, Style};

/// Answers every prompt with the next of its answers; none left is no answer.
struct Scripted(Vec<String>);

impl Ui for Scripted {
    fn show(&mut self, _style: Style, _text: &str) {}
    fn prompt(&mut self, _secret: bool, _text: &str) -> Option<String> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0.remove(0))
        }
    }
}

/// One exchange over `socket` for `ctx`, answering with `answers`; must end in success.
pub fn once(socket: &Path, ctx: &LoginContext, answers: Vec<String>) -> Result<Duration, String> {
    let arg = format!("socket={}", socket.display());
    let opts = options::parse([arg.as_str()])?;
    let t = Instant::now();
    let verdict = run(&opts, ctx, &mut Scripted(answers));
    let took = t.elapsed();
    match verdict {
        Ok(Action::Success) => Ok(took),
        other => Err(format!("exchange for {}: {other:?}", ctx.user)),
    }
}

pub struct Figures {
    /// A code login: `Begin`, the code, success.
    pub code: Vec<Duration>,
    /// A trusted login: `Begin` answers success.
    pub trusted: Vec<Duration>,
}

/// A code login of `user` (its code computed right before).
pub fn code_login(socket: &Path, user: &User) -> Result<Duration, String> {
    let ctx = LoginContext {
        user: user.name.clone(),
        service: "twofold".into(),
        ..Default::default()
    };
    once(socket, &ctx, vec![user.code_now()?])
}
