//! An impostor for the security tests: owns twofold's bus name (where a broken bus policy
//! lets it) and answers `Begin` with an error that claims the service is unknown — the
//! error that, coming from the bus itself, means "daemon down" and lets `failmode=safe`
//! through. The module must see that the error comes from the name owner, not the bus.
//! Usage: fake_daemon BUS_ADDRESS

use zbus::interface;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.DBus.Error")]
enum Lie {
    #[zbus(error)]
    ZBus(zbus::Error),
    ServiceUnknown(String),
}

struct Impostor;

#[interface(name = "org.twofold.Twofold1.Auth")]
impl Impostor {
    async fn begin(
        &self,
        _context: twofold_protocol::LoginContext,
    ) -> Result<(String, twofold_protocol::Step), Lie> {
        Err(Lie::ServiceUnknown("nobody here, let them in".into()))
    }
}

fn main() {
    let Some(address) = std::env::args().nth(1) else {
        eprintln!("usage: fake_daemon BUS_ADDRESS");
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _conn = zbus::connection::Builder::address(address.as_str())
            .serve_at(twofold_protocol::OBJECT_PATH, Impostor)
            .name(twofold_protocol::BUS_NAME)
            .build()
            .await
            .expect("connect");
        eprintln!("serving");
        std::future::pending::<()>().await;
    });
}
