//! One PostgreSQL cluster for a whole test run on the PostgreSQL store (tests/run.sh):
//! starts it, prints what the tests need as `NAME=value` lines and `ready`, and stops it
//! (removing its directory) when its standard input closes.

use std::io::Read;
use twofold_integration::postgres::Postgres;

fn main() {
    let pg = Postgres::start();
    let password = pg.socket_dir().join("twofold-password");
    pg.write_password_file(&password);
    println!("TWOFOLD_TEST_PG_SOCKET={}", pg.socket_dir().display());
    println!("TWOFOLD_TEST_PG_PORT={}", pg.port());
    println!("TWOFOLD_TEST_PG_PASSWORD_FILE={}", password.display());
    println!("ready");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(pg);
}
