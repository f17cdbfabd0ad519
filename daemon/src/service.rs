//! The D-Bus face of the engine: identifies each caller through the bus daemon (once per
//! connection), then runs the engine off the runtime's thread (see [`Shared::run`]).

use crate::authz::Caller;
use crate::engine::{ApiError, Engine, Paced};
use crate::peer::SocketPeer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use twofold_protocol::{Deferral, EnrolmentOffer, LoginContext, Step, TrustInfo, UserStatus};
use zbus::{fdo, interface, message::Header};

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.twofold.Twofold1.Error")]
pub enum TwofoldError {
    #[zbus(error)]
    ZBus(zbus::Error),
    PermissionDenied(String),
    InvalidInput(String),
    UnknownUser(String),
    NotEnrolled(String),
    AlreadyEnrolled(String),
    WrongCode(String),
    NoConversation(String),
    Store(String),
}

impl From<ApiError> for TwofoldError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        match e {
            ApiError::PermissionDenied(_) => TwofoldError::PermissionDenied(text),
            ApiError::InvalidInput(_) => TwofoldError::InvalidInput(text),
            ApiError::UnknownUser(_) => TwofoldError::UnknownUser(text),
            ApiError::NotEnrolled(_) => TwofoldError::NotEnrolled(text),
            ApiError::AlreadyEnrolled(_) => TwofoldError::AlreadyEnrolled(text),
            ApiError::WrongCode(_) => TwofoldError::WrongCode(text),
            ApiError::NoConversation => TwofoldError::NoConversation(text),
            ApiError::Store(_) => TwofoldError::Store(text),
        }
    }
}

/// What both interfaces share.
#[derive(Clone)]
pub struct Shared {
    engine: Arc<Engine>,
    /// The bus driver, to identify callers on the bus; None when serving the socket only.
    dbus: Option<fdo::DBusProxy<'static>>,
    /// Which connection to the bus this is (see [`Shared::on_bus`]): a bus daemon that
    /// starts again gives out the same unique names again.
    bus_generation: u64,
    /// uid and pid per unique bus name: a connection's credentials never change and the
    /// bus never reuses a unique name, so each caller costs one lookup, not one per call.
    callers: Arc<Mutex<HashMap<String, Credentials>>>,
    lookups: Arc<Mutex<Lookups>>,
    engine_calls: Arc<tokio::sync::Semaphore>,
    /// A turn kept for root's calls (sshd, sudo, login, twofoldctl as root): no local
    /// user's flood of calls can take every turn.
    root_calls: Arc<tokio::sync::Semaphore>,
    /// Turns for the listings, apart: they read on a connection of their own, so a
    /// flood of them waits for these turns and never for a login's.
    listing_calls: Arc<tokio::sync::Semaphore>,
    /// Holds the replies that must not come back sooner than the timing floor.
    pacer: crate::pacing::Pacer,
}

/// Listings that run at once: one per read-only connection (`StorePool::reader`).
const LISTINGS_AT_ONCE: usize = 1;

/// How long a call waits for a turn at the engine (all turns taken by calls that wait for
/// the database) before it fails closed.
const WAIT_FOR_ENGINE: Duration = Duration::from_secs(5);

/// A caller's uid and pid, as the bus reported them.
type Credentials = (u32, Option<u32>);

/// Known callers kept at most; the cache starts over beyond it.
const MAX_CACHED_CALLERS: usize = 4096;

/// The largest call body read. The biggest real call, `Begin` with a 16 KiB
/// SSH_AUTH_INFO_0 and five 1 KiB fields, is about 21 KiB; anything larger is refused
/// before the daemon waits for anything, so it holds no memory for long.
pub const MAX_BODY_BYTES: u32 = 64 * 1024;
/// How long the daemon waits for the bus to say who a caller is.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);
/// Credential look-ups in flight, per bus connection and in all: a caller is unknown
/// until its look-up returns, so the bound cannot be per uid yet. Each holds one call of
/// at most [`MAX_BODY_BYTES`] for at most [`CREDENTIALS_TIMEOUT`].
const MAX_LOOKUPS_PER_CONNECTION: usize = 4;
const MAX_LOOKUPS: usize = 512;

/// Credential look-ups in flight by unique bus name.
#[derive(Default)]
struct Lookups {
    by_name: HashMap<String, usize>,
    total: usize,
}

/// One look-up in flight; counted until dropped.
struct LookupSlot {
    lookups: Arc<Mutex<Lookups>>,
    name: String,
}

impl LookupSlot {
    fn take(lookups: &Arc<Mutex<Lookups>>, name: &str) -> Option<LookupSlot> {
        let mut l = lookups.lock().ok()?;
        let mine = l.by_name.get(name).copied().unwrap_or(0);
        if mine >= MAX_LOOKUPS_PER_CONNECTION || l.total >= MAX_LOOKUPS {
            return None;
        }
        l.by_name.insert(name.to_owned(), mine + 1);
        l.total += 1;
        Some(LookupSlot {
            lookups: lookups.clone(),
            name: name.to_owned(),
        })
    }
}

