//! Shared by the integration tests: one throwaway PostgreSQL per test binary, started with
//! `scripts/pg-throwaway` and stopped by its watchdog when the test process exits. A missing
//! PostgreSQL is a test failure, never a skip.

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

pub struct Pg {
    pub vars: HashMap<String, String>,
}

impl Pg {
    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("pg-throwaway did not print {k}"))
    }
    pub fn port(&self) -> u16 {
        self.var("FW_PG_PORT").parse().unwrap()
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
    /// Run SQL with psql over the socket as the superuser and return its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGHOST", self.var("FW_PG_SOCKET_DIR"))
            .env("PGPORT", self.var("FW_PG_PORT"))
            .env("PGDATABASE", self.var("FW_PG_DB"))
            .env("PGUSER", "fw_trust")
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

static PG: OnceLock<Pg> = OnceLock::new();

/// The test binary's throwaway server (started on first use).
pub fn pg() -> &'static Pg {
    PG.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new(format!("{root}/scripts/pg-throwaway"))
            .args(["start", "--watch-pid", &std::process::id().to_string()])
            .output()
            .expect("scripts/pg-throwaway must run (PostgreSQL 15 is a test prerequisite)");
        assert!(
            out.status.success(),
            "could not start the throwaway PostgreSQL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Pg { vars }
    })
}
