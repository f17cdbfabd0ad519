//! The fleet figures (issue 11): logins/s and latency of several twofoldd on one
//! PostgreSQL database, all at once, against one twofoldd on its SQLite file, in one run;
//! and where the time goes, measured: PostgreSQL's own statistics (pg_stat_statements,
//! pg_stat_database, pg_stat_wal) and the CPU time of every process involved.
//!
//! run.sh starts the cluster (with pg_stat_statements loaded and I/O timing on), imports
//! the main SQLite store into it through the first PostgreSQL daemon, starts the others,
//! and runs `pam-bench fleet` after `measure`; its section is appended to the report.

use crate::dbus::{self, Target, Throughput};
use crate::stats::Summary;
use crate::{User, ratio, read_users};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Unmeasured logins per client on each PostgreSQL daemon before the figure: each pool
/// opens its connections (SCRAM, a new backend, the statements prepared) then.
pub const WARMUP_PER_CLIENT: usize = 2;

/// PostgreSQL's statistics reach the views up to 10 s after a backend's transaction
/// (PGSTAT_IDLE_INTERVAL); pg_stat_database and pg_stat_wal are read again after this.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// Where Debian's postgresql-15 puts psql.
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    dir: PathBuf,
    /// The Markdown section is written here (required but with --warmup-only).
    #[arg(long, required_unless_present = "warmup_only")]
    out: Option<PathBuf>,
    /// The SQLite twofoldd's socket (the baseline: run.sh's main daemon).
    #[arg(long)]
    baseline: PathBuf,
    /// Its pid (for its CPU time).
    #[arg(long)]
    baseline_pid: u32,
    /// The PostgreSQL daemons' sockets, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    sockets: Vec<PathBuf>,
    /// Their pids, in the same order.
    #[arg(long, value_delimiter = ',', required = true)]
    pids: Vec<u32>,
    /// The cluster's data directory: postmaster.pid names the server's pid, port and
    /// socket directory; psql connects there as `postgres` (trusted on the socket).
    #[arg(long)]
    pg_data: PathBuf,
    /// Concurrent clients per daemon.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Only the unmeasured logins on the PostgreSQL daemons (run.sh runs this before
    /// `measure`, so that their statistics have reached PostgreSQL's views when the
    /// figures start).
    #[arg(long)]
    warmup_only: bool,
}

