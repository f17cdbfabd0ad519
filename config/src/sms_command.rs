//! `[sms.command]`: a program on this machine hands each text on (`gammu-smsd-inject`,
//! a script writing smstools spool files, a site script). twofoldd runs it without a
//! shell as `program args… number`, the text on its standard input (never in its
//! arguments: those are readable by every local user in /proc), as `user`, within
//! `timeout_seconds`. The program itself is checked when twofoldd starts (daemon side):
//! whoever can change it reads every code.

use crate::{AbsolutePath, Bounded};
use serde::Deserialize;

/// At most this many extra arguments, each at most `ARG_MAX_LEN` bytes.
const ARGS_MAX: usize = 16;
const ARG_MAX_LEN: usize = 256;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandGatewayConfig {
    /// The program, e.g. `/usr/bin/gammu-smsd-inject`: a regular executable file owned
    /// by root (or twofoldd's account), writable by no one else, in directories the same.
    pub program: AbsolutePath,
    /// Arguments before the number, e.g. `["-c", "/etc/gammu-smsdrc", "TEXT"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The account the program runs as: one of its own (never root, nor `nobody`, which
    /// other services share: any of them could read a code from the program's input);
    /// twofoldd not running as root runs it as its own account.
    pub user: String,
    /// How long the program may take; then it is killed and the gateway is unavailable.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: Bounded<1, 60>,
}

fn default_timeout() -> Bounded<1, 60> {
    Bounded(10)
}

