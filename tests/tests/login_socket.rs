//! Logins over twofoldd's own socket (D-Bus peer-to-peer): alive without dbus-daemon,
//! started by socket activation, bounded against a user's connections (issue 8).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twofold_integration::*;

/// A step boundary, for the tests on the test clock.
const T0: i64 = 1_800_000_000;
/// An ed25519 public key as sshd reports it in SSH_AUTH_INFO_0.
const KEY: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPBt/BNd5lA1dnF//n6CHzH8KvAg/yKN0naK8HbRXq9f";

#[test]
fn logins_and_unlock_work_while_dbus_daemon_is_dead() {
    let mut w = World::start("[lockout]\nmax_failures = 3\nsource_failures = 100");
    w.write_service("twofold", &w.module_line(""));
    let secret = w.enrol(me());
    w.kill_bus();
    let code = fresh_code(&secret);
    let r = w.pam("twofold", me(), &format!("{code}\n"));
    assert!(r.passed(), "a login without dbus-daemon: {r:?}");
    let wrong = w.pam("twofold", me(), "000000\n000001\n000002\n");
    assert!(!wrong.passed());
    assert!(combined(&w.ctl(&["status", me()], "")).contains("locked until"));
    let out = w.ctl(&["unlock", me()], "");
    assert!(
        out.status.success(),
        "unlock without dbus-daemon: {}",
        combined(&out)
    );
    println!("proved: with dbus-daemon killed, a PAM login and twofoldctl unlock still work");
}

