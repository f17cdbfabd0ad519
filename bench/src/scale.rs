//! The scale figures: two more twofoldd, one on a store of 100 users, one on a store of
//! 100,000 users and 1,000,000 trust rows (`pam-bench scale-setup`); the same 100 users
//! log in on both, taking turns. The big store is seeded directly with SQLite in one
//! transaction, after `Store::open` has created the schema (the daemon's migrations).

use crate::{User, mkdir, unix_now, write};
use std::path::Path;
use std::time::Instant;
use twofold_daemon::otp::generate_secret;
use twofold_daemon::random::{OsRandom, Random};

/// The two stores: (directory name under DIR/scale, PAM service).
pub const STORES: [(&str, &str); 2] = [("small", "scale_small"), ("large", "scale_large")];

/// Trust rows are valid for this long from now (a month), so none is purged.
const TRUST_LIFETIME: i64 = 30 * 86_400;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates DIR/scale/{small,large} (store, configuration, socket directory), their PAM
/// services in DIR/pam.d and DIR/scale/users.tsv (the `measured` users, in both stores).
pub fn setup(
    dir: &Path,
    measured: usize,
    users: usize,
    trust: usize,
    module: &Path,
) -> Result<(), String> {
    let random = OsRandom;
    let scale = dir.join("scale");
    mkdir(&scale)?;
    let mine: Vec<User> = (0..measured)
        .map(|i| {
            Ok(User {
                kind: "scale".into(),
                name: format!("scale{i:03}"),
                secret: generate_secret(&random)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let table: String = mine
        .iter()
        .map(|u| format!("{}\t{}\t{}\n", u.kind, u.name, u.secret))
        .collect();
    write(&scale.join("users.tsv"), &table, 0o600)?;
    let d = dir.display();
    for (store, service) in STORES {
        let base = scale.join(store);
        let run = base.join("run");
        mkdir(&run)?;
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", run.display()))?;
        let (total, rows) = if store == "small" {
            (measured, 0)
        } else {
            (users.max(measured), trust)
        };
        let t = Instant::now();
        seed(&base.join("state/twofold.db"), &mine, total, rows, &random)?;
        println!(
            "pam-bench: {store} store: {total} users, {rows} trust rows seeded in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let b = base.display();
        // `bus = "system"`: run.sh starts these daemons where no system bus is reachable
        // (a private mount namespace), so they serve their socket only and own no name.
        write(
            &base.join("twofold.toml"),
            &format!(
                "version = 1\n[daemon]\nbus = \"system\"\nsocket = \"{b}/run/socket\"\ndatabase = \"{b}/state/twofold.db\"\nsyslog_socket = \"{d}/log\"\n[lockout]\nmax_failures = 100\n"
            ),
            0o600,
        )?;
        write(
            &dir.join("pam.d").join(service),
            &format!("auth required {} socket={b}/run/socket\n", module.display()),
            0o644,
        )?;
    }
    Ok(())
}

/// `mine` as pending factors (the first right code activates them, as in the main store),
/// then active users up to `total`, then `trust` trust rows spread evenly over all of
/// them (sessions and devices with random identities, none matching a measured login).
fn seed(
    path: &Path,
    mine: &[User],
    total: usize,
    trust: usize,
    random: &OsRandom,
) -> Result<(), String> {
    let sql = |e: rusqlite::Error| format!("{}: {e}", path.display());
    drop(twofold_daemon::store::Store::open(path).map_err(|e| e.to_string())?);
    let mut conn = rusqlite::Connection::open(path).map_err(sql)?;
    // Seeding only: no journal, no fsync, a big page cache. The daemon's own open sets
    // WAL and synchronous=NORMAL again.
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF; PRAGMA cache_size = -524288;",
    )
    .map_err(sql)?;
    let now = unix_now() as i64;
    let names: Vec<String> = mine
        .iter()
        .map(|u| u.name.clone())
        .chain((mine.len()..total).map(|i| format!("user{i:06}")))
        .collect();
    let tx = conn.transaction().map_err(sql)?;
    {
        let mut pending = tx
            .prepare(
                "INSERT INTO users (name, secret, state, enrolled_at, issued_by_admin)
                 VALUES (?1, ?2, 'pending', ?3, 1)",
            )
            .map_err(sql)?;
        for u in mine {
            pending.execute((&u.name, &u.secret, now)).map_err(sql)?;
        }
        let mut active = tx
            .prepare(
                "INSERT INTO users (name, secret, state, enrolled_at, last_step, last_success,
                     issued_by_admin, generation)
                 VALUES (?1, ?2, 'active', ?3, ?4, ?3, 1, ?5)",
            )
            .map_err(sql)?;
        for (i, name) in names.iter().enumerate().skip(mine.len()) {
            let secret = generate_secret(random)?;
            active
                .execute((name, &secret, now - 86_400, now / 30 - 2880, i as i64))
                .map_err(sql)?;
        }
        let mut row = tx
            .prepare(
                "INSERT INTO trust (id, user, kind, identity_hash, description, service,
                     created_at, last_used, expires_at, idle_seconds, password_stamp)
                 VALUES (?1, ?2, ?3, ?4, 'ssh key from 192.0.2.1', 'sshd', ?5, ?5, ?6, ?7, NULL)",
            )
            .map_err(sql)?;
        let mut bytes = [0u8; 40];
        for i in 0..trust {
            random.fill(&mut bytes)?;
            let name = &names[i % names.len()];
            let device = i % 2 == 0;
            // Ids in insertion order (the counter first) keep the seeding fast; the
            // rest of the id and the identity are random.
            let id = format!("{i:08x}{}", hex(&bytes[..8]));
            row.execute((
                &id,
                name,
                if device { "device" } else { "session" },
                hex(&bytes[8..40]),
                now,
                now + TRUST_LIFETIME,
                if device { 0 } else { 3600 },
            ))
            .map_err(sql)?;
        }
    }
    tx.execute(
        "UPDATE generation_counter SET n = ?1",
        [names.len() as i64 + 1],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    conn.execute_batch("ANALYZE;").map_err(sql)?;
    Ok(())
}

/// VmRSS and VmHWM of a process, in KiB.
pub fn memory(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path}: no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
