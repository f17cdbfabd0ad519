//! How the daemon's answer (or its absence) becomes a PAM code. Only the daemon's
//! explicit success gives PAM_SUCCESS, and only its explicit "out of scope" gives
//! PAM_IGNORE; everything else fails, except an unreachable daemon under `failmode=safe`.

use crate::options::FailMode;
use pam::constants::PamResultCode;
use twofold_protocol::Action;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A definite absence — no bus socket, nobody listening, or no owner of the name
    /// after activation had its chance: the only case `failmode=safe` lets through.
    Unreachable(String),
    /// The bus or daemon did not answer for a reason a local user can cause (a dropped
    /// or timed-out connection, an I/O error): fails closed whatever the failmode.
    Disturbed(String),
    /// The name's owner is not the daemon's account: someone else answers.
    Impostor(String),
    /// The daemon refused the caller (a user asking for another user).
    PermissionDenied(String),
    /// Anything else that went wrong talking to the daemon.
    Protocol(String),
    /// The PAM application's conversation failed or gave no answer.
    Conversation,
    /// The module could not run at all (bad options, no runtime).
    Local(String),
}

pub fn to_pam(result: &Result<Action, Failure>, failmode: FailMode) -> PamResultCode {
    match result {
        Ok(Action::Success) => PamResultCode::PAM_SUCCESS,
        Ok(Action::Denied) => PamResultCode::PAM_AUTH_ERR,
        Ok(Action::MaxTries) => PamResultCode::PAM_MAXTRIES,
        Ok(Action::OutOfScope) => PamResultCode::PAM_IGNORE,
        Ok(Action::Error) => PamResultCode::PAM_SYSTEM_ERR,
        Ok(Action::PromptSecret | Action::PromptVisible) => PamResultCode::PAM_SYSTEM_ERR,
        Err(Failure::Unreachable(_)) if failmode == FailMode::Safe => PamResultCode::PAM_SUCCESS,
        Err(Failure::Unreachable(_) | Failure::Disturbed(_)) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Err(Failure::Impostor(_)) => PamResultCode::PAM_SYSTEM_ERR,
        Err(Failure::PermissionDenied(_)) => PamResultCode::PAM_PERM_DENIED,
        Err(Failure::Protocol(_)) => PamResultCode::PAM_SYSTEM_ERR,
        Err(Failure::Conversation) => PamResultCode::PAM_CONV_ERR,
        Err(Failure::Local(_)) => PamResultCode::PAM_SERVICE_ERR,
    }
}

/// Whether the daemon gave no verdict at all (as opposed to refusing the login or the
/// user's conversation failing): the person is then told the service is unavailable.
pub fn no_verdict(result: &Result<Action, Failure>) -> bool {
    matches!(
        result,
        Err(Failure::Unreachable(_)
            | Failure::Disturbed(_)
            | Failure::Impostor(_)
            | Failure::Protocol(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use PamResultCode::*;

    #[test]
    fn only_explicit_success_passes_and_safe_mode_covers_only_an_unreachable_daemon() {
        let cases: Vec<(Result<Action, Failure>, PamResultCode, PamResultCode)> = vec![
            (Ok(Action::Success), PAM_SUCCESS, PAM_SUCCESS),
            (Ok(Action::Denied), PAM_AUTH_ERR, PAM_AUTH_ERR),
            (Ok(Action::MaxTries), PAM_MAXTRIES, PAM_MAXTRIES),
            (Ok(Action::OutOfScope), PAM_IGNORE, PAM_IGNORE),
            (Ok(Action::Error), PAM_SYSTEM_ERR, PAM_SYSTEM_ERR),
            (Ok(Action::PromptSecret), PAM_SYSTEM_ERR, PAM_SYSTEM_ERR),
            (
                Err(Failure::Unreachable("x".into())),
                PAM_AUTHINFO_UNAVAIL,
                PAM_SUCCESS,
            ),
            (
                Err(Failure::Disturbed("x".into())),
                PAM_AUTHINFO_UNAVAIL,
                PAM_AUTHINFO_UNAVAIL,
            ),
            (
                Err(Failure::Impostor("x".into())),
                PAM_SYSTEM_ERR,
                PAM_SYSTEM_ERR,
            ),
            (
                Err(Failure::PermissionDenied("x".into())),
                PAM_PERM_DENIED,
                PAM_PERM_DENIED,
            ),
            (
                Err(Failure::Protocol("x".into())),
                PAM_SYSTEM_ERR,
                PAM_SYSTEM_ERR,
            ),
            (Err(Failure::Conversation), PAM_CONV_ERR, PAM_CONV_ERR),
            (
                Err(Failure::Local("x".into())),
                PAM_SERVICE_ERR,
                PAM_SERVICE_ERR,
            ),
        ];
        for (result, secure, safe) in cases {
            assert_eq!(
                to_pam(&result, FailMode::Secure),
                secure,
                "{result:?} secure"
            );
            assert_eq!(to_pam(&result, FailMode::Safe), safe, "{result:?} safe");
        }
    }
}