#[test]
fn twofoldd_is_back_on_a_bus_that_starts_again_and_takes_no_new_caller_for_an_old_one() {
    require_root("other users' calls over the bus");
    assert!(ensure_test_users());
    let mut w = World::start("");
    w.write_service("twofold", &w.bus_module_line(""));
    let secret = w.enrol(me());
    let bus = w.bus_address.clone();
    // Root's calls on the first bus: their unique names are remembered as uid 0.
    for _ in 0..5 {
        let out = w.ctl(&["--bus", &bus, "status", me()], "");
        assert!(out.status.success(), "{}", combined(&out));
    }
    w.kill_bus();
    w.start_bus_again();
    // Waited for in the log: a client polling the bus would use up the unique names
    // that the calls below must be given.
    let start = Instant::now();
    let back = loop {
        let log = w.daemon_log();
        if log.contains(&format!("serving org.twofold.Twofold1 on {bus} again")) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "twofoldd is not back on the bus: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The new bus daemon gives out the first bus's unique names again: none of another
    // user's connections may be taken for the root caller that once had its name.
    for _ in 0..8 {
        let out = w.ctl_as(Some(USER_A), &["--bus", &bus, "unlock", me()], "");
        assert!(
            !out.status.success() && combined(&out).contains("ermission"),
            "{USER_A} unlocking {} over the new bus: {}",
            me(),
            combined(&out)
        );
    }
    let r = w.pam("twofold", me(), &format!("{}\n", fresh_code(&secret)));
    assert!(r.passed(), "a login over the new bus: {r:?}");
    println!(
        "proved: dbus-daemon killed and started again: twofoldd served the new bus after {back:?}, logins over it pass, and 8 calls of {USER_A} whose unique names root's calls had on the old bus were refused"
    );
}

#[test]
fn socket_activation_starts_the_daemon_at_the_first_connection() {
    let w = World::bus_only();
    let config = w.write_config("");
    let log = std::fs::File::create(w.path("twofoldd.log")).expect("log");
    // systemd-socket-activate listens on both sockets, and execs twofoldd (fds 3 and 4,
    // LISTEN_FDS=2) on the first connection, as twofoldd.socket and twofoldd-root.socket
    // do under systemd.
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(w.socket_path())
        .arg("-l")
        .arg(twofold_protocol::root_socket_path(&w.socket_path()))
        .arg(binary("twofoldd"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)");
    let start = Instant::now();
    while !w.socket_path().exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !w.daemon_log().contains("serving"),
        "started before anyone asked"
    );
    w.write_service("twofold", &w.module_line(""));
    // The first connection (twofoldctl) starts the daemon; then a login passes the code.
    let out = w.ctl(&["status", me()], "");
    assert!(
        out.status.success(),
        "{}\n{}",
        combined(&out),
        w.daemon_log()
    );
    let secret = w.enrol(me());
    let code = fresh_code(&secret);
    let r = w.pam("twofold", me(), &format!("{code}\n"));
    let _ = activator.kill();
    let _ = activator.wait();
    assert!(r.passed(), "{r:?}\n{}", w.daemon_log());
    assert!(w.daemon_log().contains("listening"), "{}", w.daemon_log());
    println!(
        "proved: socket activation with both sockets passed: the first connection starts twofoldd, the login passes"
    );
}

#[test]
fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let w = World::start("");
    let mut silent = std::os::unix::net::UnixStream::connect(w.socket_path()).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    let waited = start.elapsed();
    assert_eq!(n, 0, "the daemon said something to a silent client");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
    println!("proved: a connection that says nothing is closed after {waited:?}");
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: floods as another user")]
fn a_users_connection_flood_does_not_stop_roots_logins() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    ensure_test_users();
    let w = World::start_at("", T0);
    w.write_service("twofold", &w.module_line("timeout=5"));
    let secret = w.enrol("root");
    let bob = nix::unistd::User::from_name(USER_B)
        .ok()
        .flatten()
        .expect("test user");
    // Root's logins use a socket of their own that no other user may connect to.
    let root_socket = twofold_protocol::root_socket_path(&w.socket_path());
    let meta = std::fs::metadata(&root_socket).expect("the root-only socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), 0);
    let probe = Command::new("runuser")
        .args(["-u", USER_B, "--", "python3", "-c"])
        .arg("import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])")
        .arg(&root_socket)
        .output()
        .expect("runuser");
    assert!(
        !probe.status.success() && combined(&probe).contains("Permission denied"),
        "{USER_B} reached the root-only socket: {}",
        combined(&probe)
    );
    let mut flood = Command::new(target_dir().join("bus_flood"))
        .arg(w.socket_path())
        .arg("12")
        .uid(bob.uid.as_raw())
        .gid(bob.gid.as_raw())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bus_flood");
    std::thread::sleep(Duration::from_secs(2));
    // Several logins, one per time step: each would meet a full queue on the public socket.
    let mut results = Vec::new();
    for step in 1..=6 {
        w.set_clock(T0 + 30 * step);
        let code = code_at_time(&secret, T0 + 30 * step);
        results.push(w.pam("twofold", "root", &format!("{code}\n")));
    }
    let mut opened = String::new();
    if let Some(mut out) = flood.stdout.take() {
        let _ = out.read_to_string(&mut opened);
    }
    let _ = flood.wait();
    for r in &results {
        assert!(r.passed(), "root's login failed during the flood: {r:?}");
    }
    println!(
        "proved: {} connections from {USER_B} to the public socket (32 at a time admitted) did not stop 6 of root's logins; {USER_B} cannot connect to the root-only socket (0600)",
        opened.trim()
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: runs PAM as a test user")]
fn only_root_running_sshd_can_present_an_ssh_key() {
    ensure_test_users();
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    w.write_service("login", &w.module_line(""));
    let secret = w.enrol_confirmed(USER_A, T0);
    let claim = |service: &str, answers: &[&str]| ssh_transaction(service, USER_A, KEY, answers);
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret, T0 + 30);
    // tf-alice's own process claims to be sshd with a key: no trust question (that needs a
    // key identity), and afterwards root's sshd with that key is still asked.
    let (rc, conv) =
        first_outcome(&w.pam_inprocess_as(Some(USER_A), &[claim("sshd", &[&code, "y"])], &[]));
    assert_eq!(rc, 0, "{conv:?}");
    assert!(
        !conv.iter().any(|c| c.contains("Trust this device")),
        "{conv:?}"
    );
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[claim("sshd", &[])], &[]));
    assert!(
        rc != 0 && conv == ["prompt: Verification code: "],
        "{conv:?}"
    );
    // Root's login service with a copied SSH_AUTH_INFO_0 is no sshd either.
    w.set_clock(T0 + 60);
    let code = code_at_time(&secret, T0 + 60);
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[claim("login", &[&code, "y"])], &[]));
    assert!(
        rc == 0 && !conv.iter().any(|c| c.contains("Trust this device")),
        "{conv:?}"
    );
    let (rc, _) = first_outcome(&w.pam_inprocess(&[claim("sshd", &[])], &[]));
    assert_ne!(rc, 0, "a key window came from a non-sshd service");
    println!(
        "proved: only root's sshd can present an SSH key identity; a user's process or another service cannot"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: PAM runs as root, as sshd does")]
fn the_services_that_are_sshd_can_be_configured() {
    ensure_test_users();
    let w = World::start_at("[login]\nssh_services = [\"bastion-*\"]", T0);
    w.write_service("bastion-eu", &w.module_line(""));
    w.write_service("sshd", &w.module_line(""));
    let secret = w.enrol(USER_A);
    let claim = |service: &str, answers: &[&str]| ssh_transaction(service, USER_A, KEY, answers);
    // sshd is no longer in the list: its key is not a device.
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret, T0 + 30);
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[claim("sshd", &[&code, "y"])], &[]));
    assert!(
        rc == 0 && !conv.iter().any(|c| c.contains("Trust this device")),
        "{conv:?}"
    );
    // bastion-eu is: the key that passed can be remembered, and then no code is asked.
    w.set_clock(T0 + 60);
    let code = code_at_time(&secret, T0 + 60);
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[claim("bastion-eu", &[&code, "y"])], &[]));
    assert!(
        rc == 0 && conv.iter().any(|c| c.contains("Trust this device")),
        "{conv:?}"
    );
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[claim("bastion-eu", &[])], &[]));
    assert_eq!(rc, 0, "{conv:?}");
    println!(
        "proved: with ssh_services = [\"bastion-*\"], root's bastion-eu presents the SSH key as the device and sshd does not"
    );
}

