use super::*;
use std::os::unix::fs::PermissionsExt;

fn error_of(text: &str) -> String {
    Config::parse(text, "test.toml")
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn empty_file_needs_a_version_and_a_minimal_file_gives_defaults() {
    assert!(error_of("").contains("version"));
    assert_eq!(
        Config::parse("version = 1\n", "t").unwrap(),
        Config::default()
    );
}

#[test]
fn a_full_file_is_read() {
    let c = Config::parse(
        r#"
version = 1
[daemon]
bus = "unix:path=/tmp/bus"
database = "/tmp/x/db.sqlite"
admin_group = "wheel"
[totp]
issuer = "Example Corp"
algorithm = "SHA256"
digits = 8
step_seconds = 60
window = 2
[login]
max_tries = 1
unenrolled = "ignore"
[lockout]
max_failures = 10
base_seconds = 60
max_seconds = 600
"#,
        "t",
    )
    .unwrap();
    assert_eq!(c.totp.algorithm, Algorithm::SHA256);
    assert_eq!(c.totp.digits.get(), 8);
    assert_eq!(c.login.unenrolled, Unenrolled::Ignore);
    assert_eq!(c.daemon.admin_group, Some(Name("wheel".into())));
    assert_eq!(c.lockout.max_seconds.get(), 600);
}

#[test]
fn unknown_key_is_refused_with_line_and_key() {
    let e = error_of("version = 1\n[totp]\ndigits = 6\nwindw = 2\n");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("windw"), "{e}");
    assert!(e.starts_with("test.toml:"), "{e}");
}

#[test]
fn unknown_section_is_refused() {
    let e = error_of("version = 1\n[totpp]\n");
    assert!(e.contains("line 2") && e.contains("totpp"), "{e}");
}

#[test]
fn out_of_range_value_names_line_and_range() {
    let e = error_of("version = 1\n\n[totp]\ndigits = 9\n");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("between 6 and 8"), "{e}");
    assert!(e.contains("digits"), "{e}");
}

#[test]
fn wrong_types_and_values_are_refused() {
    assert!(error_of("version = 1\n[totp]\nalgorithm = \"MD5\"\n").contains("line 3"));
    assert!(error_of("version = 1\n[login]\nunenrolled = \"allow\"\n").contains("unenrolled"));
    assert!(
        error_of("version = 1\n[daemon]\ndatabase = \"relative.db\"\n").contains("absolute path")
    );
    assert!(error_of("version = 1\n[daemon]\nbus = \"tcp:host=x\"\n").contains("unix:"));
    assert!(error_of("version = 1\n[totp]\nissuer = \"a:b\"\n").contains("issuer"));
    assert!(error_of("version = 1\n[totp]\nwindow = -1\n").contains("between 0 and 10"));
    assert!(error_of("version = 2\n").contains("unsupported version 2"));
    assert!(
        error_of("version = 1\n[lockout]\nbase_seconds = 600\nmax_seconds = 60\n")
            .contains("max_seconds")
    );
    assert!(error_of("version = 1\n[totp\n").contains("line 2"));
}

#[test]
fn missing_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Config::load(&dir.path().join("absent.toml")).unwrap(),
        Config::default()
    );
}

#[test]
fn world_writable_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twofold.toml");
    std::fs::write(&path, "version = 1\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("writable by its group or others"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::load(&path).is_ok());
}

#[test]
fn service_policies_layer_builtins_other_and_service() {
    let c = Config::parse(
        "version = 1\n[policy.other]\nsession_hours = 8\n[policy.sshd]\nremember_days = 30\n[policy.sudo]\nidle_minutes = 5\n",
        "t",
    )
    .unwrap();
    let sshd = c.service_policy("sshd");
    assert_eq!(
        (sshd.session_seconds, sshd.idle_seconds),
        (8 * 3600, 30 * 60)
    );
    assert!(sshd.remember_device && !sshd.trust_address);
    assert_eq!(sshd.remember_seconds, 30 * 86400);
    // sudo keeps its own short, non-remembering defaults over [policy.other].
    let sudo = c.service_policy("sudo");
    assert_eq!(
        (
            sudo.session_seconds,
            sudo.idle_seconds,
            sudo.remember_device
        ),
        (3600, 300, false)
    );
    let login = Config::default().service_policy("login");
    assert_eq!(
        (login.session_seconds, login.remember_seconds),
        (12 * 3600, 90 * 86400)
    );
}

