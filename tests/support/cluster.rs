//! Throwaway PostgreSQL servers for the tests, started with `scripts/pg-throwaway`.
//!
//! [`pg()`] is the test binary's stock server: started on first use, shared by every test of
//! the binary, and stopped when the process exits: by an `atexit` handler of the process that
//! started it (so that a failed run leaves no server behind either), and, if the process was
//! killed, by the script's watchdog. [`Pg::start`] starts a further server (`--replication`,
//! a standby, ...) that the watchdog stops with the process, or [`Pg::stop`] earlier. A
//! missing PostgreSQL is a test failure, never a skip.

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

use super::run;

/// The repository's root (where `scripts/` is).
pub fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// Run `scripts/pg-throwaway` with `args` (watched by this process: everything it starts goes
/// away when the process exits) and return the KEY=VALUE lines it printed.
pub fn throwaway(args: &[&str]) -> HashMap<String, String> {
    let pid = std::process::id().to_string();
    let mut cmd = Command::new(format!("{}/scripts/pg-throwaway", root()));
    cmd.args(args).args(["--watch-pid", &pid]);
    // PostgreSQL 15 (and openssl) are test prerequisites: a missing one fails here.
    run(&mut cmd, &format!("pg-throwaway {args:?}"))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Immediate shutdown of what pg-throwaway started in `dir`, and removal of `dir`.
pub fn stop_dir(dir: &str) {
    let _ = Command::new(format!("{}/scripts/pg-throwaway", root()))
        .args(["stop", dir])
        .status();
}

pub struct Pg {
    pub vars: HashMap<String, String>,
}

impl Pg {
    /// A new server of this process: `pg-throwaway start` (or `start-standby PRIMARY_DIR`)
    /// with `args`.
    pub fn start(args: &[&str]) -> Pg {
        Pg {
            vars: throwaway(args),
        }
    }

    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("pg-throwaway did not print {k}"))
    }
    pub fn port(&self) -> u16 {
        self.var("FW_PG_PORT").parse().unwrap()
    }
    /// The cluster's directory (`FW_PG_DIR`: data/, tls/, sock/, log/).
    pub fn dir(&self) -> &str {
        self.var("FW_PG_DIR")
    }
    /// Trust over the Unix socket.
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} dbname={} user=fw_trust",
            self.var("FW_PG_SOCKET_DIR"),
            self.var("FW_PG_PORT"),
            self.var("FW_PG_DB")
        )
    }
    /// TCP on 127.0.0.1 as `user` with `password`.
    pub fn tcp_conninfo(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={} user={} password={} sslmode=disable",
            self.var("FW_PG_PORT"),
            self.var("FW_PG_DB"),
            user,
            password
        )
    }
    /// TLS on 127.0.0.1 as `fw_tls_only` (who may only log in over TLS), the server's
    /// certificate verified against the test CA (`sslmode=verify-full`), then `extra`.
    pub fn tls_conninfo(&self, extra: &str) -> String {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} dbname={} user=fw_tls_only \
             password=tls-secret sslmode=verify-full sslrootcert={} connect_timeout=10 {extra}",
            self.port(),
            self.var("FW_PG_DB"),
            self.var("FW_PG_SSLROOTCERT")
        )
    }
    /// Run SQL with psql over the socket as the superuser and return its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGHOST", self.var("FW_PG_SOCKET_DIR"))
            .env("PGPORT", self.var("FW_PG_PORT"))
            .env("PGDATABASE", self.var("FW_PG_DB"))
            .env("PGUSER", "fw_trust");
        run(
            &mut cmd,
            &format!("psql on port {}: {sql}", self.var("FW_PG_PORT")),
        )
    }
    /// The lines psql prints for `sql` (unaligned, tuples only): one per row.
    pub fn lines(&self, sql: &str) -> Vec<String> {
        let out = self.psql(sql);
        let out = out.strip_suffix('\n').unwrap_or(&out);
        if out.is_empty() {
            return Vec::new();
        }
        out.split('\n').map(str::to_string).collect()
    }
    /// `pg_ctl -D <data> args` as the cluster's owner (the postgres OS user when root).
    pub fn pg_ctl(&self, args: &[&str]) {
        let bin =
            std::env::var("FW_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let pg_ctl = format!("{bin}/pg_ctl");
        let data = format!("{}/data", self.dir());
        let mut cmd = if rustix::process::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &pg_ctl]);
            c
        } else {
            Command::new(&pg_ctl)
        };
        cmd.args(["-D", &data]).args(args).current_dir("/");
        run(&mut cmd, &format!("pg_ctl {args:?}"));
    }

    /// Stop the server now and remove its directory.
    pub fn stop(&self) {
        stop_dir(self.dir());
    }
}

static PG: OnceLock<Pg> = OnceLock::new();
static OWNER: OnceLock<u32> = OnceLock::new();

extern "C" fn stop_at_exit() {
    // Only in the process that started the server: a child forked or re-executed by a test
    // inherits nothing of it and must not stop it.
    if OWNER.get() == Some(&std::process::id()) {
        if let Some(pg) = PG.get() {
            pg.stop();
        }
    }
}

/// The test binary's throwaway server (started on first use, stopped at process exit).
pub fn pg() -> &'static Pg {
    PG.get_or_init(|| {
        let pg = Pg::start(&["start"]);
        OWNER.get_or_init(std::process::id);
        // SAFETY: `stop_at_exit` is a plain function without arguments that runs after main
        // returns (or at `exit`); it only reads the two statics set above and runs a command.
        let rc = unsafe { libc::atexit(stop_at_exit) };
        assert_eq!(rc, 0, "atexit failed");
        pg
    })
}
