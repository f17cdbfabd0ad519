//! The parts an end-to-end test stands up: a private system-type `dbus-daemon`, a real
//! `twofoldd` with a test configuration, `pamtester` under pam_wrapper loading the real
//! `pam_twofold.so`, and `twofoldctl`. Everything lives in one temporary directory and is
//! stopped when the test's [`World`] is dropped. Binaries come from the workspace's
//! target directory: run `cargo build --workspace` first (tests/run.sh does).

pub mod https;
pub mod kannel;
pub mod postgres;
pub mod sms;
pub mod smtp;
pub mod system;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twofold_daemon::otp::{OtpParams, code_at};

/// Unprivileged accounts the tests create when run as root.
pub const USER_A: &str = "tf-alice";
pub const USER_B: &str = "tf-bob";

/// The workspace's target directory (…/target/debug), found from this test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        p.display()
    );
    p
}

pub fn module_path() -> PathBuf {
    binary("libpam_twofold.so")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The name of the account the tests run as: `root` in CI. As another user, the tests
/// log in and enrol as this account, and its primary group administers twofold.
pub fn me() -> &'static str {
    static ME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ME.get_or_init(|| {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .expect("the test account has a name")
    })
}

/// `admin_group = ...` for the test configuration when not root, so the test account
/// may call the admin methods (root always may).
fn admin_line() -> String {
    if is_root() {
        return String::new();
    }
    let group = nix::unistd::Group::from_gid(nix::unistd::getegid())
        .ok()
        .flatten()
        .map(|g| g.name)
        .expect("the test account's group has a name");
    format!("admin_group = \"{group}\"\n")
}

static USERS: Mutex<bool> = Mutex::new(false);

/// Fails the calling test unless it runs as root. Root-only tests are also marked
/// `#[cfg_attr(not(as_root), ignore = ...)]` (tests/build.rs), so a run as another user
/// reports them as ignored; this catches a build made as root and run as someone else.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}); run as root, or as another user through tests/run.sh, \
         which reports it as ignored"
    );
}

/// pam_wrapper copies the service files into /tmp/pam.X (one of 62 names) and leaves it
/// there when its process ends without exit handlers (a child of `login` or `su` that
/// calls `_exit`). A later pam_wrapper reclaims such a directory when its pid is dead;
/// as another user it cannot write into root's, and fails with "Failed to copy config
/// files". So, before PAM runs as another user, root removes the directories whose
/// process is gone and which nobody touched for two seconds (none being reclaimed).
fn clear_stale_pam_wrapper_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_pwrap = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 5 && n.starts_with("pam."));
        let pid_file = path.join("pid");
        let (Ok(pid), Ok(meta)) = (
            std::fs::read_to_string(&pid_file),
            std::fs::metadata(&pid_file),
        ) else {
            continue;
        };
        let dead = pid
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        let quiet = meta
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(2));
        if is_pwrap && dead && quiet {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Creates the test accounts once (root only; fails the test otherwise). Returns true.
pub fn ensure_test_users() -> bool {
    require_root("it creates the test users");
    let mut done = USERS.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        for u in [USER_A, USER_B] {
            if nix::unistd::User::from_name(u).ok().flatten().is_none() {
                let st = Command::new("useradd")
                    .args(["-M", "-s", "/usr/sbin/nologin", u])
                    .status()
                    .expect("useradd");
                assert!(st.success(), "useradd {u} failed");
            }
        }
        *done = true;
    }
    true
}

/// A second account name for [`USER_A`]'s uid, as `toor` is for root on some systems.
pub const USER_A_ALIAS: &str = "tf-alias";

/// [`USER_A_ALIAS`] while it exists; removed again when dropped (also when a test fails).
pub struct Alias;

