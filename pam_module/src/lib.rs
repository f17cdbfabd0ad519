//! pam_twofold.so: gathers the login context, relays the daemon's conversation to the
//! PAM application and maps the daemon's verdict to a PAM code. It decides nothing.
//!
//! Stack it after the first factor, as `required`:
//! `auth required pam_twofold.so [socket=PATH | bus=ADDRESS] [timeout=SECONDS] [failmode=secure|safe] [daemon_user=NAME] [debug]`
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented
)]

pub mod client;
pub mod context;
pub mod log;
pub mod options;
pub mod transport;
pub mod verdict;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;

struct PamTwofold;

// Each hook runs inside catch_unwind (pam-bindings): a panic returns PAM_ABORT and the
// host process lives on. Unused hooks return PAM_IGNORE.
pam::pam_hooks!(PamTwofold);

impl PamHooks for PamTwofold {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        client::authenticate(pamh, &args, flags)
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }
}
