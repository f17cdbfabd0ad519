//! A real PostgreSQL 15 server for the tests (Debian's postgresql-15), started from its
//! binaries in a temporary directory: no system service, no /etc/postgresql. Each
//! [`Postgres`] is one cluster with its own port, stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
//! system account (which owns the directory); as another user it runs as that user.
//! Over TCP the `twofold` role signs in with its password (SCRAM), as a daemon would;
//! the tests themselves use the `postgres` superuser over the Unix socket, trusted.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A daemon's `[store]` section for the database at `url`, its password in
/// `password_file`, and TLS against `ca_file` when given.
pub fn store_section(url: &str, password_file: &Path, ca_file: Option<&Path>) -> String {
    let ca = ca_file
        .map(|c| format!("ca_file = \"{}\"\n", c.display()))
        .unwrap_or_default();
    format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n{ca}",
        password_file.display()
    )
}

/// Where Debian's postgresql-15 puts the server and client programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The role and first database a daemon under test uses.
pub const ROLE: &str = "twofold";

/// The system account that runs the server when the tests run as root.
const SERVER_ACCOUNT: &str = "postgres";

/// pg_ctl's own limit for start and stop (`-t`), in seconds.
const PG_CTL_WAIT: &str = "30";

/// How long initdb or one psql may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The path of a PostgreSQL program; fails the test, naming the package, when missing.
pub fn program(name: &str) -> PathBuf {
    let p = Path::new(BIN).join(name);
    assert!(
        p.exists(),
        "{} is missing: the PostgreSQL tests need Debian's postgresql-15 \
         (apt-get install postgresql-15; scripts/packages.txt: tests)",
        p.display()
    );
    p
}

/// One PostgreSQL cluster in its own temporary directory: `data/` (the cluster), `log`,
/// the Unix socket, and with TLS `tls/` (a throwaway CA and the server's certificate).
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    tls: bool,
    /// The account the server runs as when it is not the test's own (tests as root).
    account: Option<&'static str>,
}