impl Drop for LookupSlot {
    fn drop(&mut self) {
        if let Ok(mut l) = self.lookups.lock() {
            l.total = l.total.saturating_sub(1);
            match l.by_name.get_mut(&self.name) {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    l.by_name.remove(&self.name);
                }
            }
        }
    }
}

impl Shared {
    pub fn new(engine: Arc<Engine>) -> std::io::Result<Shared> {
        // One engine call per database connection (see [`Shared::run`]), one of them
        // root's alone when there is more than one.
        let connections = engine.store_connections().max(1);
        let root_turns = usize::from(connections > 1);
        Ok(Shared {
            pacer: crate::pacing::Pacer::start()?,
            engine_calls: Arc::new(tokio::sync::Semaphore::new(connections - root_turns)),
            root_calls: Arc::new(tokio::sync::Semaphore::new(root_turns)),
            listing_calls: Arc::new(tokio::sync::Semaphore::new(LISTINGS_AT_ONCE)),
            engine,
            dbus: None,
            bus_generation: 0,
            callers: Arc::default(),
            lookups: Arc::default(),
        })
    }

    /// The same engine and turns, for callers on the bus `dbus` is the driver of: the
    /// `generation`th connection to a bus. Callers are identified afresh and their
    /// conversations are bound to names of this connection only, so a client of a bus
    /// daemon that started again, given an earlier client's unique name, is not taken
    /// for it.
    pub fn on_bus(&self, dbus: fdo::DBusProxy<'static>, generation: u64) -> Shared {
        Shared {
            dbus: Some(dbus),
            bus_generation: generation,
            callers: Arc::default(),
            lookups: Arc::default(),
            ..self.clone()
        }
    }

    /// The caller's uid and pid as the bus daemon knows them. No uid: no service.
    /// Oversized calls are refused first, and the look-up is bounded in time and number.
    async fn caller(
        &self,
        header: &Header<'_>,
        peer: Option<&SocketPeer>,
    ) -> Result<Caller, TwofoldError> {
        let denied = |why: &str| TwofoldError::PermissionDenied(why.to_string());
        if header.primary().body_len() > MAX_BODY_BYTES {
            return Err(TwofoldError::InvalidInput(format!(
                "the call is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            )));
        }
        if let Some(peer) = peer {
            return Ok(peer.current());
        }
        let sender = header
            .sender()
            .ok_or_else(|| denied("the call has no sender"))?
            .to_owned();
        let bus_name = format!("bus{}/{sender}", self.bus_generation);
        let known = self
            .callers
            .lock()
            .ok()
            .and_then(|c| c.get(&bus_name).copied());
        if let Some((uid, pid)) = known {
            return Ok(Caller { uid, pid, bus_name });
        }
        let _slot = LookupSlot::take(&self.lookups, &bus_name)
            .ok_or_else(|| denied("too many calls waiting to be identified; try again"))?;
        let dbus = self
            .dbus
            .as_ref()
            .ok_or_else(|| denied("cannot identify the caller"))?;
        let creds = tokio::time::timeout(
            CREDENTIALS_TIMEOUT,
            dbus.get_connection_credentials(sender.clone().into()),
        )
        .await
        .map_err(|_| denied("the bus did not say who the caller is in time"))?
        .map_err(|_| denied("cannot identify the caller"))?;
        let uid = creds
            .unix_user_id()
            .ok_or_else(|| denied("the bus did not report the caller's uid"))?;
        let pid = creds.process_id();
        if let Ok(mut cache) = self.callers.lock() {
            if cache.len() >= MAX_CACHED_CALLERS {
                cache.clear();
            }
            cache.insert(bus_name.clone(), (uid, pid));
        }
        Ok(Caller { uid, pid, bus_name })
    }

    /// Ends the conversations of a peer whose connection closed.
    pub fn disconnected(&self, peer: &Caller) {
        self.engine.end_conversations_of(&peer.bus_name);
    }

    /// Runs `f` on this thread, after handing the runtime's other work to another thread
    /// (`block_in_place`): the call pays no thread wake-up, and a call that waits for the
    /// store (another writer's lock, a slow disk) holds only its own thread and database
    /// connection while every other call goes on. At most as many run at once as the
    /// store has connections; a call waits at most 5 s for its turn, and a
    /// panic in the engine ends only this call, as a refusal.
    async fn run<T>(
        &self,
        caller_uid: u32,
        f: impl FnOnce(&Engine) -> Result<T, ApiError>,
    ) -> Result<T, TwofoldError> {
        let shared = self.engine_calls.acquire();
        let turn = async {
            if caller_uid != 0 {
                return shared.await;
            }
            // Root takes whichever turn comes first: its own or a shared one.
            tokio::select! {
                t = self.root_calls.acquire() => t,
                t = shared => t,
            }
        };
        self.run_with_turn(turn, f).await
    }

    /// [`Shared::run`] for a page of a listing, with the listings' own turns.
    async fn run_listing<T>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, ApiError>,
    ) -> Result<T, TwofoldError> {
        self.run_with_turn(self.listing_calls.acquire(), f).await
    }

    async fn run_with_turn<'a, T>(
        &self,
        turn: impl std::future::Future<
            Output = Result<tokio::sync::SemaphorePermit<'a>, tokio::sync::AcquireError>,
        >,
        f: impl FnOnce(&Engine) -> Result<T, ApiError>,
    ) -> Result<T, TwofoldError> {
        let busy = || TwofoldError::Store("twofold is busy; try again".into());
        let _turn = tokio::time::timeout(WAIT_FOR_ENGINE, turn)
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let engine = &self.engine;
        tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(engine)))
        })
        .map_err(|_| TwofoldError::Store("twofold could not finish the call".into()))?
        .map_err(TwofoldError::from)
    }
}

