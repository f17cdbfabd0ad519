//! One PostgreSQL cluster for a whole test run on the PostgreSQL store (tests/run.sh):
//! starts it, prints what the tests need as `NAME=value` lines and `ready`, and stops it
//! (removing its directory) when its standard input closes or it is sent SIGTERM, SIGINT
//! or SIGHUP (a run cut short by `timeout` must not leave a server behind).

use nix::sys::signal::{SigSet, Signal};
use std::io::Read;
use twofold_integration::postgres::Postgres;

fn main() {
    let pg = Postgres::start();
    // Blocked after the server started (its processes must not inherit the mask), so
    // that every thread leaves them to the one that waits for them.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().expect("block signals");
    let password = pg.socket_dir().join("twofold-password");
    pg.write_password_file(&password);
    println!("TWOFOLD_TEST_PG_SOCKET={}", pg.socket_dir().display());
    println!("TWOFOLD_TEST_PG_PORT={}", pg.port());
    println!("TWOFOLD_TEST_PG_PASSWORD_FILE={}", password.display());
    println!("ready");
    let (done, finished) = std::sync::mpsc::channel();
    let on_signal = done.clone();
    std::thread::spawn(move || {
        let _ = signals.wait();
        let _ = on_signal.send(());
    });
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut rest);
        let _ = done.send(());
    });
    let _ = finished.recv();
    drop(pg);
}