pub fn run(args: &Args) -> Result<(), String> {
    if args.sockets.len() != args.pids.len() {
        return Err("--sockets and --pids: one pid per socket".into());
    }
    let users = read_users(&args.dir.join("users.tsv"))?;
    let of =
        |kind: &str| -> Vec<User> { users.iter().filter(|u| u.kind == kind).cloned().collect() };
    let (baseline_users, warmup, fleet) = (of("fleet-sqlite"), of("fleet-warmup"), of("fleet"));
    let n = args.sockets.len();
    if baseline_users.is_empty() || fleet.len() < n {
        return Err("users.tsv has no fleet users (pam-bench setup makes them)".into());
    }
    let pg = Server::of(&args.pg_data)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let targets: Vec<Target> = args.sockets.iter().cloned().map(Target::Socket).collect();
    let share = |users: &[User]| -> Vec<(Target, Vec<User>)> {
        let per = users.len().div_ceil(n);
        targets
            .iter()
            .cloned()
            .zip(users.chunks(per).map(<[User]>::to_vec))
            .collect()
    };

    // Unmeasured logins on every PostgreSQL daemon: their pools open their connections.
    let marker = args.dir.join("fleet-warmed-up");
    let warm_up = || -> Result<(), String> {
        if !warmup.is_empty() {
            runtime.block_on(dbus::together(&share(&warmup), args.clients))?;
        }
        crate::write(&marker, "", 0o644)
    };
    if args.warmup_only {
        return warm_up();
    }

    // The baseline: one SQLite twofoldd, warm from `measure`.
    let before = Cpu::now(&[args.baseline_pid], &pg)?;
    let baseline = runtime.block_on(dbus::throughput(
        &Target::Socket(args.baseline.clone()),
        &baseline_users,
        args.clients,
    ))?;
    let baseline_cpu = Cpu::now(&[args.baseline_pid], &pg)?.minus(&before);

    // The fleet: every daemon's clients at once, once the warm-up's statistics arrived.
    match std::fs::metadata(&marker).and_then(|m| m.modified()) {
        Ok(done) => {
            std::thread::sleep(STATS_SETTLE.saturating_sub(done.elapsed().unwrap_or_default()))
        }
        Err(_) => {
            warm_up()?;
            std::thread::sleep(STATS_SETTLE);
        }
    }
    let db_before = pg.numbers("twofold", DATABASE_SQL)?;
    let wal_before = pg.numbers("postgres", WAL_SQL)?;
    pg.query("postgres", "SELECT pg_stat_statements_reset()")
        .map_err(|e| format!("{e} (run.sh loads pg_stat_statements)"))?;
    let before = Cpu::now(&args.pids, &pg)?;
    let runs = runtime.block_on(dbus::together(&share(&fleet), args.clients))?;
    let fleet_cpu = Cpu::now(&args.pids, &pg)?.minus(&before);
    let statements = pg.statements()?;
    std::thread::sleep(STATS_SETTLE);
    let db = diff(&pg.numbers("twofold", DATABASE_SQL)?, &db_before);
    let wal = diff(&pg.numbers("postgres", WAL_SQL)?, &wal_before);
    let version = pg.query("postgres", "SHOW server_version")?;
    let settings = pg.query(
        "postgres",
        "SELECT string_agg(name || ' = ' || current_setting(name), ', ' ORDER BY name) \
         FROM pg_settings \
         WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level')",
    )?;

    let figures = Figures {
        baseline,
        baseline_cpu,
        runs,
        fleet_cpu,
        statements,
        db,
        wal,
        version,
        settings,
        warmup: warmup.len(),
    };
    let section = report(&figures);
    let out = args.out.as_deref().ok_or("--out is missing")?;
    std::fs::write(out, &section).map_err(|e| format!("{}: {e}", out.display()))?;
    print!("{section}");
    Ok(())
}

/// pg_stat_database of the fleet's database: these columns, in this order.
const DATABASE_SQL: &str = "SELECT xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, \
     tup_fetched, tup_inserted, tup_updated, tup_deleted, blk_read_time, blk_write_time \
     FROM pg_stat_database WHERE datname = current_database()";
const DATABASE_COLUMNS: [&str; 11] = [
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blk_read_time",
    "blk_write_time",
];
/// pg_stat_wal (the whole cluster; only the fleet's database is busy).
const WAL_SQL: &str = "SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_write_time, wal_sync_time \
     FROM pg_stat_wal";
const WAL_COLUMNS: [&str; 6] = [
    "wal_records",
    "wal_bytes",
    "wal_write",
    "wal_sync",
    "wal_write_time",
    "wal_sync_time",
];

fn diff(after: &[f64], before: &[f64]) -> Vec<f64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// The PostgreSQL server run.sh started, as postmaster.pid describes it.
struct Server {
    pid: u32,
    port: String,
    socket_dir: String,
}

impl Server {
    fn of(data: &Path) -> Result<Server, String> {
        let path = data.join("postmaster.pid");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        match lines[..] {
            [pid, _, _, port, socket_dir, ..] => Ok(Server {
                pid: pid
                    .trim()
                    .parse()
                    .map_err(|e| format!("{}: {e}", path.display()))?,
                port: port.trim().into(),
                socket_dir: socket_dir.trim().into(),
            }),
            _ => Err(format!("{}: too short", path.display())),
        }
    }

