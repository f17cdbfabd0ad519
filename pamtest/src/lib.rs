//! A minimal PAM application in-process: pam_start + pam_authenticate + pam_end through
//! the real libpam, with items and PAM environment set as sshd or sudo would, a scripted
//! conversation, and timings. The end-to-end tests use it to drive pam_twofold.so and to
//! check what it leaves behind in its host; the benchmark uses it to time logins.

use nix::libc::{self, c_char, c_int, c_void};
use std::ffi::CString;
use std::time::Instant;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_SUCCESS: c_int = 0;
const PAM_CONV_ERR: c_int = 19;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    /// `None` is a NULL function pointer: an application that gives libpam none.
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut c_void,
    ) -> c_int;
    /// Linux-PAM 1.4 and later: the service files come from `confdir`.
    fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut c_void,
    ) -> c_int;
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
}

/// Names the directory `run` takes the PAM service files from (`pam_start_confdir`).
pub const CONFDIR_VARIABLE: &str = "TWOFOLD_PAM_CONFDIR";

/// One PAM transaction as a test describes it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Transaction {
    pub service: String,
    pub user: String,
    /// Answers to the prompts, in order; when they run out the conversation fails.
    pub answers: Vec<String>,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    /// `NAME=value` pairs put into the PAM environment (as sshd puts SSH_AUTH_INFO_0).
    pub env: Vec<String>,
    /// Holds the conversation open at a prompt, so a test can act while it waits.
    pub pause: Option<Pause>,
    /// How the application answers, beside the scripted answers (checklist item 19).
    pub quirk: Quirk,
}

/// Conversations a careless or hostile application makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Quirk {
    /// The scripted answers, as a terminal would give them.
    #[default]
    None,
    /// No conversation function at all (a NULL pointer in `pam_conv`).
    NoFunction,
    /// Success, but no replies (`*resp` left NULL).
    NullReplies,
    /// Success, replies there, but each prompt's answer a NULL string.
    NullAnswer,
    /// Each answer the bytes 0xff 0xfe followed by the scripted answer: not UTF-8.
    NotUtf8,
}

/// At prompt number `at_prompt` (0 = the first), creates `DIR/open` and waits (up to
/// 60 s) for `DIR/go` before answering.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Pause {
    pub at_prompt: usize,
    pub dir: String,
}

/// What happened: pam_authenticate's code, the conversation as `prompt: …`, `info: …`
/// and `error: …` lines, and how long it took.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub rc: i32,
    pub conversation: Vec<String>,
    /// pam_start + pam_authenticate + pam_end.
    pub total: std::time::Duration,
    /// pam_authenticate alone.
    pub authenticate: std::time::Duration,
}

const PAM_ERROR_MSG: c_int = 3;
const PAM_TTY: c_int = 3;
const PAM_RHOST: c_int = 4;

struct ConversationState {
    answers: std::collections::VecDeque<CString>,
    quirk: Quirk,
    log: Vec<String>,
    prompts: usize,
    pause: Option<Pause>,
}