impl Postgres {
    /// A server on 127.0.0.1 without TLS, with the role and database `twofold`.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// Like [`Postgres::start`], but TCP takes TLS only (`hostssl`): the server's
    /// certificate, for `127.0.0.1` and `localhost`, is signed by [`Postgres::ca_file`].
    pub fn start_with_tls() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Postgres {
        let initdb = program("initdb");
        program("pg_ctl");
        program("psql");
        let dir = tempfile::Builder::new()
            .prefix("twofold-pg-")
            .tempdir()
            .expect("tempdir for PostgreSQL");
        // Any account may reach the socket and read the CA; data/ stays 0700.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the PostgreSQL directory");
        // Built before the server starts, so a failure below still stops and removes it.
        let pg = Postgres {
            dir,
            port: crate::free_port(),
            password: crate::random_hex(),
            tls,
            account: crate::is_root().then_some(SERVER_ACCOUNT),
        };
        if tls {
            let tls_dir = pg.path("tls");
            std::fs::create_dir(&tls_dir).expect("tls dir");
            let (_ca, _cert, key) = crate::smtp::certificates(&tls_dir);
            // The server refuses a key that others may read.
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the server key");
        }
        if let Some(account) = pg.account {
            let st = Command::new("chown")
                .args(["-R", &format!("{account}:")])
                .arg(pg.dir.path())
                .status()
                .expect("chown");
            assert!(
                st.success(),
                "chown -R {account} {}",
                pg.dir.path().display()
            );
        }
        let mut cmd = pg.as_server_account(&initdb);
        cmd.arg("-D").arg(pg.path("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        expect_success(run(cmd, "initdb"), "initdb");
        pg.configure();
        pg.start_again();
        let role = format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{}'", pg.password);
        pg.psql("postgres", &role);
        pg.create_database(ROLE);
        pg
    }

    /// Writes pg_hba.conf (the socket trusted, TCP by password) and the server's settings.
    fn configure(&self) {
        let host = if self.tls { "hostssl" } else { "host" };
        std::fs::write(
            self.path("data/pg_hba.conf"),
            format!("local all all trust\n{host} all all 127.0.0.1/32 scram-sha-256\n"),
        )
        .expect("pg_hba.conf");
        let dir = self.dir.path().display();
        let mut settings = format!(
            "\n# twofold tests\nport = {}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{dir}'\nshared_buffers = 16MB\n\
             # WAL still reaches the kernel, so only a machine crash could lose data.\n\
             fsync = off\n",
            self.port
        );
        if self.tls {
            settings.push_str(&format!(
                "ssl = on\nssl_cert_file = '{dir}/tls/cert.pem'\nssl_key_file = '{dir}/tls/key.pem'\n"
            ));
        }
        let conf = self.path("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        // Rewriting the file initdb made keeps its owner (the server's account).
        std::fs::write(&conf, text).expect("write postgresql.conf");
    }

    /// `postgresql://twofold@127.0.0.1:PORT/twofold`; the password is apart
    /// ([`Postgres::password`], [`Postgres::write_password_file`]).
    pub fn url(&self) -> String {
        self.url_of(ROLE)
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgresql://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// The `twofold` role's password (random hex, nothing to quote).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Writes the password, one line, to `path` with mode 0600 (for `password_file`).
    pub fn write_password_file(&self, path: &Path) {
        crate::write_secret_file(path, &self.password);
    }

    /// The CA certificate (PEM) that signed the server's certificate; TLS servers only.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls, "ca_file: this server was started without TLS");
        self.path("tls/ca.pem")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log (pg_ctl -l), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Another database owned by `twofold` (e.g. one per group of daemons); its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "create_database: {name:?}: use lower-case letters, digits and _"
        );
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {ROLE}"));
        self.url_of(name)
    }

    /// Runs `sql` in `database` as the `postgres` superuser over the Unix socket; its
    /// output unaligned and without headers (`-A -t`), trimmed. Fails the test, with
    /// psql's error, if any statement fails. Several statements in one `sql` run as one
    /// transaction (`psql -c`), so CREATE DATABASE goes alone.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.try_psql(database, sql);
        out.unwrap_or_else(|e| panic!("psql -d {database} -c {sql:?} failed:\n{e}"))
    }

    /// Like [`Postgres::psql`], but a failure (e.g. the server being down) is an `Err`
    /// with psql's message.
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut cmd = client();
        cmd.args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql]);
        result(run(cmd, "psql"))
    }

    /// Stops the server (`pg_ctl -m fast`: sessions are ended, data is kept), as when
    /// the database goes away under running daemons.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", PG_CTL_WAIT, "stop"])
            .unwrap_or_else(|e| panic!("pg_ctl stop failed:\n{e}\n{}", self.log()));
    }

    /// Starts the server (again, after [`Postgres::stop`]) on the same port with the same
    /// data; returns once it accepts connections.
    pub fn start_again(&self) {
        let log = self.path("log");
        let args = [
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            PG_CTL_WAIT,
            "start",
        ];
        self.pg_ctl(&args)
            .unwrap_or_else(|e| panic!("pg_ctl start failed:\n{e}\nserver log:\n{}", self.log()));
    }

    /// Freezes the server and every session of it (SIGSTOP): connections are accepted by
    /// the kernel but nothing answers, as when the database host hangs. [`Postgres::resume`]
    /// lets it go on.
    pub fn freeze(&self) {
        self.signal_all(nix::sys::signal::Signal::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal_all(nix::sys::signal::Signal::SIGCONT);
    }

    /// The postmaster (first line of `postmaster.pid`) and its children.
    fn signal_all(&self, signal: nix::sys::signal::Signal) {
        let pid_file =
            std::fs::read_to_string(self.path("data/postmaster.pid")).expect("postmaster.pid");
        let main: i32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("the postmaster's pid");
        let children = Command::new("pgrep")
            .arg("-P")
            .arg(main.to_string())
            .output()
            .expect("pgrep");
        let mut pids = vec![main];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok()),
        );
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }

    /// Whether the server is up (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).is_ok()
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.as_server_account(&program("pg_ctl"));
        cmd.arg("-D").arg(self.path("data")).args(args);
        result(run(cmd, "pg_ctl"))
    }

    /// `program` as the server's account: via runuser as root (PostgreSQL's programs
    /// refuse root), directly otherwise. It runs in the cluster's directory, which that
    /// account can enter (the test's own may not be).
    fn as_server_account(&self, program: &Path) -> Command {
        let mut cmd = match self.account {
            Some(account) => {
                let mut c = Command::new("runuser");
                c.args(["-u", account, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Never started (initdb failed): nothing to stop.
        if self.path("data/postmaster.pid").exists() {
            // A server a failed test left frozen (`freeze`) could not act on the stop.
            self.resume();
            let _ = self.pg_ctl(&["-m", "immediate", "-w", "-t", PG_CTL_WAIT, "stop"]);
        }
    }
}

/// psql connecting with a libpq `conninfo` (e.g. `host=127.0.0.1 port=P dbname=twofold
/// user=twofold sslmode=verify-full sslrootcert=CA`), as a client with `password` (in
/// PGPASSWORD of this child only) or none. Output as [`Postgres::psql`]; Err: psql's error.
pub fn connect(conninfo: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
    let mut cmd = client();
    cmd.args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
        .args(["-d", conninfo, "-c", sql]);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    result(run(cmd, "psql"))
}

/// psql with none of the test's own PG* variables (a PGHOST, PGSSLMODE or PGPASSWORD
/// there would change what is tested) and no ~/.pgpass (libpq skips a password file it
/// cannot find; /dev/null itself draws a warning).
fn client() -> Command {
    let mut cmd = Command::new(program("psql"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            cmd.env_remove(name);
        }
    }
    cmd.env("PGPASSFILE", "/dev/null/no-pgpass")
        .env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// Runs `cmd` to the end, failing the test if it takes longer than [`COMMAND_LIMIT`]
/// (the child is killed first).
fn run(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    // Read both pipes while waiting, so a chatty child cannot block on a full one.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn result(out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(crate::combined(&out))
    }
}

fn expect_success(out: Output, what: &str) {
    if let Err(e) = result(out) {
        panic!("{what} failed:\n{e}");
    }
}