#[test]
#[cfg_attr(not(as_root), ignore = "needs root: PAM runs as root, as sshd does")]
fn a_login_waiting_for_the_database_does_not_hold_up_the_others() {
    ensure_test_users();
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    w.write_service("login", &w.module_line(""));
    let secret_a = w.enrol_confirmed(USER_A, T0);
    let secret_b = w.enrol_confirmed(USER_B, T0);
    // tf-alice's key earns a session window: her next sshd logins ask nothing.
    w.set_clock(T0 + 30);
    let code = code_at_time(&secret_a, T0 + 30);
    let (rc, conv) = first_outcome(
        &w.pam_inprocess(&[ssh_transaction("sshd", USER_A, KEY, &[&code, "n"])], &[]),
    );
    assert_eq!(rc, 0, "{conv:?}");
    // Another writer holds the database for longer than the daemon's busy timeout (3 s).
    let blocker = w.lock_database();
    let code_b = code_at_time(&secret_b, T0 + 30);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let started = Instant::now();
            let login = console_transaction(USER_B, &[&code_b]);
            (
                first_outcome(&w.pam_inprocess(&[login], &[])),
                started.elapsed(),
            )
        });
        // tf-bob's code now waits for the lock in the daemon.
        std::thread::sleep(Duration::from_millis(800));
        let started = Instant::now();
        let (rc, conv) =
            first_outcome(&w.pam_inprocess(&[ssh_transaction("sshd", USER_A, KEY, &[])], &[]));
        let took = started.elapsed();
        assert_eq!(rc, 0, "tf-alice's window login: {conv:?}");
        assert!(
            took < Duration::from_millis(1500),
            "tf-alice's login took {took:?} while tf-bob's waited for the database"
        );
        assert!(
            !waiting.is_finished(),
            "tf-bob's login did not wait for the lock"
        );
        let ((rc_b, conv_b), waited) = waiting.join().expect("thread");
        assert_ne!(
            rc_b, 0,
            "a code was accepted without its replay record: {conv_b:?}"
        );
        assert!(
            conv_b.iter().any(|c| c.contains("cannot check codes")),
            "{conv_b:?}"
        );
        println!(
            "proved: while tf-bob's code waited {waited:?} for a locked database (and then failed closed), tf-alice's window login passed in {took:?}"
        );
    });
    drop(blocker);
    w.set_clock(T0 + 60);
    let code_b = code_at_time(&secret_b, T0 + 60);
    let login = console_transaction(USER_B, &[&code_b]);
    let (rc, conv) = first_outcome(&w.pam_inprocess(&[login], &[]));
    assert_eq!(rc, 0, "after the lock: {conv:?}\n{}", w.daemon_log());
}

