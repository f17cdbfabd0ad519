//! The scale figures (issue 18): one more twofoldd per store, serving its socket only,
//! each store seeded directly with SQLite after `SqliteStore::open` made the schema (the
//! daemon's migrations): every size of `--sizes` without trust rows and again with
//! `--trust` rows. The same measured users log in on every store, taking turns (code path,
//! then trusted path); then twofoldctl lists each store while root keeps logging in on
//! its window; last, pam_oath alone on a users file as large as the largest store, so that its
//! rewrite of that file on every login slows no other row.

use crate::stats::{Summary, ms, ms_signed};
use crate::{ModuleRun, PAM_SUCCESS, User, login, mkdir, ratio, unix_now, verdict, write};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use twofold_daemon::otp::generate_secret;
use twofold_daemon::random::{OsRandom, Random};

/// Trust rows are valid for this long from now (a month), so none is purged.
const TRUST_LIFETIME: i64 = 30 * 86_400;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One store of the scale figures, as DIR/scale/stores.tsv lists it.
#[derive(Debug, Clone)]
pub struct StoreSpec {
    pub name: String,
    pub users: usize,
    pub trust: usize,
}

impl StoreSpec {
    fn service(&self) -> String {
        format!("scale_{}", self.name)
    }
}

/// The stores for `sizes` (users; each at least the measured users): each without trust
/// rows, and each again with `trust` rows (unless `trust` is 0).
pub fn stores(sizes: &[usize], trust: usize, measured: usize) -> Vec<StoreSpec> {
    let rows = if trust > 0 { vec![0, trust] } else { vec![0] };
    sizes
        .iter()
        .flat_map(|&n| {
            let users = n.max(measured);
            rows.iter().map(move |&trust| StoreSpec {
                name: match trust {
                    0 => format!("u{users}"),
                    t => format!("u{users}_t{t}"),
                },
                users,
                trust,
            })
        })
        .collect()
}

/// Creates DIR/scale/NAME (store, configuration, socket directory) for every store, their
/// PAM services in DIR/pam.d, pam_oath's large users file, DIR/scale/users.tsv (the
/// `measured` users, in every store) and DIR/scale/stores.tsv.
pub fn setup(
    dir: &Path,
    measured: usize,
    sizes: &[usize],
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
    // twofoldd keeps trust for accounts NSS knows only, so the trusted path is root's
    // (one more pending factor in every store).
    let mut mine = mine;
    mine.push(User {
        kind: "trusted".into(),
        name: "root".into(),
        secret: generate_secret(&random)?,
    });
    let table: String = mine
        .iter()
        .map(|u| format!("{}\t{}\t{}\n", u.kind, u.name, u.secret))
        .collect();
    write(&scale.join("users.tsv"), &table, 0o600)?;
    let specs = stores(sizes, trust, measured);
    let listed: String = specs
        .iter()
        .map(|s| format!("{}\t{}\t{}\n", s.name, s.users, s.trust))
        .collect();
    write(&scale.join("stores.tsv"), &listed, 0o644)?;
    let d = dir.display();
    for spec in &specs {
        let base = scale.join(&spec.name);
        let run = base.join("run");
        mkdir(&run)?;
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", run.display()))?;
        let t = Instant::now();
        seed(
            &base.join("state/twofold.db"),
            &mine,
            spec.users,
            spec.trust,
            &random,
        )?;
        println!(
            "pam-bench: store {}: {} users, {} trust rows seeded in {:.1} s",
            spec.name,
            spec.users,
            spec.trust,
            t.elapsed().as_secs_f64()
        );
        let b = base.display();
        let service = spec.service();
        // `bus = "system"`: run.sh starts these daemons where no system bus is reachable
        // (a private mount namespace), so they serve their socket only and own no name.
        // The service counts as sshd's, so its key logins earn session windows.
        write(
            &base.join("twofold.toml"),
            &format!(
                "version = 1\n[daemon]\nbus = \"system\"\nsocket = \"{b}/run/socket\"\ndatabase = \"{b}/state/twofold.db\"\nsyslog_socket = \"{d}/log\"\n[lockout]\nmax_failures = 100\n[login]\nssh_services = [\"{service}\"]\n"
            ),
            0o600,
        )?;
        write(
            &dir.join("pam.d").join(&service),
            &format!("auth required {} socket={b}/run/socket\n", module.display()),
            0o644,
        )?;
    }
    // pam_oath on as many users as the largest store: the measured users, then others.
    let largest = specs.iter().map(|s| s.users).max().unwrap_or(measured);
    let mut oath = String::new();
    let mut bytes = [0u8; 20];
    for u in mine.iter().filter(|u| u.kind == "scale") {
        let raw = data_encoding::BASE32_NOPAD
            .decode(u.secret.as_bytes())
            .map_err(|e| format!("secret of {}: {e}", u.name))?;
        let _ = writeln!(oath, "HOTP/T30 {} - {}", u.name, hex(&raw));
    }
    for i in measured..largest {
        random.fill(&mut bytes)?;
        let _ = writeln!(oath, "HOTP/T30 user{i:06} - {}", hex(&bytes));
    }
    write(&scale.join("users.oath"), &oath, 0o600)?;
    write(
        &dir.join("pam.d/scale_oath"),
        &format!(
            "auth required pam_oath.so usersfile={}/users.oath window=1\n",
            scale.display()
        ),
        0o644,
    )?;
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
    drop(twofold_daemon::store::SqliteStore::open(path).map_err(|e| e.to_string())?);
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

/// What one store measured.
pub struct StoreFigures {
    spec: StoreSpec,
    /// The database and its WAL, in bytes, after the logins.
    db_bytes: u64,
    code: ModuleRun,
    trusted: ModuleRun,
    /// (VmRSS, VmHWM) in KiB after the logins, and after the listings.
    after_logins: (u64, u64),
    after_listings: (u64, u64),
    list: Listed,
    trust_list: Listed,
}

/// One twofoldctl listing and the trusted logins made while it ran.
struct Listed {
    took: Duration,
    /// Lines twofoldctl printed.
    lines: usize,
    logins: ModuleRun,
}

pub struct Figures {
    stores: Vec<StoreFigures>,
    warmup: usize,
    measured: usize,
    oath: ModuleRun,
    oath_users: usize,
}

fn read_stores(dir: &Path) -> Result<Vec<StoreSpec>, String> {
    let path = dir.join("scale/stores.tsv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
            [name, users, trust] => Ok(StoreSpec {
                name: name.into(),
                users: users.parse().map_err(|e| format!("{l}: {e}"))?,
                trust: trust.parse().map_err(|e| format!("{l}: {e}"))?,
            }),
            _ => Err(format!("{}: bad line {l:?}", path.display())),
        })
        .collect()
}