impl ConversationState {
    fn maybe_pause(&mut self) {
        if let Some(p) = self.pause.as_ref().filter(|p| p.at_prompt == self.prompts) {
            let dir = std::path::Path::new(&p.dir);
            let _ = std::fs::write(dir.join("open"), "");
            let start = Instant::now();
            while !dir.join("go").exists() && start.elapsed().as_secs() < 60 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.prompts += 1;
    }
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_putenv(pamh: *mut c_void, name_value: *const c_char) -> c_int;
}

/// Answers prompts from the scripted list and records everything shown; libpam frees
/// what we allocate.
extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const PamMessage,
    out: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if n <= 0 || msgs.is_null() || out.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes n valid messages and our appdata (a live ConversationState);
    // we allocate n responses with calloc, as libpam frees them with free().
    unsafe {
        let state = &mut *(appdata as *mut ConversationState);
        if state.quirk == Quirk::NullReplies {
            state.log.push("quirk: no replies".into());
            return PAM_SUCCESS;
        }
        let replies =
            libc::calloc(n as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if replies.is_null() {
            return PAM_CONV_ERR;
        }
        for i in 0..n as usize {
            let m = *msgs.add(i);
            let text = std::ffi::CStr::from_ptr((*m).msg)
                .to_string_lossy()
                .into_owned();
            match (*m).msg_style {
                PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                    state.log.push(format!("prompt: {text}"));
                    state.maybe_pause();
                    let Some(answer) = state.answers.pop_front() else {
                        libc::free(replies as *mut c_void);
                        return PAM_CONV_ERR;
                    };
                    (*replies.add(i)).resp = match state.quirk {
                        Quirk::NullAnswer => std::ptr::null_mut(),
                        Quirk::NotUtf8 => {
                            let mut bytes = vec![0xff, 0xfe];
                            bytes.extend_from_slice(answer.as_bytes());
                            let raw = CString::new(bytes).unwrap_or_default();
                            libc::strdup(raw.as_ptr())
                        }
                        _ => libc::strdup(answer.as_ptr()),
                    };
                }
                PAM_ERROR_MSG => state.log.push(format!("error: {text}")),
                _ => state.log.push(format!("info: {text}")),
            }
        }
        *out = replies;
    }
    PAM_SUCCESS
}

/// One whole PAM transaction in this process.
pub fn run(t: &Transaction) -> Outcome {
    let cstr = |s: &str| CString::new(s).unwrap_or_default();
    let (service, user) = (cstr(&t.service), cstr(&t.user));
    let mut state = ConversationState {
        answers: t.answers.iter().map(|a| cstr(a)).collect(),
        log: Vec::new(),
        prompts: 0,
        pause: t.pause.clone(),
        quirk: t.quirk,
    };
    let conv = PamConv {
        conv: (t.quirk != Quirk::NoFunction).then_some(conversation as ConvFn),
        appdata_ptr: &mut state as *mut ConversationState as *mut c_void,
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    let items: Vec<(c_int, CString)> = [(PAM_RHOST, &t.rhost), (PAM_TTY, &t.tty)]
        .into_iter()
        .filter_map(|(item, value)| value.as_deref().map(|v| (item, cstr(v))))
        .collect();
    let env: Vec<CString> = t.env.iter().map(|e| cstr(e)).collect();
    // Service files from this directory instead of /etc/pam.d, without pam_wrapper (whose
    // shared /tmp/pam.X directories parallel tests can mix up).
    let confdir = std::env::var(CONFDIR_VARIABLE).ok().map(|d| cstr(&d));
    let start = Instant::now();
    // SAFETY: all pointers outlive the transaction, which ends with pam_end here.
    let (rc, authenticate) = unsafe {
        let rc = match &confdir {
            Some(dir) => pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &conv,
                dir.as_ptr(),
                &mut pamh,
            ),
            None => pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh),
        };
        if rc != PAM_SUCCESS {
            return Outcome {
                rc,
                conversation: state.log,
                ..Default::default()
            };
        }
        for (item, value) in &items {
            pam_set_item(pamh, *item, value.as_ptr() as *const c_void);
        }
        for pair in &env {
            pam_putenv(pamh, pair.as_ptr());
        }
        let auth_start = Instant::now();
        let rc = pam_authenticate(pamh, 0);
        let authenticate = auth_start.elapsed();
        pam_end(pamh, rc);
        (rc, authenticate)
    };
    Outcome {
        rc,
        conversation: state.log,
        total: start.elapsed(),
        authenticate,
    }
}

/// What a module could leave behind: threads, open descriptors, signal handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessState {
    pub threads: usize,
    pub fds: Vec<String>,
    pub handlers: Vec<usize>,
}

pub fn process_state() -> ProcessState {
    let count = |dir: &str| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .filter(|p| !p.starts_with("/proc/") || !p.ends_with("/fd"))
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    let handlers = (1..32)
        .map(|sig| {
            // SAFETY: querying (act = NULL) changes nothing.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                old.sa_sigaction
            }
        })
        .collect();
    ProcessState {
        threads: count("/proc/self/task"),
        fds,
        handlers,
    }
}