/// A console login by `user` on tty3, typing `answers`.
fn console_transaction(user: &str, answers: &[&str]) -> twofold_pamtest::Transaction {
    twofold_pamtest::Transaction {
        service: "login".into(),
        user: user.into(),
        answers: answers.iter().map(|a| a.to_string()).collect(),
        rhost: None,
        tty: Some("tty3".into()),
        env: Vec::new(),
        pause: None,
        quirk: Default::default(),
    }
}

/// Starts twofoldd on listening sockets this process holds, as systemd does: fds 3 and 4,
/// `LISTEN_FDS=2`, `LISTEN_PID` its own pid (the shell's, which `exec` keeps).
fn start_on_held_sockets(
    w: &World,
    config: &std::path::Path,
    sockets: [&std::os::unix::net::UnixListener; 2],
) -> std::process::Child {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fds = [sockets[0].as_raw_fd(), sockets[1].as_raw_fd()];
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(w.path("twofoldd.log"))
        .expect("log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" --config "$1""#)
        .arg(binary("twofoldd"))
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and exec. Copies above
    // 10 first, so neither target (3, 4) is overwritten before it is copied; dup2 leaves
    // the new descriptors open across exec.
    unsafe {
        cmd.pre_exec(move || {
            let high = [
                libc::fcntl(fds[0], libc::F_DUPFD_CLOEXEC, 10),
                libc::fcntl(fds[1], libc::F_DUPFD_CLOEXEC, 10),
            ];
            for (i, fd) in high.into_iter().enumerate() {
                if fd < 0 || libc::dup2(fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().expect("twofoldd")
}

#[test]
fn a_login_made_while_the_daemon_restarts_waits_and_passes() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::bus_only();
    let config = w.write_config("");
    let public_path = w.socket_path();
    let root_path = twofold_protocol::root_socket_path(&public_path);
    let public = std::os::unix::net::UnixListener::bind(&public_path).expect("bind");
    let root_only = std::os::unix::net::UnixListener::bind(&root_path).expect("bind");
    std::fs::set_permissions(&public_path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    std::fs::set_permissions(&root_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    w.write_service("twofold", &w.module_line("timeout=20"));
    let wait_for_serving = |n: usize| {
        let start = Instant::now();
        while w.daemon_log().matches("serving").count() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{}",
                w.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut first = start_on_held_sockets(&w, &config, [&public, &root_only]);
    wait_for_serving(1);
    let secret = w.enrol(me());
    // The daemon stops (a restart, an upgrade); the sockets stay, as systemd keeps them.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let _ = first.wait();
    let code = fresh_code(&secret);
    let (login, waited, mut second) = std::thread::scope(|s| {
        let login = s.spawn(|| {
            let start = Instant::now();
            let r = w.pam("twofold", me(), &format!("{code}\n"));
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            !login.is_finished(),
            "the login did not wait for the daemon"
        );
        let second = start_on_held_sockets(&w, &config, [&public, &root_only]);
        let (r, waited) = login.join().expect("login thread");
        (r, waited, second)
    });
    let _ = second.kill();
    let _ = second.wait();
    assert!(login.passed(), "{login:?}\n{}", w.daemon_log());
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    println!(
        "proved: a login begun while twofoldd was stopped waited {:.1} s in the socket's queue and passed once it was back",
        waited.as_secs_f64()
    );
}

/// A world at T0 + 30 whose root holds a session window for KEY on sshd's service.
fn world_with_a_root_window() -> World {
    ensure_test_users();
    let w = World::start_at("", T0);
    w.write_service("sshd", &w.module_line(""));
    w.open_session_window("sshd", "root", KEY, T0);
    w
}

/// Authentication times of `count` window logins by root over sshd's service, in one
/// process; each must pass.
fn window_logins(w: &World, count: usize) -> Vec<Duration> {
    let logins: Vec<_> = (0..count)
        .map(|_| ssh_transaction("sshd", "root", KEY, &[]))
        .collect();
    let report = w.pam_inprocess(&logins, &[]);
    let mut times: Vec<Duration> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            assert_eq!(r["rc"], 0, "root's window login failed: {r}");
            serde_json::from_value::<twofold_pamtest::Outcome>(r.clone())
                .expect("outcome")
                .authenticate
        })
        .collect();
    times.sort();
    times
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: floods as a test user, logs in as root"
)]
fn a_users_flood_of_calls_on_32_connections_does_not_hold_up_roots_logins() {
    let w = world_with_a_root_window();
    let quiet = window_logins(&w, 40);
    use std::os::unix::process::CommandExt;
    let bob = nix::unistd::User::from_name(USER_B)
        .ok()
        .flatten()
        .expect("test user");
    let mut flood = Command::new(target_dir().join("call_flood"))
        .arg(w.socket_path())
        .args(["8", "32", USER_B])
        .uid(bob.uid.as_raw())
        .gid(bob.gid.as_raw())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("call_flood");
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let busy = window_logins(&w, 100);
    let measured_for = started.elapsed();
    let mut answered = String::new();
    if let Some(mut out) = flood.stdout.take() {
        let _ = out.read_to_string(&mut answered);
    }
    let _ = flood.wait();
    let answered: u64 = answered.trim().parse().expect("call_flood's count");
    assert!(
        measured_for < Duration::from_secs(6),
        "root's logins ended after the flood: nothing was measured under it"
    );
    let p95 = |t: &[Duration]| t[t.len() * 95 / 100];
    assert!(answered > 1000, "the flood made only {answered} calls");
    assert!(
        p95(&busy) < Duration::from_millis(100),
        "root's window logins under {USER_B}'s flood: p95 {:?} (quiet: {:?})",
        p95(&busy),
        p95(&quiet)
    );
    println!(
        "proved: while {USER_B} had {answered} calls answered on 32 connections in 8 s, root's window logins kept a p95 of {:?} (max {:?}; {:?} without the flood)",
        p95(&busy),
        busy[busy.len() - 1],
        p95(&quiet)
    );
}

#[test]
#[cfg_attr(
    not(as_root),
    ignore = "needs root: logs in as root and as a test user"
)]
fn root_keeps_a_turn_at_the_engine_while_a_users_calls_wait_for_the_database() {
    let w = world_with_a_root_window();
    w.write_service("login", &w.module_line(""));
    let secret_b = w.enrol_confirmed(USER_B, T0 + 30);
    // Another writer holds the database: each of tf-bob's code checks (his own logins, as
    // a screen locker makes them) waits 3 s for it, holding a turn at the engine.
    let blocker = w.lock_database();
    let code_b = code_at_time(&secret_b, T0 + 60); // the next step: T0 + 30 confirmed the factor
    std::thread::scope(|scope| {
        let waiting: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let login = console_transaction(USER_B, &[&code_b]);
                    first_outcome(&w.pam_inprocess_as(Some(USER_B), &[login], &[]))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        let took = window_logins(&w, 1)[0];
        assert!(
            took < Duration::from_millis(1000),
            "root's window login waited {took:?} for a turn that {USER_B}'s calls held"
        );
        for t in waiting {
            let (rc, conv) = t.join().expect("thread");
            assert_ne!(rc, 0, "a code passed without its replay record: {conv:?}");
        }
        println!(
            "proved: while 6 of {USER_B}'s code checks waited for a locked database, root's window login passed in {took:?}"
        );
    });
    drop(blocker);
}