impl Shared {
    /// The reply, once its hold is over (the engine turn is given back first).
    async fn after_its_hold<T>(
        &self,
        paced: Paced<Result<T, ApiError>>,
    ) -> Result<T, TwofoldError> {
        self.pacer.hold(paced.hold).await;
        paced.reply.map_err(TwofoldError::from)
    }
}

/// The login interface, with the peer when served on twofoldd's own socket (identified
/// by the socket's SO_PEERCRED), or `None` on the bus (identified by the bus daemon).
pub struct AuthService(pub Shared, pub Option<SocketPeer>);

#[interface(name = "org.twofold.Twofold1.Auth")]
impl AuthService {
    async fn begin(
        &self,
        context: LoginContext,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(String, Step), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        let paced = self
            .0
            .run(caller.uid, move |e| Ok(e.begin_paced(&caller, context)))
            .await?;
        self.0.after_its_hold(paced).await
    }

    async fn answer(
        &self,
        conversation: String,
        response: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Step, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        let paced = self
            .0
            .run(caller.uid, move |e| {
                Ok(e.answer_paced(&caller, &conversation, &response))
            })
            .await?;
        self.0.after_its_hold(paced).await
    }

    async fn cancel(
        &self,
        conversation: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| {
                e.cancel(&caller, &conversation);
                Ok(())
            })
            .await
    }
}

/// Enrolment and administration; the peer as for [`AuthService`].
pub struct ManageService(pub Shared, pub Option<SocketPeer>);

#[interface(name = "org.twofold.Twofold1.Manage")]
impl ManageService {
    async fn enrol(
        &self,
        user: String,
        replace: bool,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<EnrolmentOffer, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.enrol(&caller, &user, replace))
            .await
    }

    async fn confirm_enrolment(
        &self,
        user: String,
        code: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| {
                e.confirm_enrolment(&caller, &user, &code)
            })
            .await
    }

    async fn status(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<UserStatus, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.status(&caller, &user))
            .await
    }

    async fn list(
        &self,
        after: String,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(Vec<UserStatus>, String), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run_listing(move |e| e.list(&caller, &after, limit))
            .await
    }

    async fn reset(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<bool, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.reset(&caller, &user))
            .await
    }

    async fn unlock(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.unlock(&caller, &user))
            .await
    }

    async fn trust_list(
        &self,
        user: String,
        after: String,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(Vec<TrustInfo>, String), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run_listing(move |e| e.trust_list(&caller, &user, &after, limit))
            .await
    }

    async fn trust_revoke(
        &self,
        user: String,
        id: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<u32, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.trust_revoke(&caller, &user, &id))
            .await
    }

    async fn grace_set(
        &self,
        subject: String,
        until: i64,
        reason: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| {
                e.grace_set(&caller, &subject, until, &reason)
            })
            .await
    }

    async fn grace_list(
        &self,
        after: String,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(Vec<Deferral>, String), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run_listing(move |e| e.grace_list(&caller, &after, limit))
            .await
    }

    async fn grace_clear(
        &self,
        subject: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<bool, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.grace_clear(&caller, &subject))
            .await
    }
    async fn user_set_email(
        &self,
        user: String,
        address: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.set_email(&caller, &user, &address))
            .await
    }

    async fn user_set_phone(
        &self,
        user: String,
        number: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.set_phone(&caller, &user, &number))
            .await
    }

    async fn user_set_security_keys(
        &self,
        user: String,
        fingerprints: Vec<String>,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| {
                e.set_security_keys(&caller, &user, &fingerprints)
            })
            .await
    }

    async fn store_check(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String)>, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.store_check(&caller))
            .await
    }

    async fn store_migrate(
        &self,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<(i64, i64), TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.store_migrate(&caller))
            .await
    }

    async fn store_import(
        &self,
        path: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<(String, String)>, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| e.store_import(&caller, &path))
            .await
    }

    async fn recovery_regenerate(
        &self,
        user: String,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<Vec<String>, TwofoldError> {
        let caller = self.0.caller(&header, self.1.as_ref()).await?;
        self.0
            .run(caller.uid, move |e| {
                e.regenerate_recovery_codes(&caller, &user)
            })
            .await
    }
}