    /// `sql` in `database` as `postgres` over the Unix socket; unaligned output, fields
    /// separated by U+001F, one row a line.
    fn query(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(PSQL);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PG") {
                cmd.env_remove(name);
            }
        }
        let out = cmd
            .args(["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-F"])
            .arg("\u{1f}")
            .args(["-h", &self.socket_dir, "-p", &self.port, "-U", "postgres"])
            .args(["-d", database, "-c", sql])
            .output()
            .map_err(|e| format!("{PSQL}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "psql -d {database} -c {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// One row of numbers.
    fn numbers(&self, database: &str, sql: &str) -> Result<Vec<f64>, String> {
        self.query(database, sql)?
            .split('\u{1f}')
            .map(|v| v.trim().parse().map_err(|e| format!("{sql}: {v:?}: {e}")))
            .collect()
    }

    /// pg_stat_statements of the fleet's database since the reset, the costliest first.
    fn statements(&self) -> Result<Vec<Statement>, String> {
        let text = self.query(
            "postgres",
            "SELECT calls, total_exec_time, regexp_replace(query, '\\s+', ' ', 'g') \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = 'twofold' ORDER BY total_exec_time DESC",
        )?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| match l.split('\u{1f}').collect::<Vec<_>>()[..] {
                [calls, time, query] => Ok(Statement {
                    calls: calls.parse().map_err(|e| format!("{l:?}: {e}"))?,
                    exec_ms: time.parse().map_err(|e| format!("{l:?}: {e}"))?,
                    query: query.into(),
                }),
                _ => Err(format!("pg_stat_statements: bad row {l:?}")),
            })
            .collect()
    }
}

struct Statement {
    calls: u64,
    /// Total execution time in the server, ms.
    exec_ms: f64,
    query: String,
}

/// CPU seconds (user + system) used so far.
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// The twofoldd processes measured.
    daemons: f64,
    /// PostgreSQL's backends of the `twofold` role (the daemons' connections).
    backends: f64,
    /// The rest of PostgreSQL: the postmaster, WAL writer, checkpointer, autovacuum, and
    /// children that exited (counted in the postmaster's children's time).
    server: f64,
    /// This process: the clients.
    client: f64,
}

impl Cpu {
    fn now(daemons: &[u32], pg: &Server) -> Result<Cpu, String> {
        let mut cpu = Cpu::default();
        for &pid in daemons {
            cpu.daemons += stat(&pid.to_string())?.own;
        }
        cpu.client = stat("self")?.own;
        let main = stat(&pg.pid.to_string())?;
        cpu.server = main.own + main.children;
        let entries = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // A process may end between the listing and the read: skip it.
            let Ok(s) = stat(&name) else { continue };
            if s.ppid != pg.pid {
                continue;
            }
            let cmdline = std::fs::read(format!("/proc/{name}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"postgres: twofold twofold") {
                cpu.backends += s.own;
            } else {
                cpu.server += s.own;
            }
        }
        Ok(cpu)
    }

    fn minus(&self, before: &Cpu) -> Cpu {
        Cpu {
            daemons: self.daemons - before.daemons,
            backends: self.backends - before.backends,
            server: self.server - before.server,
            client: self.client - before.client,
        }
    }

    fn postgres(&self) -> f64 {
        self.backends + self.server
    }

    fn total(&self) -> f64 {
        self.daemons + self.postgres() + self.client
    }
}

struct Stat {
    ppid: u32,
    /// utime + stime, seconds (all threads, the exited ones too).
    own: f64,
    /// cutime + cstime: children waited for.
    children: f64,
}

/// /proc/PID/stat's parent and CPU times.
fn stat(pid: &str) -> Result<Stat, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // After the command's ")": state, ppid, ..., utime (field 14), stime, cutime, cstime.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("{path}: no ')'"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("{path}: field {}", i + 3))
    };
    let hz = clock_ticks();
    Ok(Stat {
        ppid: num(1)? as u32,
        own: (num(11)? + num(12)?) / hz,
        children: (num(13)? + num(14)?) / hz,
    })
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

