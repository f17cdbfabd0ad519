//! A PAM application in this process, the way sshd or sudo is one: pam_start +
//! pam_authenticate + pam_end through the real libpam, with a conversation that answers
//! every prompt with one code. Under pam_wrapper, libpam reads the service files from
//! PAM_WRAPPER_SERVICE_DIR instead of /etc/pam.d.

use nix::libc::{self, c_char, c_int, c_void};
use std::ffi::CString;
use std::time::{Duration, Instant};

pub const PAM_SUCCESS: c_int = 0;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
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
    conv: ConvFn,
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
    fn pam_authenticate(pamh: *mut c_void, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut c_void, status: c_int) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_putenv(pamh: *mut c_void, name_value: *const c_char) -> c_int;
}

/// Answers each prompt with the NUL-terminated string at `appdata`; other messages get
/// an empty reply. libpam frees the replies with free(), so they come from malloc.
extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const PamMessage,
    out: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if n <= 0 || msgs.is_null() || out.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes n valid message pointers (Linux-PAM's layout: an array of
    // pointers); calloc gives n zeroed replies; appdata is the CString that
    // `authenticate` keeps alive for the whole transaction.
    unsafe {
        let replies =
            libc::calloc(n as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if replies.is_null() {
            return PAM_CONV_ERR;
        }
        for i in 0..n as usize {
            let m = *msgs.add(i);
            if matches!((*m).msg_style, PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON) {
                (*replies.add(i)).resp = libc::strdup(appdata as *const c_char);
            }
        }
        *out = replies;
    }
    PAM_SUCCESS
}

const PAM_RHOST: c_int = 4;

/// One login's result and timings.
pub struct Login {
    /// pam_authenticate's return code (or pam_start's, when that failed).
    pub rc: c_int,
    /// pam_start + pam_authenticate + pam_end.
    pub total: Duration,
    /// pam_authenticate alone.
    pub authenticate: Duration,
}

/// One whole PAM transaction for `user` on `service`, answering prompts with `answer`.
pub fn authenticate(service: &str, user: &str, answer: &str) -> Login {
    authenticate_with(service, user, answer, &[], None)
}

/// Like [`authenticate`], with PAM environment entries (`NAME=value`, as sshd sets
/// `SSH_AUTH_INFO_0`) and a remote host, set after `pam_start`.
pub fn authenticate_with(
    service: &str,
    user: &str,
    answer: &str,
    env: &[String],
    rhost: Option<&str>,
) -> Login {
    let failed = |rc| Login {
        rc,
        total: Duration::ZERO,
        authenticate: Duration::ZERO,
    };
    let (Ok(service), Ok(user), Ok(answer)) = (
        CString::new(service),
        CString::new(user),
        CString::new(answer),
    ) else {
        return failed(PAM_CONV_ERR);
    };
    let conv = PamConv {
        conv: conversation,
        appdata_ptr: answer.as_ptr() as *mut c_void,
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    let start = Instant::now();
    // SAFETY: every pointer handed to libpam outlives the transaction, which pam_end
    // closes before this block ends.
    unsafe {
        let rc = pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh);
        if rc != PAM_SUCCESS {
            return failed(rc);
        }
        if let Some(host) = rhost.and_then(|h| CString::new(h).ok()) {
            pam_set_item(pamh, PAM_RHOST, host.as_ptr() as *const c_void);
        }
        for entry in env.iter().filter_map(|e| CString::new(e.as_str()).ok()) {
            pam_putenv(pamh, entry.as_ptr());
        }
        let auth_start = Instant::now();
        let rc = pam_authenticate(pamh, 0);
        let authenticate = auth_start.elapsed();
        pam_end(pamh, rc);
        Login {
            rc,
            total: start.elapsed(),
            authenticate,
        }
    }
}
