//! Unit tests of the conninfo parser, one file per part: the textual forms
//! (`parse`), resolution and options (`resolve`), the password file (`pgpass`),
//! defaults and the public helpers (`config`).

use super::*;
use std::collections::HashMap;

type Env = HashMap<String, String>;

fn env_of(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn fake_user() -> Result<String, ConnInfoError> {
    Ok("osuser".to_owned())
}

/// Parse with the given environment and a fixed OS user name.
fn parse_env(s: &str, env: &Env) -> Result<ConnConfig, ConnInfoError> {
    let lookup = |k: &str| env.get(k).cloned();
    parse_inner(s, &lookup, &fake_user)
}

fn ok(s: &str) -> ConnConfig {
    parse_env(s, &Env::new()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn fail(s: &str) -> String {
    fail_env(s, &Env::new())
}

fn fail_env(s: &str, env: &Env) -> String {
    match parse_env(s, env) {
        Ok(c) => panic!("{s:?} unexpectedly parsed: {c:?}"),
        Err(e) => e.message,
    }
}

fn tcp(h: &str, port: u16) -> (Host, u16) {
    (Host::Tcp(h.to_owned()), port)
}

fn unix(d: &str, port: u16) -> (Host, u16) {
    (Host::Unix(PathBuf::from(d)), port)
}

mod config;
mod parse;
mod pgpass;
mod resolve;
