//! What the module reads from libpam: the user, the PAM items and SSH_AUTH_INFO_0.

use pam::items::{RHost, RUser, Service, Tty};
use pam::module::PamHandle;
use std::ffi::{CStr, c_char};
use twofold_protocol::LoginContext;

unsafe extern "C" {
    // Not wrapped by pam-bindings; PamHandle is the opaque pam_handle_t.
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
}

fn item<'a, T: pam::items::Item<'a> + std::ops::Deref<Target = &'a CStr>>(
    pamh: &'a PamHandle,
) -> String {
    match pamh.get_item::<T>() {
        Ok(Some(v)) => v.to_string_lossy().into_owned(),
        _ => String::new(),
    }
}

/// `SSH_AUTH_INFO_0`, set by sshd in the PAM environment during keyboard-interactive
/// after another method (publickey) passed.
fn ssh_auth_info(pamh: &mut PamHandle) -> String {
    // SAFETY: pamh is the live handle libpam gave us; the name is a NUL-terminated
    // literal; the returned pointer is NULL or a NUL-terminated string owned by libpam
    // that stays valid until the environment changes, and we copy it at once.
    unsafe {
        let p = pam_getenv(pamh as *mut PamHandle, c"SSH_AUTH_INFO_0".as_ptr());
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

pub fn gather(
    pamh: &mut PamHandle,
    offer_enrolment: bool,
) -> Result<LoginContext, pam::constants::PamResultCode> {
    let user = pamh.get_user(None)?;
    let ssh_auth_info = ssh_auth_info(pamh);
    Ok(LoginContext {
        user,
        service: item::<Service>(pamh),
        rhost: item::<RHost>(pamh),
        tty: item::<Tty>(pamh),
        ruser: item::<RUser>(pamh),
        ssh_auth_info,
        offer_enrolment,
    })
}