struct Figures {
    baseline: Throughput,
    baseline_cpu: Cpu,
    /// One per PostgreSQL daemon, all at once.
    runs: Vec<Throughput>,
    fleet_cpu: Cpu,
    statements: Vec<Statement>,
    /// Differences over the fleet's logins, in DATABASE_COLUMNS' and WAL_COLUMNS' order.
    db: Vec<f64>,
    wal: Vec<f64>,
    version: String,
    settings: String,
    warmup: usize,
}

fn column(values: &[f64], names: &[&str], name: &str) -> f64 {
    names
        .iter()
        .position(|n| *n == name)
        .and_then(|i| values.get(i))
        .copied()
        .unwrap_or(0.0)
}

/// Seconds as milliseconds with three decimals.
fn ms_f(seconds: f64) -> String {
    format!("{:.3} ms", seconds * 1e3)
}

fn report(f: &Figures) -> String {
    let mut s = String::new();
    let daemons = f.runs.len();
    let clients = f.baseline.clients;
    let mut all = Throughput {
        target: "socket",
        clients: clients * daemons,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        begins: Vec::new(),
        answers: Vec::new(),
    };
    for r in &f.runs {
        all.elapsed = all.elapsed.max(r.elapsed);
        all.latencies.extend(&r.latencies);
        all.begins.extend(&r.begins);
        all.answers.extend(&r.answers);
    }
    let logins = all.latencies.len() as f64;
    let base_logins = f.baseline.latencies.len() as f64;

    let _ = writeln!(s, "\n## Fleet: {daemons} twofoldd on one PostgreSQL\n");
    let _ = writeln!(
        s,
        "First one twofoldd on its SQLite file (the main daemon of this run, warm from the \
         figures above) with {clients} clients; then {daemons} twofoldd on one PostgreSQL \
         database ({}; {}; on this machine, over TCP to 127.0.0.1 with SCRAM, no TLS), \
         `{clients}` clients each, all {} started together, each daemon's clients on its own share \
         of the users (after {} unmeasured logins that open the daemons' connections). Each \
         daemon has its own configuration, socket and `[fleet] host`; the SQLite store was \
         copied into PostgreSQL with `twofoldctl store import`. Clients as in the throughput \
         table: one connection each, opened beforehand, `Begin` then `Answer`, each user \
         once (users that are not accounts, as there), every login must pass; all clients \
         share one current-thread runtime in one process. The SQLite phase logs in as many \
         users as the fleet's. *time* runs from the common start to a daemon's last \
         login.\n",
        f.version,
        f.settings,
        clients * daemons,
        f.warmup,
    );
    let _ = writeln!(
        s,
        "| store | daemons | clients | logins | time | logins/s | latency median | latency p95 | `Begin` median | `Answer` median |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let row = |s: &mut String, store: &str, daemons: usize, t: &Throughput| {
        let _ = writeln!(s, "| {store} | {daemons} | {} |", t.cells());
    };
    row(&mut s, "SQLite", 1, &f.baseline);
    for (i, r) in f.runs.iter().enumerate() {
        row(&mut s, &format!("PostgreSQL, host{}", i + 1), 1, r);
    }
    row(&mut s, "**PostgreSQL, all**", daemons, &all);
    let (fleet_rate, base_rate) = (all.rate(), f.baseline.rate());
    let _ = writeln!(
        s,
        "\n**Fleet / SQLite**: {fleet_rate:.0} / {base_rate:.0} logins/s = **{:.2}x** \
         ({daemons} daemons on PostgreSQL against one on SQLite, on the same machine).\n",
        ratio(fleet_rate, base_rate),
    );

    // Where the time goes.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per = |seconds: f64, n: f64| if n > 0.0 { seconds / n } else { 0.0 };
    let (b, c) = (&f.baseline_cpu, &f.fleet_cpu);
    let busy = |cpu: &Cpu, t: &Throughput| 100.0 * cpu.total() / (cpus * t.elapsed.as_secs_f64());
    let _ = writeln!(s, "### Where the time goes\n");
    let _ = writeln!(
        s,
        "CPU time (user + system, from `/proc/PID/stat`) of each process over each phase, \
         per login:\n"
    );
    let _ = writeln!(
        s,
        "| CPU per login | SQLite, 1 daemon | PostgreSQL, {daemons} daemons |"
    );
    let _ = writeln!(s, "|---|---|---|");
    for (what, x, y) in [
        ("twofoldd (all of them)", b.daemons, c.daemons),
        ("PostgreSQL: the daemons' backends", b.backends, c.backends),
        (
            "PostgreSQL: the rest (postmaster, WAL writer, checkpointer, autovacuum)",
            b.server,
            c.server,
        ),
        ("the clients (pam-bench)", b.client, c.client),
        ("**all**", b.total(), c.total()),
    ] {
        let _ = writeln!(
            s,
            "| {what} | {} | {} |",
            ms_f(per(x, base_logins)),
            ms_f(per(y, logins))
        );
    }
    let _ = writeln!(
        s,
        "| CPUs busy (all CPU time / ({cpus:.0} CPUs x time)) | {:.0}% | {:.0}% |\n",
        busy(b, &f.baseline),
        busy(c, &all),
    );

    let calls: u64 = f.statements.iter().map(|st| st.calls).sum();
    let exec: f64 = f.statements.iter().map(|st| st.exec_ms).sum();
    let db = |name: &str| column(&f.db, &DATABASE_COLUMNS, name);
    let wal = |name: &str| column(&f.wal, &WAL_COLUMNS, name);
    let (commits, syncs) = (db("xact_commit"), wal("wal_sync"));
    let _ = writeln!(
        s,
        "PostgreSQL's own view of the fleet's {} logins (pg_stat_statements, reset before \
         them; pg_stat_database and pg_stat_wal before and after, read {} s after the last \
         login, when the backends have reported):\n",
        all.latencies.len(),
        STATS_SETTLE.as_secs()
    );
    let _ = writeln!(s, "| per login | value |");
    let _ = writeln!(s, "|---|---|");
    for (what, v) in [
        (
            "transactions committed (`xact_commit`)",
            format!("{:.2}", commits / logins),
        ),
        (
            "transactions rolled back",
            format!("{:.2}", db("xact_rollback") / logins),
        ),
        (
            "statements (pg_stat_statements calls, `BEGIN` and `COMMIT` included; each a round trip)",
            format!("{:.2}", calls as f64 / logins),
        ),
        (
            "the server's execution time of those statements",
            format!("{:.3} ms", exec / logins),
        ),
        (
            "rows read (`tup_returned` + `tup_fetched`) / written (`tup_inserted` + `tup_updated` + `tup_deleted`)",
            format!(
                "{:.1} / {:.1}",
                (db("tup_returned") + db("tup_fetched")) / logins,
                (db("tup_inserted") + db("tup_updated") + db("tup_deleted")) / logins
            ),
        ),
        (
            "blocks read from the kernel (`blks_read`) / found in shared buffers; read time",
            format!(
                "{:.2} / {:.1}; {:.3} ms",
                db("blks_read") / logins,
                db("blks_hit") / logins,
                db("blk_read_time") / logins
            ),
        ),
        (
            "WAL records / bytes",
            format!(
                "{:.1} / {:.0} B",
                wal("wal_records") / logins,
                wal("wal_bytes") / logins
            ),
        ),
        (
            "WAL flushes to disk (`wal_sync`, fsync at commit) and their time",
            format!(
                "{:.2}, {:.3} ms ({:.3} ms each)",
                syncs / logins,
                wal("wal_sync_time") / logins,
                per(wal("wal_sync_time"), syncs)
            ),
        ),
    ] {
        let _ = writeln!(s, "| {what} | {v} |");
    }
    let _ = writeln!(
        s,
        "\nThe statements, costliest first (calls and server time per login; parameters as \
         `$n`). `Begin` is one statement outside a transaction (for these users, who are no \
         accounts, the `phantoms` row; for an account, its `users` row); `Answer`'s code \
         check is one transaction under the user's advisory lock:\n"
    );
    let _ = writeln!(
        s,
        "| statement | calls per login | server time per login | mean |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for st in f.statements.iter().take(12) {
        let mut q: String = st.query.chars().take(110).collect();
        if q.len() < st.query.len() {
            q.push('…');
        }
        let _ = writeln!(
            s,
            "| `{}` | {:.2} | {:.3} ms | {:.3} ms |",
            q.replace('|', "\\|").replace('`', "'"),
            st.calls as f64 / logins,
            st.exec_ms / logins,
            per(st.exec_ms, st.calls as f64),
        );
    }
    if f.statements.len() > 12 {
        let _ = writeln!(
            s,
            "| ({} more) | {:.2} | {:.3} ms | |",
            f.statements.len() - 12,
            f.statements.iter().skip(12).map(|st| st.calls).sum::<u64>() as f64 / logins,
            f.statements
                .iter()
                .skip(12)
                .map(|st| st.exec_ms)
                .sum::<f64>()
                / logins,
        );
    }

    // The summary, from the figures above.
    let lat = Summary::of(&all.latencies).median.as_secs_f64();
    let fleet_busy = busy(c, &all);
    let bound = if fleet_busy >= 85.0 {
        format!(
            "the fleet figure is bound by CPU: the database, the {daemons} daemons and the \
             clients share these {cpus:.0} CPUs, and {cpus:.0} CPUs / {} of CPU per login \
             = {:.0} logins/s, close to the {fleet_rate:.0} measured; a login's latency is \
             then mostly waiting for a CPU (on a real fleet the database has CPUs of its own \
             and each host runs only its own daemon)",
            ms_f(per(c.total(), logins)),
            cpus / per(c.total(), logins),
        )
    } else {
        format!(
            "the CPUs were not saturated ({fleet_busy:.0}% busy): the rest of a login's \
             latency is waiting — for round trips, for a turn at a daemon's engine calls \
             (4 at once), for the WAL flush"
        )
    };
    let _ = writeln!(
        s,
        "\n**Summary.** On PostgreSQL a login (`Begin` + `Answer`) was {:.2} transactions \
         and {:.1} statements, each a round trip from twofoldd to the server, which spent \
         {:.3} ms per login executing them against a median latency of {}; its WAL was \
         flushed {:.2} times per login ({:.3} ms each). Per login the CPUs spent {} in \
         twofoldd, {} in PostgreSQL (of it {} in the daemons' backends) and {} in the \
         clients: {} in all, against {} for a SQLite login ({} in twofoldd, {} in the \
         clients), {:.1}x as much; twofoldd's own share grew by {} per login, its side of \
         the round trips in place of SQLite's work in its process. {}.\n",
        commits / logins,
        calls as f64 / logins,
        exec / logins,
        ms_f(lat),
        syncs / logins,
        per(wal("wal_sync_time"), syncs),
        ms_f(per(c.daemons, logins)),
        ms_f(per(c.postgres(), logins)),
        ms_f(per(c.backends, logins)),
        ms_f(per(c.client, logins)),
        ms_f(per(c.total(), logins)),
        ms_f(per(b.total(), base_logins)),
        ms_f(per(b.daemons, base_logins)),
        ms_f(per(b.client, base_logins)),
        ratio(per(c.total(), logins), per(b.total(), base_logins)),
        ms_f(per(c.daemons, logins) - per(b.daemons, base_logins)),
        capitalize(&bound),
    );
    s
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
