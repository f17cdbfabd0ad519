//! A minimal PAM application in-process: pam_start + pam_authenticate + pam_end with a
//! conversation that answers every prompt with a fixed text. Used to check what the
//! module leaves behind in its host process.

use nix::libc::{self, c_char, c_int, c_void};
use std::ffi::CString;

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

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
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
}

/// Answers prompts with the C string behind `appdata`; libpam frees what we allocate.
extern "C" fn conversation(
    n: c_int,
    msgs: *mut *const PamMessage,
    out: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if n <= 0 || msgs.is_null() || out.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: libpam passes n valid messages; we allocate n responses with calloc, as
    // libpam frees them with free(); appdata is the CString the caller keeps alive.
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

/// One whole PAM transaction in this process; returns pam_authenticate's code.
pub fn authenticate(service: &str, user: &str, answer: &str) -> c_int {
    let (Ok(service), Ok(user), Ok(answer)) = (
        CString::new(service),
        CString::new(user),
        CString::new(answer),
    ) else {
        return PAM_CONV_ERR;
    };
    let conv = PamConv {
        conv: conversation,
        appdata_ptr: answer.as_ptr() as *mut c_void,
    };
    let mut pamh: *mut c_void = std::ptr::null_mut();
    // SAFETY: all pointers outlive the transaction, which ends with pam_end here.
    unsafe {
        let rc = pam_start(service.as_ptr(), user.as_ptr(), &conv, &mut pamh);
        if rc != PAM_SUCCESS {
            return rc;
        }
        let rc = pam_authenticate(pamh, 0);
        pam_end(pamh, rc);
        rc
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