/// Creates [`USER_A_ALIAS`] with `useradd -o` (root only). None when not root.
pub fn alias_of_user_a() -> Option<Alias> {
    if !ensure_test_users() {
        return None;
    }
    let a = nix::unistd::User::from_name(USER_A)
        .ok()
        .flatten()
        .expect("test user");
    remove_alias();
    let st = Command::new("useradd")
        .args(["-o", "-M", "-N", "-s", "/usr/sbin/nologin"])
        .args(["-u", &a.uid.to_string(), "-g", &a.gid.to_string()])
        .arg(USER_A_ALIAS)
        .status()
        .expect("useradd");
    assert!(st.success(), "useradd -o {USER_A_ALIAS} failed");
    Some(Alias)
}

fn remove_alias() {
    if nix::unistd::User::from_name(USER_A_ALIAS)
        .ok()
        .flatten()
        .is_some()
    {
        // -f: processes of the shared uid (other tests' tf-alice) must not stop it.
        let _ = Command::new("userdel")
            .args(["-f", USER_A_ALIAS])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Alias {
    fn drop(&mut self) {
        remove_alias();
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    /// When set, the daemon reads "now" from this file (`--test-clock`).
    clock: Option<PathBuf>,
    bus: Child,
    daemon: Option<Child>,
    /// The account the daemon runs as, when not the test's own.
    daemon_user: Option<String>,
    pub bus_address: String,
    /// The `[store]` section of this world's own PostgreSQL database, made at the first
    /// configuration when the run is on the PostgreSQL store (see [`on_postgres`]).
    store: std::sync::OnceLock<String>,
}

/// Whether this run tests the PostgreSQL store (`TWOFOLD_TEST_STORE=postgres`, set by
/// tests/run.sh with a cluster of its own): every world then gets a database of its own.
pub fn on_postgres() -> bool {
    std::env::var("TWOFOLD_TEST_STORE").as_deref() == Ok("postgres")
}

/// What tests/on-postgres.sh tells the tests about its cluster.
fn cluster_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: tests/on-postgres.sh sets it with TWOFOLD_TEST_STORE=postgres")
    })
}

/// psql as the run's cluster's superuser, on `database`, with `flags`.
fn cluster_psql_command(database: &str, flags: &[&str]) -> Command {
    let mut cmd = Command::new(postgres::program("psql"));
    cmd.args(flags)
        .arg("-h")
        .arg(cluster_var("TWOFOLD_TEST_PG_SOCKET"))
        .args([
            "-p",
            &cluster_var("TWOFOLD_TEST_PG_PORT"),
            "-U",
            "postgres",
            "-d",
            database,
        ]);
    cmd
}