#[test]
fn strict_profile_turns_off_remembering_and_refuses_what_breaks_its_limits() {
    let c = Config::parse("version = 1\nprofile = \"strict\"\n", "t").unwrap();
    let p = c.service_policy("sshd");
    assert!(!p.remember_device);
    assert!(p.session_seconds <= 24 * 3600 && p.idle_seconds <= 3600 && p.idle_seconds > 0);
    let e = error_of("version = 1\nprofile = \"strict\"\n[policy.sshd]\nremember_device = true\n");
    assert!(e.contains("[policy.sshd] remember_device"), "{e}");
    let e = error_of("version = 1\nprofile = \"strict\"\n[policy.other]\nsession_hours = 48\n");
    assert!(e.contains("session_hours"), "{e}");
    assert!(error_of("version = 1\nprofile = \"lax\"\n").contains("line 2"));
}

#[test]
fn scope_and_enrolment_are_read_and_checked() {
    let c = Config::parse(
        "version = 1\n[scope]\ngroups = [\"staff\"]\nexempt_users = [\"svc\"]\n[enrolment]\ndeadline = \"2027-01-31\"\nmax_deferral_days = 30\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.scope.groups, vec![Name("staff".into())]);
    assert_eq!(c.enrolment.deadline, Some(Instant(1_801_353_600)));
    let e = error_of("version = 1\n[enrolment]\ndeadline = \"next week\"\n");
    assert!(e.contains("line 3") && e.contains("2027-01-31"), "{e}");
    assert!(error_of("version = 1\n[policy.sshd]\nsession_hour = 1\n").contains("session_hour"));
}

#[test]
fn every_privilege_escalation_service_gets_the_strict_built_in_policy() {
    // Issue 7 item 3: polkit-1, doas, run0 and pkexec fell back to 12 h / 30 min.
    let c = Config::default();
    let sudo = c.service_policy("sudo");
    for service in ["sudo-i", "su", "su-l", "polkit-1", "pkexec", "doas", "run0"] {
        assert_eq!(c.service_policy(service), sudo, "{service}");
    }
    assert_eq!(sudo.session_seconds, 3600);
    assert!(!sudo.remember_device);
}

#[test]
fn services_fall_into_classes_and_unknown_ones_stand_alone() {
    use crate::ServiceClass::*;
    for (service, class) in [
        ("sshd", Login),
        ("sshd-test", Login),
        ("login", Login),
        ("gdm-password", Login),
        ("sudo", Escalation),
        ("pkexec", Escalation),
        ("polkit-1", Escalation),
        ("xscreensaver", Unlock),
        ("swaylock", Unlock),
        ("i3lock", Unlock),
    ] {
        assert_eq!(crate::service_class(service), class, "{service}");
    }
    assert_eq!(
        crate::service_class("my-app"),
        Own("my-app".into()),
        "an unknown service shares windows with no other"
    );
}

/// A directory and file that pass every check, for the tests below to spoil one way each.
fn safe_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("twofold.toml");
    std::fs::write(&path, "version = 1\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(Config::load(&path).is_ok());
    (dir, path)
}

#[test]
fn a_symlinked_config_file_is_refused() {
    // Issue 7 item 7: the check followed symlinks.
    let (dir, path) = safe_config();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let e = Config::load(&link).unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
}

#[test]
fn a_group_writable_file_or_directory_is_refused_whatever_the_group() {
    // Issue 7 item 7: group write was allowed for gid 0; the directory was never checked.
    let (dir, path) = safe_config();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("writable by its group or others"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("directory") && e.contains("writable"), "{e}");
    // Even with no file in it: whoever can write there can create one.
    let e = Config::load(&dir.path().join("absent.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("directory"), "{e}");
}

#[test]
fn ssh_services_name_which_services_are_sshd() {
    let default = Config::default();
    assert!(default.service_policy("sshd").ssh);
    assert!(default.service_policy("sshd-test").ssh);
    assert!(!default.service_policy("sshdx").ssh && !default.service_policy("login").ssh);
    let c = Config::parse(
        "version = 1\n[login]\nssh_services = [\"sshd\", \"bastion-*\"]\n",
        "t",
    )
    .unwrap();
    assert!(c.service_policy("bastion-eu").ssh && c.service_policy("sshd").ssh);
    assert!(
        !c.service_policy("sshd-test").ssh,
        "the list replaces the default"
    );
    for bad in ["\"*\"", "\"ss*hd\"", "\"sshd/x\"", "\"\""] {
        let e = error_of(&format!("version = 1\n[login]\nssh_services = [{bad}]\n"));
        assert!(
            e.contains("line 3") && e.contains("PAM service name"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn an_smtp_section_is_read_with_its_defaults() {
    let c = Config::parse(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"twofold <twofold@example.org>\"\nusername = \"tf\"\npassword_file = \"/run/credentials/twofoldd.service/smtp\"\n",
        "t",
    )
    .unwrap();
    let smtp = c.smtp.unwrap();
    assert_eq!(smtp.security, SmtpSecurity::Starttls);
    assert_eq!(smtp.port(), 587);
    assert_eq!(smtp.timeout_seconds.get(), 10);
    assert_eq!(Config::parse("version = 1\n", "t").unwrap().smtp, None);
    let tls = Config::parse(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nsecurity = \"tls\"\nfrom = \"a@b\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(tls.smtp.unwrap().port(), 465);
}

#[test]
fn a_bad_smtp_section_names_the_line_and_key_or_the_rule() {
    let e =
        error_of("version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"not an address\"\n");
    assert!(e.contains("line 4") && e.contains("from"), "{e}");
    let e = error_of("version = 1\n[smtp]\nhost = \"mail example\"\nfrom = \"a@b\"\n");
    assert!(e.contains("line 3") && e.contains("host"), "{e}");
    let e = error_of(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"a@b\"\nsecurity = \"sometimes\"\n",
    );
    assert!(e.contains("line 5") && e.contains("security"), "{e}");
    let e = error_of(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"a@b\"\npassword = \"x\"\n",
    );
    assert!(
        e.contains("password"),
        "the password never goes in the file: {e}"
    );
    let e = error_of(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"a@b\"\nusername = \"u\"\n",
    );
    assert!(e.contains("username and password_file go together"), "{e}");
    let e = error_of(
        "version = 1\n[smtp]\nhost = \"mail.example.org\"\nfrom = \"a@b\"\nsecurity = \"none\"\n",
    );
    assert!(e.contains("this machine only"), "{e}");
    assert!(
        Config::parse(
            "version = 1\n[smtp]\nhost = \"localhost\"\nfrom = \"a@b\"\nsecurity = \"none\"\nport = 2525\n",
            "t"
        )
        .is_ok()
    );
    for bad in ["a@b\nBcc: x@y", "@b", "a@", "a@b@c"] {
        assert!(MailAddress::try_from(bad.to_string()).is_err(), "{bad:?}");
    }
}

#[test]
fn email_codes_are_off_unless_set_need_smtp_and_are_refused_in_the_strict_profile() {
    const SMTP: &str = "[smtp]\nhost = \"localhost\"\nsecurity = \"none\"\nfrom = \"a@b\"\n";
    const ON: &str = "[email_codes]\nenabled = true\n";
    let c = Config::parse(&format!("version = 1\n{ON}"), "t").unwrap();
    assert!(!c.email_codes_on(), "no [smtp], no e-mailed codes");
    let c = Config::parse(&format!("version = 1\n{SMTP}"), "t").unwrap();
    assert!(
        !c.email_codes_on(),
        "[smtp] alone (notices) turns no codes on"
    );
    let c = Config::parse(&format!("version = 1\n{SMTP}{ON}"), "t").unwrap();
    assert!(c.email_codes_on());
    assert!(
        !c.email_codes.app_users,
        "app users are not offered e-mail by default"
    );
    assert_eq!(
        (
            c.email_codes.valid_minutes.get(),
            c.email_codes.per_hour.get()
        ),
        (10, 5)
    );
    let e = error_of(&format!("version = 1\nprofile = \"strict\"\n{SMTP}{ON}"));
    assert!(e.contains("not allowed") && e.contains("strict"), "{e}");
    let e = error_of("version = 1\n[email_codes]\nsubject = \"Code {code}\"\n");
    assert!(e.contains("line 3") && e.contains("subject"), "{e}");
}

#[test]
fn the_message_text_is_read_from_beside_the_file_and_a_bad_one_names_file_and_line() {
    let (dir, path) = safe_config();
    let text = dir.path().join(crate::TEXT_FILE);
    std::fs::write(&text, "Code for {user}: {code}\n").unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.email_codes.text.0, "Code for {user}: {code}\n");
    std::fs::write(&text, "Hello {user}\nCode {kode}\n").unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("email-code.txt") && e.contains("line 2") && e.contains("{kode}"),
        "{e}"
    );
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("email-code.txt") && e.contains("refused"), "{e}");
}

/// The conffile the package ships: the example in docs/configuration.md with every line
/// but `version = 1` commented out, under a short header.
fn conffile_from_docs() -> String {
    let doc = include_str!("../../docs/configuration.md");
    let start = doc.find("```toml\n").expect("the example") + "```toml\n".len();
    let end = start + doc[start..].find("```\n").expect("its end");
    let mut out = String::from(
        "# /etc/twofold/twofold.toml: twofoldd's configuration. Every key is shown with its\n\
         # default, commented out; a missing file means the same. See twofold.toml(5) and\n\
         # /usr/share/doc/twofold/configuration.md.gz. After a change: twofoldd --check-config\n\n",
    );
    for line in doc[start..end].lines() {
        if line.is_empty() || line.starts_with("version = 1") || line.trim_start().starts_with('#')
        {
            out.push_str(line);
        } else {
            out.push_str("# ");
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn the_shipped_conffile_is_the_documented_example_commented_out_and_means_the_defaults() {
    let shipped = include_str!("../twofold.toml");
    assert!(
        shipped == conffile_from_docs(),
        "config/twofold.toml is out of step with docs/configuration.md; it should read:\n{}",
        conffile_from_docs()
    );
    assert_eq!(
        Config::parse(shipped, "shipped").unwrap(),
        Config::default()
    );
}

#[test]
fn a_postgres_store_and_a_fleet_are_read_with_their_defaults() {
    let c = Config::parse(
        "version = 1\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://twofold@db.example.org/twofold\"\npassword_file = \"/run/credentials/twofoldd.service/db\"\n[fleet]\ngroup = \"web\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.store.backend, Backend::Postgres);
    assert_eq!(c.store.pool_size.get(), 4);
    assert_eq!(c.store.statement_timeout_ms.get(), 2000);
    assert_eq!(c.fleet.group.unwrap().0, "web");
    assert_eq!(c.fleet.host, None);
    let d = Config::parse("version = 1\n", "t").unwrap();
    assert_eq!(d.store.backend, Backend::Sqlite);
}

#[test]
fn a_bad_store_section_names_the_line_and_key_or_the_rule() {
    let e = error_of(
        "version = 1\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://tf:secret@db/twofold\"\n",
    );
    assert!(
        e.contains("[store] url") && e.contains("password_file"),
        "{e}"
    );
    assert!(!e.contains("secret"), "the password is not repeated: {e}");
    let e = error_of(
        "version = 1\n[store]\nbackend = \"postgres\"\nurl = \"postgresql://db/twofold?password=x\"\n",
    );
    assert!(e.contains("password_file"), "{e}");
    let e =
        error_of("version = 1\n[store]\nbackend = \"postgres\"\nurl = \"mysql://db/twofold\"\n");
    assert!(e.contains("line 4") && e.contains("url"), "{e}");
    let e = error_of("version = 1\n[store]\nbackend = \"postgres\"\n");
    assert!(e.contains("needs url"), "{e}");
    let e = error_of("version = 1\n[store]\nurl = \"postgresql://db/twofold\"\n");
    assert!(
        e.contains("backend = \\\"postgres\\\"") || e.contains("backend = \"postgres\""),
        "{e}"
    );
    let e = error_of("version = 1\n[store]\nbackend = \"oracle\"\n");
    assert!(e.contains("line 3") && e.contains("backend"), "{e}");
    let e = error_of("version = 1\n[store]\npool_size = 0\n");
    assert!(e.contains("line 3") && e.contains("pool_size"), "{e}");
    let e = error_of("version = 1\n[fleet]\ngroup = \"a:b\"\n");
    assert!(e.contains("line 3") && e.contains("group"), "{e}");
}

#[test]
fn the_sms_text_is_read_from_beside_the_file_and_one_that_would_not_fit_is_refused() {
    let (dir, path) = safe_config();
    assert_eq!(
        Config::load(&path).unwrap().sms.text.0,
        crate::DEFAULT_SMS_TEXT
    );
    let text = dir.path().join(crate::SMS_TEXT_FILE);
    std::fs::write(
        &text,
        "{code}: Anmeldung an {host}, {minutes} Min. gültig\n",
    )
    .unwrap();
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.sms.text.0,
        "{code}: Anmeldung an {host}, {minutes} Min. gültig"
    );
    std::fs::write(&text, format!("{{code}} {}", "x".repeat(200))).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("sms-code.txt") && e.contains("one SMS holds 160"),
        "{e}"
    );
    std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("sms-code.txt") && e.contains("refused"), "{e}");
}

#[test]
fn local_user_is_an_account_name_for_a_plain_http_gateway_only() {
    let kannel = |url: &str, extra: &str| {
        format!(
            "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.kannel]\nurl = \"{url}\"\nusername = \"t\"\npassword_file = \"/p\"\n{extra}"
        )
    };
    let local = "http://127.0.0.1:13013/cgi-bin/sendsms";
    let c = Config::parse(&kannel(local, "local_user = \"kannel\"\n"), "t").unwrap();
    assert_eq!(c.sms.kannel.unwrap().local_user.as_deref(), Some("kannel"));
    for bad in ["", "-x", "a b", "root;id", &"a".repeat(33)] {
        let e = error_of(&kannel(local, &format!("local_user = \"{bad}\"\n")));
        assert!(
            e.contains("local_user") && e.contains("an account name"),
            "{e}"
        );
    }
    let e = error_of(&kannel(
        "https://sms.example.org/cgi-bin/sendsms",
        "local_user = \"kannel\"\n",
    ));
    assert!(e.contains("known by its certificate"), "{e}");
    assert_eq!(
        crate::HttpUrl::try_from(local.to_owned()).unwrap().port(),
        13013
    );
    assert_eq!(
        crate::HttpUrl::try_from("http://localhost/send".to_owned())
            .unwrap()
            .port(),
        80
    );
    assert_eq!(
        crate::HttpUrl::try_from("http://[::1]:8080/send".to_owned())
            .unwrap()
            .port(),
        8080
    );
}