fn pid_of(dir: &Path, store: &str) -> Result<u32, String> {
    let path = dir.join("scale").join(store).join("pid");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn db_bytes(dir: &Path, store: &str) -> u64 {
    ["twofold.db", "twofold.db-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join("scale").join(store).join("state").join(f))
                .map_or(0, |m| m.len())
        })
        .sum()
}

/// `root`'s trusted logins on `service` (on its session window), over and over while
/// `running`.
fn trusted_logins_while(service: &str, mut running: impl FnMut() -> bool) -> ModuleRun {
    let mut run = ModuleRun::default();
    while running() {
        run.record(&trusted_login(service), "root");
    }
    run
}

fn trusted_login(service: &str) -> crate::Outcome {
    login(
        service,
        "root",
        &[],
        &crate::trusted_env(),
        Some(crate::TRUSTED_RHOST),
    )
}

/// Runs twofoldctl with `args` on `store`'s socket while root logs in on its trusted
/// path; counts the lines it prints.
fn listing(dir: &Path, spec: &StoreSpec, args: &[&str]) -> Result<Listed, String> {
    let ctl = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("twofoldctl");
    let socket = dir.join("scale").join(&spec.name).join("run/socket");
    let started = Instant::now();
    let mut child = std::process::Command::new(&ctl)
        .arg("--socket")
        .arg(&socket)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", ctl.display()))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let counter = std::thread::spawn(move || {
        let (mut lines, mut buf) = (0usize, vec![0u8; 1 << 16]);
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|b| **b == b'\n').count();
        }
        lines
    });
    let logins = trusted_logins_while(&spec.service(), || !counter.is_finished());
    let status = child.wait().map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let lines = counter.join().map_err(|_| "the line counter failed")?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("twofoldctl {args:?} on {}: {err}", spec.name));
    }
    Ok(Listed {
        took,
        lines,
        logins,
    })
}

