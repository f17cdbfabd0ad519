//! A local user's flood of oversized calls to twofoldd: COUNT `Begin` calls whose
//! SSH_AUTH_INFO_0 is MIB MiB, all sent before any reply is read, then the replies
//! awaited for a while. For the local-attack tests.
//! Usage: big_calls BUS_ADDRESS MIB COUNT

use twofold_protocol::{AUTH_INTERFACE, BUS_NAME, LoginContext, OBJECT_PATH};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(address), Some(mib), Some(count)) = (
        args.get(1),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: big_calls BUS_ADDRESS MIB COUNT");
        std::process::exit(2);
    };
    let conn = zbus::connection::Builder::address(address.as_str())
        .method_timeout(std::time::Duration::from_secs(20))
        .build()
        .await
        .expect("connect");
    let context = LoginContext {
        user: "nobody".into(),
        service: "flood".into(),
        ssh_auth_info: "a".repeat(mib << 20),
        ..Default::default()
    };
    let context = std::sync::Arc::new(context);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (conn, context) = (conn.clone(), context.clone());
        calls.spawn(async move {
            conn.call_method(
                Some(BUS_NAME),
                OBJECT_PATH,
                Some(AUTH_INTERFACE),
                "Begin",
                &(&*context,),
            )
            .await
            .is_err()
        });
    }
    let refused = calls.join_all().await.into_iter().filter(|&r| r).count();
    println!("{refused} of {count} refused");
}
