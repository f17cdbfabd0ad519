//! A local user's flood of calls: CONNECTIONS peer-to-peer connections to twofoldd's
//! public socket, each calling `Manage.Status` for the user's own account as fast as the
//! daemon answers, for SECONDS. Prints how many calls were answered. For the
//! local-attack tests: root's logins must still be served.
//! Usage: call_flood SOCKET_PATH SECONDS CONNECTIONS USER

use std::time::{Duration, Instant};
use twofold_protocol::ManageProxy;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(seconds), Some(connections), Some(user)) = (
        args.get(1).cloned(),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
        args.get(4).cloned(),
    ) else {
        eprintln!("usage: call_flood SOCKET_PATH SECONDS CONNECTIONS USER");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answered = runtime.block_on(async move {
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (socket, user) = (socket.clone(), user.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(stream) = std::os::unix::net::UnixStream::connect(&socket) else {
                    return 0u64;
                };
                let Ok(conn) = zbus::connection::Builder::unix_stream(stream)
                    .p2p()
                    .build()
                    .await
                else {
                    return 0;
                };
                let Ok(manage) = ManageProxy::new(&conn).await else {
                    return 0;
                };
                let mut n = 0;
                while Instant::now() < end {
                    if manage.status(&user).await.is_ok() {
                        n += 1;
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap_or(0);
        }
        total
    });
    println!("{answered}");
}