/// Everything the scale figures measure; see the module's comment.
pub fn measure(dir: &Path) -> Result<Figures, String> {
    let all = crate::read_users(&dir.join("scale/users.tsv"))?;
    let (users, root): (Vec<User>, Vec<User>) = all.into_iter().partition(|u| u.kind == "scale");
    let root = root
        .first()
        .ok_or("no trusted-path user in scale/users.tsv")?;
    let specs = read_stores(dir)?;
    let warmup = 5.min(users.len() / 2);
    let n = specs.len();
    let mut code: Vec<ModuleRun> = (0..n).map(|_| ModuleRun::default()).collect();
    let mut trusted: Vec<ModuleRun> = (0..n).map(|_| ModuleRun::default()).collect();
    // The code path: the measured users, stores taking turns, each user's turn starting
    // with another store.
    for (i, u) in users.iter().enumerate() {
        for k in 0..n {
            let index = (i + k) % n;
            let service = specs[index].service();
            let l = login(&service, &u.name, &[u.code_now()?], &[], None);
            if i < warmup {
                if l.rc != PAM_SUCCESS {
                    return Err(format!("scale warm-up: {service} for {}: {}", u.name, l.rc));
                }
            } else {
                code[index].record(&l, &u.name);
            }
        }
    }
    // The trusted path: root's SSH key login verifies a code once per store (then "n" to
    // "Trust this device?"), which opens a session window; then as many logins on it as
    // the code path measured, stores taking turns.
    let env = crate::trusted_env();
    for spec in &specs {
        let answers = [root.code_now()?, "n".to_string()];
        let l = login(
            &spec.service(),
            "root",
            &answers,
            &env,
            Some(crate::TRUSTED_RHOST),
        );
        if l.rc != PAM_SUCCESS {
            return Err(format!("{}: root's first key login: {}", spec.name, l.rc));
        }
    }
    for i in warmup..users.len() {
        for k in 0..n {
            let index = (i + k) % n;
            trusted[index].record(&trusted_login(&specs[index].service()), "root");
        }
    }
    let mut stores = Vec::new();
    for (spec, (code, trusted)) in specs.iter().zip(code.into_iter().zip(trusted)) {
        code.all_passed(
            &format!("{}, code path", spec.service()),
            users.len() - warmup,
        )?;
        trusted.all_passed(
            &format!("{}, trusted path", spec.service()),
            users.len() - warmup,
        )?;
        let pid = pid_of(dir, &spec.name)?;
        let after_logins = memory(pid)?;
        let list = listing(dir, spec, &["list"])?;
        let trust_list = listing(dir, spec, &["trust", "list", "--all"])?;
        stores.push(StoreFigures {
            spec: spec.clone(),
            db_bytes: db_bytes(dir, &spec.name),
            code,
            trusted,
            after_logins,
            after_listings: memory(pid)?,
            list,
            trust_list,
        });
    }
    // pam_oath last and alone: it rewrites (and fsyncs) its whole users file per login.
    let mut oath = ModuleRun::default();
    for u in users.iter().skip(warmup) {
        oath.record(
            &login("scale_oath", &u.name, &[u.code_now()?], &[], None),
            &u.name,
        );
    }
    let oath_users =
        std::fs::read_to_string(dir.join("scale/users.oath")).map_or(0, |t| t.lines().count());
    Ok(Figures {
        stores,
        warmup,
        measured: users.len() - warmup,
        oath,
        oath_users,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Within `limit` times `base`; the verdict with the figure.
fn within(value: Duration, base: Duration, limit: f64) -> String {
    let r = ratio(value.as_secs_f64(), base.as_secs_f64());
    format!(
        "{} — {r:.2}x ({} against {}{})",
        verdict(r <= limit),
        ms(value),
        ms(base),
        if r <= limit {
            String::new()
        } else {
            format!(
                ", {} over the limit",
                ms_signed(value.as_secs_f64() - limit * base.as_secs_f64())
            )
        }
    )
}

/// The scale section of docs/performance.md. `oath_small` is pam_oath's median in the
/// main table (its users file holds that table's users).
pub fn report(s: &mut String, f: &Figures, oath_small: Duration, oath_small_users: usize) {
    let _ = writeln!(s, "## Scale\n");
    let _ = writeln!(
        s,
        "One more twofoldd per store, serving its socket only; each store seeded directly \
         with SQLite (active factors; trust rows are sessions and remembered devices with \
         random identities, spread evenly over the users, none expired, none matching these \
         logins). The same {} users log in on every store through pam_twofold over the \
         socket (code path), taking turns, after {} unmeasured logins each. The trusted path \
         is root's (twofoldd keeps trust for accounts NSS knows only): an SSH key login \
         verifies a code once per store, which opens a session window, then as many logins \
         on it, stores taking turns. Then, store by store, `twofoldctl list` and \
         `twofoldctl trust list --all` (text, to a pipe; page by page, 500 entries a page) \
         while root keeps logging in on the trusted path. RSS is twofoldd's VmRSS; its peak is VmHWM, the most since it \
         started.\n",
        f.measured, f.warmup
    );
    let _ = writeln!(
        s,
        "| store | users | trust rows | database | code path median (p95) | trusted median (p95) | RSS after logins | `list` | `trust list --all` | logins during listings: median, p95 | peak RSS |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for st in &f.stores {
        let (c, t) = (
            Summary::of(&st.code.totals),
            Summary::of(&st.trusted.totals),
        );
        let mut during = st.list.logins.totals.clone();
        during.extend(&st.trust_list.logins.totals);
        let d = Summary::of(&during);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} MiB | {} ({}) | {} ({}) | {} | {} | {} | {}, {} ({} logins) | {} |",
            st.spec.name,
            st.spec.users,
            st.spec.trust,
            st.db_bytes as f64 / 1048576.0,
            ms(c.median),
            ms(c.p95),
            ms(t.median),
            ms(t.p95),
            mib(st.after_logins.0),
            seconds(st.list.took),
            seconds(st.trust_list.took),
            ms(d.median),
            ms(d.p95),
            during.len(),
            mib(st.after_listings.1),
        );
    }
    let (Some(small), Some(large)) = (
        f.stores.iter().min_by_key(|s| (s.spec.users, s.spec.trust)),
        f.stores.iter().max_by_key(|s| (s.spec.users, s.spec.trust)),
    ) else {
        return;
    };
    let median = |r: &ModuleRun| Summary::of(&r.totals).median;
    let mut during = large.list.logins.totals.clone();
    during.extend(&large.trust_list.logins.totals);
    let p95 = Summary::of(&during).p95;
    let peak = f
        .stores
        .iter()
        .map(|s| s.after_listings.1)
        .max()
        .unwrap_or(0);
    let at = format!(
        "{} users and {} trust rows",
        large.spec.users, large.spec.trust
    );
    let failures: usize = f
        .stores
        .iter()
        .map(|s| s.list.logins.failures.len() + s.trust_list.logins.failures.len())
        .sum();
    let _ = writeln!(
        s,
        "\nEvery listing printed what the store holds: {}. Logins refused during the listings: {failures}.\n",
        f.stores
            .iter()
            .map(|st| format!(
                "{} lines and {} lines on {}",
                st.list.lines, st.trust_list.lines, st.spec.name
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "**Targets** at {at} (issue 18), against {} users:\n\n\
         - code path within 1.1x: {}\n\
         - trusted path within 1.1x: {}\n\
         - `twofoldctl list` under 10 s: {} — {}\n\
         - `twofoldctl trust list --all` under 30 s: {} — {}\n\
         - logins during those listings, p95 under 20 ms: {} — {} ({} logins)\n\
         - twofoldd's RSS under 32 MiB at every moment: {} — peak (VmHWM) {} over all stores\n\
         - twofoldd's RSS at {} users at most 15 MiB after the logins (issue 8): {} — {}\n",
        small.spec.users,
        within(median(&large.code), median(&small.code), 1.1),
        within(median(&large.trusted), median(&small.trusted), 1.1),
        verdict(large.list.took < Duration::from_secs(10)),
        seconds(large.list.took),
        verdict(large.trust_list.took < Duration::from_secs(30)),
        seconds(large.trust_list.took),
        verdict(p95 < Duration::from_millis(20)),
        ms(p95),
        during.len(),
        verdict(peak < 32 * 1024),
        mib(peak),
        large.spec.users,
        verdict(large.after_logins.0 <= 15 * 1024),
        mib(large.after_logins.0),
    );
    let oath = median(&f.oath);
    let _ = writeln!(
        s,
        "pam_oath, measured last and alone on a users file of {} users (it rewrites and \
         fsyncs the whole file on every login): median {} over {} logins, against {} on the \
         main table's file of {} users ({:.1}x). pam_twofold's code path on the largest \
         store: {}.\n",
        f.oath_users,
        ms(oath),
        f.oath.successes,
        ms(oath_small),
        oath_small_users,
        ratio(oath.as_secs_f64(), oath_small.as_secs_f64()),
        ms(median(&large.code)),
    );
}