/// Runs `sql` in `database` on the run's cluster, as its superuser.
fn cluster_psql(database: &str, sql: &str) {
    let out = cluster_psql_command(database, &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", combined(&out));
}

/// Says so and returns true when the run is on PostgreSQL, for the tests of what only
/// the SQLite store has (its file, its locks, its modes); they then prove nothing.
pub fn sqlite_only(what: &str) -> bool {
    if on_postgres() {
        println!("not run on the PostgreSQL store: {what} is SQLite's");
    }
    on_postgres()
}

/// The code for `secret` now, waiting first if the current step ends within `margin`
/// seconds so the code cannot expire between computing and checking it.
pub fn fresh_code(secret: &str) -> String {
    let params = OtpParams {
        algorithm: totp_sha1(),
        digits: 6,
        step: 30,
        window: 1,
    };
    wait_for_step_margin(8);
    code_at(&params, secret, unix_now()).expect("code")
}

fn totp_sha1() -> twofold_daemon::otp::Algorithm {
    twofold_daemon::otp::Algorithm::SHA1
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The code an authenticator app shows at `time` (for tests on the daemon's test clock).
pub fn code_at_time(secret: &str, time: i64) -> String {
    let params = OtpParams {
        algorithm: totp_sha1(),
        digits: 6,
        step: 30,
        window: 1,
    };
    code_at(&params, secret, time as u64).expect("code")
}

/// Puts the calling test thread — and every process it starts from now on — into a new
/// kernel login session, as pam_loginuid does at login (root only). Returns its id.
pub fn new_login_session() -> u32 {
    std::fs::write("/proc/thread-self/loginuid", "0")
        .expect("write /proc/thread-self/loginuid (needs root)");
    std::fs::read_to_string("/proc/thread-self/sessionid")
        .expect("sessionid")
        .trim()
        .parse()
        .expect("number")
}

/// Sleeps until at least `margin` seconds remain in the current 30 s step.
pub fn wait_for_step_margin(margin: u64) {
    let into = unix_now() % 30;
    if 30 - into < margin {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

/// Waits until the next 30 s step starts (for tests that need a code never used before).
pub fn wait_for_next_step() {
    let into = unix_now() % 30;
    std::thread::sleep(Duration::from_millis((30 - into) * 1000 + 200));
}

/// The outcome of one pamtester run.
#[derive(Debug)]
pub struct PamRun {
    pub status: i32,
    pub output: String,
}

impl PamRun {
    pub fn passed(&self) -> bool {
        self.status == 0 && self.output.contains("successfully authenticated")
    }
    /// The libpam error text pamtester printed, e.g. "Authentication failure".
    pub fn has(&self, text: &str) -> bool {
        self.output.contains(text)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Writes `secret`, one line, to `path` with mode 0600: a credentials file, as the
/// daemon's `password_file` settings read them.
pub fn write_secret_file(path: &Path, secret: &str) {
    std::fs::write(path, format!("{secret}\n")).expect("password file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the password file");
}

/// 128 random bits in hex, for the passwords of the servers a test starts.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    data_encoding::HEXLOWER.encode(&bytes)
}

/// A dbus-daemon on `dir`/bus.conf, its socket `dir`/bus open to every test user.
fn start_bus(dir: &Path) -> Child {
    let socket = dir.join("bus");
    let bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", dir.join("bus.conf").display()))
        .args(["--nofork", "--nopidfile"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (apt-get install dbus-daemon)");
    wait_until(|| socket.exists(), "the bus socket");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    bus
}

impl World {
    /// A private bus and a daemon with `extra` appended to the test configuration.
    pub fn start(extra: &str) -> World {
        let mut w = World::bus_only();
        w.start_daemon(extra);
        w
    }

    /// Like [`World::start`], with the daemon's clock under the test's control.
    pub fn start_at(extra: &str, now: i64) -> World {
        let mut w = World::bus_only();
        w.use_test_clock(now);
        w.start_daemon(extra);
        w
    }

    /// From now on the daemon started next reads its clock from a file set to `now`.
    pub fn use_test_clock(&mut self, now: i64) {
        self.clock = Some(self.path("clock"));
        self.set_clock(now);
    }

    /// Starts twofoldd as the ordinary account `user`, owning its state directory (the
    /// bus policy must let `user` own the name; the module needs `daemon_user=`).
    pub fn start_daemon_unprivileged(&mut self, extra: &str, user: &str) {
        let state = self.path("state");
        std::fs::create_dir_all(&state).expect("state");
        let st = Command::new("chown")
            .arg(user)
            .arg(&state)
            .status()
            .expect("chown");
        assert!(st.success(), "chown {user}");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        self.start_daemon_as(extra, Some(user));
    }

    /// Moves the daemon's test clock.
    pub fn set_clock(&self, now: i64) {
        let file = self
            .clock
            .as_ref()
            .expect("World::start_at sets up the test clock");
        std::fs::write(file, now.to_string()).expect("clock file");
    }

    /// A private bus with no daemon on it.
    pub fn bus_only() -> World {
        World::bus_with_policy("")
    }

    /// A private bus whose policy adds `extra_policy` (XML) to the shipped one.
    pub fn bus_with_policy(extra_policy: &str) -> World {
        let dir = tempfile::Builder::new()
            .prefix("twofold-test-")
            .tempdir()
            .expect("tempdir");
        // Other test users must reach the bus socket and the PAM service files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        // As another user than root, the test's own account runs twofoldd: let it own the
        // name (as demo.sh does); module_line() names it in daemon_user=.
        let extra_policy = if is_root() {
            extra_policy.to_string()
        } else {
            format!(
                "<policy user=\"{}\"><allow own=\"org.twofold.Twofold1\"/></policy>{extra_policy}",
                me()
            )
        };
        std::fs::write(&config, bus_config(&socket, &extra_policy)).expect("bus.conf");
        let bus = start_bus(dir.path());
        let bus_address = format!("unix:path={}", socket.display());
        let w = World {
            dir,
            clock: None,
            bus,
            daemon: None,
            daemon_user: None,
            bus_address,
            store: std::sync::OnceLock::new(),
        };
        w.write_service("twofold", "");
        w.write_service("other", "");
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_text(&self, extra: &str) -> String {
        let store = if on_postgres() && !extra.contains("[store]") {
            self.store.get_or_init(|| self.own_database()).as_str()
        } else {
            ""
        };
        format!(
            "version = 1\n[daemon]\nbus = \"{}\"\ndatabase = \"{}\"\nsyslog_socket = \"{}\"\nsocket = \"{}\"\n{}{extra}\n{store}",
            self.bus_address,
            self.path("state/twofold.db").display(),
            self.path("syslog").display(),
            self.socket_path().display(),
            admin_line()
        )
    }

    /// A database of this world's own on the run's cluster, and its `[store]` section.
    fn own_database(&self) -> String {
        let name = self.database_name();
        cluster_psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {}", postgres::ROLE),
        );
        let password = self.path("db-password");
        std::fs::copy(cluster_var("TWOFOLD_TEST_PG_PASSWORD_FILE"), &password)
            .expect("password file");
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let url = format!(
            "postgresql://{}@127.0.0.1:{}/{name}",
            postgres::ROLE,
            cluster_var("TWOFOLD_TEST_PG_PORT")
        );
        postgres::store_section(&url, &password, None)
    }

    /// This world's database on the run's cluster: its directory's name.
    fn database_name(&self) -> String {
        self.dir
            .path()
            .file_name()
            .expect("world directory")
            .to_string_lossy()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Starts twofoldd (as root, or as `run_as`) and waits for its name on the bus.
    pub fn start_daemon_as(&mut self, extra: &str, run_as: Option<&str>) {
        let config = self.write_config(extra);
        // The socket's directory belongs to the daemon's account, as /run/twofold to root.
        if let Some(u) = run_as {
            let st = Command::new("chown")
                .arg(u)
                .arg(self.path("run"))
                .status()
                .expect("chown");
            assert!(st.success(), "chown {u}");
        }
        if let (Some(u), true) = (run_as, self.path("db-password").exists()) {
            let st = Command::new("chown")
                .arg(u)
                .arg(self.path("db-password"))
                .status()
                .expect("chown");
            assert!(st.success(), "chown {u}");
        }
        self.daemon_user = run_as.map(str::to_owned);
        let log = std::fs::File::create(self.path("twofoldd.log")).expect("log");
        let mut cmd = match run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(binary("twofoldd"));
                c
            }
            None => Command::new(binary("twofoldd")),
        };
        cmd.arg("--config").arg(&config);
        if let Some(clock) = &self.clock {
            cmd.arg("--test-clock").arg(clock);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("twofoldd");
        self.daemon = Some(child);
        let log_path = self.path("twofoldd.log");
        let served = || {
            std::fs::read_to_string(&log_path)
                .map(|s| s.contains("serving"))
                .unwrap_or(false)
        };
        if !wait_for(served, Duration::from_secs(10)) {
            let log = self.daemon_log();
            let hint = if log.contains("--test-clock") {
                "\n(this twofoldd lacks the test-clock feature: run `cargo build --workspace`, as tests/run.sh does)"
            } else {
                ""
            };
            panic!("twofoldd did not start:\n{log}{hint}");
        }
    }

    pub fn start_daemon(&mut self, extra: &str) {
        self.start_daemon_as(extra, None)
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = nix_kill(&d);
            let _ = d.wait();
        }
    }

    /// Kills the bus daemon (twofoldd keeps serving its socket).
    pub fn kill_bus(&mut self) {
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }

    /// A new dbus-daemon on the same address and policy, as after `systemctl restart dbus`
    /// (call [`World::kill_bus`] first).
    pub fn start_bus_again(&mut self) {
        let _ = std::fs::remove_file(self.path("bus"));
        self.bus = start_bus(self.dir.path());
    }

    /// Writes the daemon's configuration (with `extra`) and returns its path, for tests
    /// that start twofoldd themselves.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let run = self.path("run");
        std::fs::create_dir_all(&run).expect("run dir");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let config = self.path("twofold.toml");
        std::fs::write(&config, self.config_text(extra)).expect("config");
        config
    }

    /// Another writer takes the database's write lock (`BEGIN IMMEDIATE`), as a backup
    /// tool or an administrator's sqlite3 would; on PostgreSQL another session locks the
    /// users table for writing (`LOCK TABLE … IN EXCLUSIVE MODE`: reads go on, as in SQLite's WAL). It is
    /// released when the guard drops.
    pub fn lock_database(&self) -> DatabaseLock {
        if on_postgres() {
            return DatabaseLock::Postgres(self.lock_postgres_users());
        }
        let conn = rusqlite::Connection::open(self.path("state/twofold.db")).expect("open");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        DatabaseLock::Sqlite(conn)
    }

    /// A psql session holding `users` locked until it is killed.
    fn lock_postgres_users(&self) -> Child {
        use std::io::BufRead;
        // The table exists once the daemon has made the schema.
        let _ = self.store.get_or_init(|| self.own_database());
        let mut child = cluster_psql_command(&self.database_name(), &["-X", "-q", "-A", "-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"BEGIN;\nLOCK TABLE users IN EXCLUSIVE MODE;\nSELECT 'locked';\n")
            .expect("psql stdin");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("psql stdout");
        assert_eq!(line.trim(), "locked", "psql did not lock the table");
        child
    }

    /// Adds `users` active factors (`seed000000`, ...) and `trust` trust rows spread
    /// evenly over them, valid until `expires_at`, in one transaction beside the running
    /// daemon (WAL lets it go on serving).
    pub fn seed_database(&self, users: u32, trust: u32, expires_at: i64) {
        if on_postgres() {
            let name = self.database_name();
            cluster_psql(
                &name,
                &format!(
                    "INSERT INTO users (name, secret, state, enrolled_at)
                     SELECT 'seed' || lpad(i::text, 6, '0'), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 'active', 0
                     FROM generate_series(0, {users} - 1) i;
                     INSERT INTO trust (id, \"user\", kind, identity_hash, description, service,
                                        created_at, last_used, expires_at, idle_seconds, password_stamp, scope)
                     SELECT lpad(to_hex(i), 8, '0') || substr(md5(random()::text), 1, 24),
                            'seed' || lpad((i % {users})::text, 6, '0'), 'device', lpad(to_hex(i), 64, '0'),
                            'ssh key from 192.0.2.1', 'sshd', 0, 0, {expires_at}, 0, NULL, 'host:seed'
                     FROM generate_series(0, {trust} - 1) i;"
                ),
            );
            return;
        }
        let conn = rusqlite::Connection::open(self.path("state/twofold.db")).expect("open");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {users} - 1)
             INSERT INTO users (name, secret, state, enrolled_at)
             SELECT printf('seed%06d', i), 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', 'active', 0 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {trust} - 1)
             INSERT INTO trust (id, user, kind, identity_hash, description, service,
                                created_at, last_used, expires_at, idle_seconds, password_stamp)
             SELECT printf('%08x%024x', i, abs(random())), printf('seed%06d', i % {users}),
                    'device', printf('%064x', i), 'ssh key from 192.0.2.1', 'sshd',
                    0, 0, {expires_at}, 0, NULL FROM n;
             COMMIT;"
        ))
        .expect("seed the database");
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("twofoldd.log")).unwrap_or_default()
    }

    /// Writes a PAM service file; `args` are extra module arguments after bus=.
    pub fn write_service(&self, name: &str, content: &str) {
        let text = if content.is_empty() {
            "auth required pam_deny.so\n".to_string()
        } else {
            content.to_string()
        };
        let dir = self.path("pam.d");
        std::fs::create_dir_all(&dir).expect("pam.d");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.join(name), text).expect("service");
    }

    /// twofoldd's own socket in this world.
    pub fn socket_path(&self) -> PathBuf {
        self.path("run/socket")
    }

    /// The module line for this world's daemon socket, with extra arguments.
    pub fn module_line(&self, args: &str) -> String {
        module_line_to(&format!("socket={}", self.socket_path().display()), args)
    }

    /// The module line that reaches the daemon over this world's bus instead.
    pub fn bus_module_line(&self, args: &str) -> String {
        module_line_to(&format!("bus={}", self.bus_address), args)
    }

    /// Runs `pamtester SERVICE USER authenticate` under pam_wrapper, typing `input`.
    pub fn pam(&self, service: &str, user: &str, input: &str) -> PamRun {
        self.pam_as(None, service, user, input, &[])
    }

    pub fn pam_as(
        &self,
        run_as: Option<&str>,
        service: &str,
        user: &str,
        input: &str,
        env: &[(&str, &str)],
    ) -> PamRun {
        if run_as.is_some() {
            clear_stale_pam_wrapper_dirs();
        }
        // pam_wrapper sometimes fails to make its /tmp/pam.X directory when processes
        // start at once ("File exists"): the module never ran, so run it again.
        for _ in 0..4 {
            let out = run_with_input(self.pamtester(run_as, service, user, env, false), input);
            let output = combined(&out);
            if !output.contains("Failed to create pam_wrapper config dir") {
                return PamRun {
                    status: out.status.code().unwrap_or(-1),
                    output,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("pam_wrapper could not set up its directory four times in a row");
    }

    fn pamtester(
        &self,
        run_as: Option<&str>,
        service: &str,
        user: &str,
        env: &[(&str, &str)],
        unbuffered: bool,
    ) -> Command {
        let mut cmd = match run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", "env"]);
                c
            }
            None => Command::new("env"),
        };
        cmd.arg("LD_PRELOAD=libpam_wrapper.so")
            .arg("PAM_WRAPPER=1")
            .arg(format!(
                "PAM_WRAPPER_SERVICE_DIR={}",
                self.path("pam.d").display()
            ));
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        if unbuffered {
            // pamtester's messages go to a buffered stdout: a reader waiting for them
            // mid-run would see nothing until it exits.
            cmd.args(["stdbuf", "-o0"]);
        }
        cmd.args([
            "pamtester",
            "-v",
            "-I",
            "rhost=192.0.2.10",
            "-I",
            "tty=pts/7",
            service,
            user,
            "authenticate",
        ]);
        cmd
    }

    /// pamtester as [`World::pam`], with its standard input left open: the test types
    /// each answer when it has it (a code from a mail, say) and then ends the run.
    pub fn pam_typing(&self, service: &str, user: &str) -> Typing {
        let mut child = self
            .pamtester(None, service, user, &[], true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pamtester");
        let shown = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for mut stream in streams {
            let shown = shown.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    shown.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        Typing {
            child,
            shown,
            readers,
        }
    }

    /// Runs PAM transactions in one process with the real libpam (see the
    /// `pam_inprocess` binary); `child` ones run in a forked child. Returns its report.
    pub fn pam_inprocess(
        &self,
        transactions: &[twofold_pamtest::Transaction],
        child: &[twofold_pamtest::Transaction],
    ) -> serde_json::Value {
        self.pam_inprocess_as(None, transactions, child)
    }

    /// [`World::pam_inprocess`] in a process of `run_as` (as a screen locker runs).
    pub fn pam_inprocess_as(
        &self,
        run_as: Option<&str>,
        transactions: &[twofold_pamtest::Transaction],
        child: &[twofold_pamtest::Transaction],
    ) -> serde_json::Value {
        use std::os::unix::process::CommandExt;
        let spec = serde_json::json!({"transactions": transactions, "child": child});
        let mut cmd = Command::new(target_dir().join("pam_inprocess"));
        if let Some(u) = run_as {
            let user = nix::unistd::User::from_name(u)
                .ok()
                .flatten()
                .expect("test user");
            cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let out = cmd
            .env(twofold_pamtest::CONFDIR_VARIABLE, self.path("pam.d"))
            .arg(spec.to_string())
            .output()
            .expect("pam_inprocess (cargo build --workspace --all-targets)");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("no report from pam_inprocess: {}", combined(&out)))
    }

    /// Runs twofoldctl on this world's bus.
    pub fn ctl(&self, args: &[&str], input: &str) -> Output {
        self.ctl_as(None, args, input)
    }

    pub fn ctl_as(&self, run_as: Option<&str>, args: &[&str], input: &str) -> Output {
        let mut cmd = match run_as {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(binary("twofoldctl"));
                c
            }
            None => Command::new(binary("twofoldctl")),
        };
        cmd.arg("--socket").arg(self.socket_path());
        if let Some(u) = &self.daemon_user {
            cmd.arg("--daemon-user").arg(u);
        }
        cmd.args(args);
        run_with_input(cmd, input)
    }

    /// Enrols `user` and confirms the factor with its code at test time `now` (the
    /// daemon's clock must show `now`); returns the secret.
    pub fn enrol_confirmed(&self, user: &str, now: i64) -> String {
        let secret = self.enrol(user);
        let out = self.ctl(
            &["confirm", user],
            &format!("{}\n", code_at_time(&secret, now)),
        );
        assert!(out.status.success(), "{}", combined(&out));
        secret
    }

    /// Enrols `user` (confirmed at test time `t0`, the daemon's clock), then moves the
    /// clock to `t0 + 30` and makes the login through the ssh service `service` with
    /// `ssh_key` that opens a session window (the code, then "n" to "Trust this
    /// device?"). Returns the secret.
    pub fn open_session_window(&self, service: &str, user: &str, ssh_key: &str, t0: i64) -> String {
        let secret = self.enrol_confirmed(user, t0);
        self.set_clock(t0 + 30);
        let code = code_at_time(&secret, t0 + 30);
        let login = ssh_transaction(service, user, ssh_key, &[&code, "n"]);
        let (rc, conv) = first_outcome(&self.pam_inprocess(&[login], &[]));
        assert_eq!(rc, 0, "{user}'s key login: {conv:?}");
        secret
    }

    /// Enrols `user` without verification through twofoldctl; returns the secret.
    pub fn enrol(&self, user: &str) -> String {
        let out = self.ctl(&["--json", "enrol", user, "--no-verify"], "");
        assert!(out.status.success(), "enrol failed: {}", combined(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("enrol JSON");
        v["secret"].as_str().expect("secret").to_string()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_daemon();
        let _ = nix_kill(&self.bus);
        let _ = self.bus.wait();
    }
}

/// A pamtester run that is typed into; see [`World::pam_typing`].
pub struct Typing {
    child: Child,
    /// Everything it wrote so far, standard output and error as they came.
    shown: std::sync::Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Typing {
    /// Types one answer (and Enter).
    pub fn line(&mut self, answer: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .expect("pamtester reads its answers");
        stdin.flush().expect("flush");
    }

    /// Waits (at most 10 s) until it has shown `text`; returns all it has shown.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned();
            if shown.contains(text) || Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Closes the input and waits (at most 30 s) for the result.
    pub fn finish(mut self) -> PamRun {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        PamRun {
            status: status.code().unwrap_or(-1),
            output: String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned(),
        }
    }
}

/// What zbarimg (a real QR decoder) reads from terminal output `capture` drawn as a
/// terminal of `theme` (`light` or `dark`) shows it; None when it finds no symbol.
pub fn qr_decode(dir: &Path, capture: &str, theme: &str) -> Option<String> {
    let text = dir.join(format!("capture-{theme}.txt"));
    let png = dir.join(format!("screen-{theme}.png"));
    std::fs::write(&text, capture).expect("capture");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("terminal_png.py");
    let drawn = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(theme)
        .arg(&text)
        .arg(&png)
        .output()
        .expect("/usr/bin/python3 (python3-pil)");
    assert!(drawn.status.success(), "{}", combined(&drawn));
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .expect("zbarimg (Debian package zbar-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The write lock of [`World::lock_database`].
pub enum DatabaseLock {
    Sqlite(rusqlite::Connection),
    /// The psql session that holds it; its end releases it.
    Postgres(Child),
}

impl Drop for DatabaseLock {
    fn drop(&mut self) {
        match self {
            DatabaseLock::Sqlite(conn) => {
                let _ = conn.execute_batch("ROLLBACK");
            }
            DatabaseLock::Postgres(psql) => {
                let _ = psql.kill();
                let _ = psql.wait();
            }
        }
    }
}

fn nix_kill(child: &Child) -> nix::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
}

/// Whether process `pid` has ended: gone, or a zombie waiting for its parent to reap it.
pub fn process_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

pub fn combined(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_with_input(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait")
}

fn wait_for(mut ready: impl FnMut() -> bool, limit: Duration) -> bool {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn wait_until(ready: impl FnMut() -> bool, what: &str) {
    assert!(
        wait_for(ready, Duration::from_secs(10)),
        "timed out waiting for {what}"
    );
}

/// The shipped bus policy file, from the repository.
pub fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dbus/org.twofold.Twofold1.conf")
}

/// The private bus's configuration (dbus/private-bus.conf.in, shared with demo.sh and
/// bench/), with `extra_policy` (XML) added.
fn bus_config(socket: &Path, extra_policy: &str) -> String {
    include_str!("../../dbus/private-bus.conf.in")
        .replace("@SOCKET@", &socket.display().to_string())
        .replace("@POLICY@", &policy_file().display().to_string())
        .replace("@EXTRA@", extra_policy)
}

/// `auth required pam_twofold.so TARGET [daemon_user=ME] ARGS`; when not root the test
/// account runs the daemon, so the module must trust it.
fn module_line_to(target: &str, args: &str) -> String {
    let daemon_user = if is_root() {
        String::new()
    } else {
        format!(" daemon_user={}", me())
    };
    format!(
        "auth required {} {target}{daemon_user} {args}\n",
        module_path().display()
    )
}

/// The first transaction of a `pam_inprocess` report: its PAM code (-1 when missing) and
/// its conversation lines (`prompt: …`, `info: …`, `error: …`).
/// A transaction as sshd makes it: `service`, the key that passed (`SSH_AUTH_INFO_0`
/// text), from 192.0.2.7 on tty "ssh", typing `answers`.
pub fn ssh_transaction(
    service: &str,
    user: &str,
    auth_info: &str,
    answers: &[&str],
) -> twofold_pamtest::Transaction {
    twofold_pamtest::Transaction {
        service: service.into(),
        user: user.into(),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        rhost: Some("192.0.2.7".into()),
        tty: Some("ssh".into()),
        env: vec![format!("SSH_AUTH_INFO_0={auth_info}")],
        pause: None,
        quirk: Default::default(),
    }
}

pub fn first_outcome(report: &serde_json::Value) -> (i64, Vec<String>) {
    let r = &report["results"][0];
    let conversation = r["conversation"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (r["rc"].as_i64().unwrap_or(-1), conversation)
}