impl CommandGatewayConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        let user_ok = !self.user.is_empty()
            && self.user.len() <= 32
            && !self.user.starts_with('-')
            && self
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !user_ok {
            return Err(format!(
                "[sms.command] user {:?}: expected an account name (letters, digits, '.', '_', '-', at most 32)",
                self.user
            ));
        }
        if self.user == "root" {
            return Err(
                "[sms.command] user = \"root\" is refused: the program runs as an unprivileged account of its own".into(),
            );
        }
        if self.user == "nobody" {
            return Err(
                "[sms.command] user = \"nobody\" is refused: other services run as nobody, and any of them could read the codes the program is given; create an account of its own (adduser --system twofold-sms)".into(),
            );
        }
        if self.args.len() > ARGS_MAX {
            return Err(format!("[sms.command] args: at most {ARGS_MAX} arguments"));
        }
        if let Some(bad) = self
            .args
            .iter()
            .find(|a| a.len() > ARG_MAX_LEN || a.chars().any(|c| c.is_control()))
        {
            return Err(format!(
                "[sms.command] args: {bad:?}: at most {ARG_MAX_LEN} bytes, no control characters"
            ));
        }
        if self
            .program
            .0
            .to_str()
            .is_none_or(|p| p.ends_with('/') || p.chars().any(|c| c.is_control()))
        {
            return Err(format!(
                "[sms.command] program {:?}: expected the path of a program",
                self.program.0.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn with_command(section: &str) -> Result<Config, String> {
        Config::parse(
            &format!(
                "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.command]\n{section}"
            ),
            "t",
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_command_section_is_read_with_its_defaults() {
        let e = with_command("program = \"/usr/bin/gammu-smsd-inject\"\n").unwrap_err();
        assert!(e.contains("missing field `user`"), "{e}");
        let c = with_command("program = \"/usr/bin/gammu-smsd-inject\"\nuser = \"twofold-sms\"\n")
            .unwrap();
        let command = c.sms.command.clone().unwrap();
        assert_eq!(
            command.program.0,
            std::path::PathBuf::from("/usr/bin/gammu-smsd-inject")
        );
        assert!(command.args.is_empty());
        assert_eq!(command.user, "twofold-sms");
        assert_eq!(command.timeout_seconds.get(), 10);
        assert!(c.sms_on());
        let c = with_command(
            "program = \"/usr/bin/gammu-smsd-inject\"\nargs = [\"-c\", \"/etc/gammu-smsdrc\", \"TEXT\"]\nuser = \"gammu\"\ntimeout_seconds = 60\n",
        )
        .unwrap();
        let command = c.sms.command.unwrap();
        assert_eq!(command.args, ["-c", "/etc/gammu-smsdrc", "TEXT"]);
        assert_eq!(command.user, "gammu");
        assert_eq!(command.timeout_seconds.get(), 60);
    }

    #[test]
    fn the_documented_command_gateway_is_read() {
        let doc = include_str!("../../docs/configuration.md");
        // The keys of the big example, commented out there, up to the next section.
        let start = doc.find("# [sms.command]").unwrap();
        let keys: String = doc[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("# ") && !l.starts_with("# ["))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let command = with_command(&keys).unwrap().sms.command.unwrap();
        assert_eq!(
            (command.user.as_str(), command.timeout_seconds.get()),
            ("twofold-sms", 10),
            "the example and the default shown"
        );
        assert!(command.args.is_empty(), "the default shown");
        // The Gammu example.
        let start = doc.find("```toml\n[sms.command]\n").unwrap() + "```toml\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let section = doc[start..end].replacen("[sms.command]\n", "", 1);
        let command = with_command(&section).unwrap().sms.command.unwrap();
        assert_eq!(command.args, ["-c", "/etc/gammu-smsdrc", "TEXT"]);
        assert_eq!(command.user, "gammu");
    }

    #[test]
    fn root_a_bad_program_path_bad_arguments_and_a_second_gateway_are_refused() {
        let e = with_command("program = \"/usr/bin/true\"\nuser = \"root\"\n").unwrap_err();
        assert!(e.contains("user = \"root\" is refused"), "{e}");
        let e = with_command("program = \"/usr/bin/true\"\nuser = \"nobody\"\n").unwrap_err();
        assert!(e.contains("user = \"nobody\" is refused"), "{e}");
        for user in ["", "-x", "a b", "x:y", &"a".repeat(33)] {
            let e = with_command(&format!("program = \"/usr/bin/true\"\nuser = \"{user}\"\n"))
                .unwrap_err();
            assert!(e.contains("[sms.command] user"), "{user}: {e}");
        }
        for program in ["usr/bin/true", "true", "", "/usr/bin/"] {
            let e = with_command(&format!("program = \"{program}\"\nuser = \"u\"\n")).unwrap_err();
            assert!(
                e.contains("expected an absolute path") || e.contains("the path of a program"),
                "{program}: {e}"
            );
        }
        let e = with_command("user = \"twofold-sms\"\n").unwrap_err();
        assert!(e.contains("program"), "{e}");
        let e = with_command("program = \"/usr/bin/true\"\nuser = \"u\"\ntimeout_seconds = 61\n")
            .unwrap_err();
        assert!(e.contains("between 1 and 60"), "{e}");
        let e = with_command("program = \"/usr/bin/true\"\nuser = \"u\"\nargs = [\"a\\nb\"]\n")
            .unwrap_err();
        assert!(e.contains("no control characters"), "{e}");
        let many = vec!["\"x\""; 17].join(", ");
        let e = with_command(&format!(
            "program = \"/usr/bin/true\"\nuser = \"u\"\nargs = [{many}]\n"
        ))
        .unwrap_err();
        assert!(e.contains("at most 16"), "{e}");
        let e =
            with_command("program = \"/usr/bin/true\"\nuser = \"u\"\nshell = true\n").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        // Two gateways: the generic rule.
        let e = Config::parse(
            "version = 1\n[sms]\nenabled = true\nallowed_prefixes = [\"+49\"]\n[sms.command]\nprogram = \"/usr/bin/true\"\nuser = \"u\"\n[sms.kannel]\nurl = \"http://127.0.0.1:13013/cgi-bin/sendsms\"\nusername = \"u\"\npassword_file = \"/p\"\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than one gateway section"), "{e}");
    }
}
