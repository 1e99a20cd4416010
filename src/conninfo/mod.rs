//! libpq-compatible connection strings ("conninfo").
//!
//! [`ConnConfig::parse`] accepts the two forms libpq accepts:
//!
//! * a URI: `postgresql://[user[:password]@][host][:port][,host2[:port2]...][/dbname][?param=value&...]`
//!   (the scheme may also be spelled `postgres://`). Every component is
//!   percent-decoded, IPv6 literals go in brackets (`[::1]:5432`), and a host
//!   may be a percent-encoded socket directory (`postgresql://%2Ftmp/db`) or be
//!   given as a query parameter (`?host=/tmp`). The JDBC-style `ssl=true` query
//!   parameter means `sslmode=require`, as in libpq.
//! * `keyword=value` pairs separated by whitespace, with optional whitespace
//!   around `=`. A value may be single-quoted; inside or outside quotes a
//!   backslash escapes the next character (`\'`, `\\`). An unquoted value ends
//!   at the first whitespace. The empty string is valid and means "all defaults".
//!
//! When a keyword is absent, its `PG*` environment variable is consulted, then
//! the built-in default (see [`ConnConfig`]). A value given explicitly — even an
//! empty one — always wins over the environment, as in libpq. Differences from
//! libpq, all deliberate:
//!
//! * an environment variable that is set but empty is treated as unset;
//! * libpq keywords this crate does not implement (`replication`,
//!   `require_auth`, `sslcrl`, ...) are rejected with a "not supported" error
//!   instead of being silently ignored; `service`/`PGSERVICE` is rejected too
//!   (there is no `pg_service.conf` support);
//! * `sslsni` and `keepalives`-style options are validated strictly;
//! * error messages never contain the password, even when libpq's would.
//!
//! The only I/O done here is reading the password file and looking up the name
//! (and, for [`ConnConfig::parse`], the home directory) of the effective user.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default Unix-domain socket directory (the value Debian's libpq is built with).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Default server port.
pub const DEFAULT_PORT: u16 = 5432;

mod options;
mod parse;
mod pgpass;
mod resolve;
#[cfg(test)]
mod tests;
mod user;

pub use options::{ChannelBindingMode, Host, LoadBalanceHosts, SslMode, TargetSessionAttrs};

use parse::{is_space, parse_key_value, parse_uri, uri_prefix_len};
use resolve::resolve;
use user::{current_user_entry, os_user_name};

/// A fully resolved connection configuration.
///
/// Built-in defaults (used when neither the string nor the environment gives
/// a value): host = Unix socket directory [`DEFAULT_SOCKET_DIR`] (or, when
/// only `hostaddr` is given, TCP to that address), port [`DEFAULT_PORT`],
/// user = name of the effective OS user, dbname = user, sslmode = prefer,
/// channel_binding = prefer, sslsni = on, keepalives = on.
///
/// The `Debug` implementation redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Servers to try, in order, each with its port. Never empty.
    pub hosts: Vec<(Host, u16)>,
    /// The raw `hostaddr` value: comma-separated numeric IP addresses aligned
    /// with `hosts` (an empty element means "resolve the host name"). Every
    /// non-empty element has been checked to parse as an [`IpAddr`]; see
    /// [`ConnConfig::hostaddr_at`].
    pub hostaddr: Option<String>,
    /// User name to log in as.
    pub user: String,
    /// Password, from the string, `PGPASSWORD`, or the password file.
    pub password: Option<String>,
    /// Database name.
    pub dbname: String,
    /// `application_name`, else `PGAPPNAME`, else `fallback_application_name`.
    pub application_name: Option<String>,
    /// Per-host connection timeout; `None` means wait indefinitely. A value of
    /// 1 second is raised to 2 seconds, as libpq does.
    pub connect_timeout: Option<Duration>,
    /// Command-line options sent as the `options` startup parameter.
    pub options: Option<String>,
    /// TLS policy; see [`SslMode`].
    pub sslmode: SslMode,
    /// Trusted root certificate(s) file. `None` means not configured (the TLS
    /// engine may apply libpq's `~/.postgresql/root.crt` default); the literal
    /// `system` is passed through unchanged.
    pub sslrootcert: Option<PathBuf>,
    /// Client certificate file.
    pub sslcert: Option<PathBuf>,
    /// Client private key file.
    pub sslkey: Option<PathBuf>,
    /// Send the host name as TLS SNI (only for host names, never IP literals).
    pub sslsni: bool,
    /// Enable TCP keepalives.
    pub keepalives: bool,
    /// `keepalives_idle` (negative values become 0, as libpq).
    pub keepalives_idle: Option<Duration>,
    /// `keepalives_interval` (negative values become 0, as libpq).
    pub keepalives_interval: Option<Duration>,
    /// `keepalives_count` (negative values become 0, as libpq).
    pub keepalives_count: Option<u32>,
    /// `tcp_user_timeout`: how long transmitted data may stay unacknowledged before the
    /// kernel closes the connection (`TCP_USER_TIMEOUT`); `None` leaves the system default.
    pub tcp_user_timeout: Option<Duration>,
    /// `target_session_attrs`: which servers qualify.
    pub target_session_attrs: TargetSessionAttrs,
    /// `load_balance_hosts`: the order in which hosts are tried.
    pub load_balance_hosts: LoadBalanceHosts,
    /// Channel binding policy for SCRAM authentication.
    pub channel_binding: ChannelBindingMode,
}

/// A connection-string error. The message never contains the password.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct ConnInfoError {
    /// Human-readable description naming the offending keyword and value.
    pub message: String,
}

fn err(message: impl Into<String>) -> ConnInfoError {
    ConnInfoError {
        message: message.into(),
    }
}

/// Safety net behind the parsers (which never echo a password field): hide
/// any known password that still appears in an error message. Secrets of 4+
/// characters are replaced wherever they occur; shorter ones only when they
/// are a whole quoted value, so that the rest of the message stays readable.
fn scrub(mut e: ConnInfoError, secrets: &[String]) -> ConnInfoError {
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if s.chars().count() >= 4 {
            e.message = e.message.replace(s.as_str(), "***");
        } else {
            e.message = e.message.replace(&format!("\"{s}\""), "\"***\"");
        }
    }
    e
}

fn parse_inner(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
    os_user: &dyn Fn() -> Result<String, ConnInfoError>,
) -> Result<ConnConfig, ConnInfoError> {
    let mut secrets = Vec::new();
    if let Some(pw) = env("PGPASSWORD") {
        secrets.push(pw);
    }
    let raw = match uri_prefix_len(s) {
        Some(n) => parse_uri(s, n, &mut secrets),
        None => parse_key_value(s, &mut secrets),
    };
    raw.and_then(|raw| resolve(raw, env, os_user))
        .map_err(|e| scrub(e, &secrets))
}

impl ConnConfig {
    /// Parse with the real process environment (`PG*` variables) and the
    /// password file (`passfile`, `PGPASSFILE`, or `$HOME/.pgpass`, falling
    /// back to the password-database home directory when `HOME` is unset).
    ///
    /// # Errors
    ///
    /// Returns a [`ConnInfoError`] naming the offending keyword and value for
    /// malformed strings, unknown or unsupported keywords, invalid values
    /// (from the string or the environment), or when no user is given and the
    /// effective user cannot be looked up. The message never contains the
    /// password.
    pub fn parse(s: &str) -> Result<ConnConfig, ConnInfoError> {
        let env = |k: &str| -> Option<String> {
            let v = std::env::var(k).ok().filter(|v| !v.is_empty());
            if v.is_none() && k == "HOME" {
                return current_user_entry()
                    .ok()
                    .and_then(|(_, home)| home)
                    .and_then(|h| h.into_os_string().into_string().ok());
            }
            v
        };
        parse_inner(s, &env, &os_user_name)
    }

    /// Parse with an injected environment lookup. Every environment read
    /// (the `PG*` defaults, `PGPASSFILE`, `HOME` for `~/.pgpass`) goes through
    /// `env`; only the default user name still comes from the OS.
    ///
    /// # Errors
    ///
    /// As for [`ConnConfig::parse`].
    pub fn parse_with_env(
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnConfig, ConnInfoError> {
        parse_inner(s, env, &os_user_name)
    }

    /// A description safe for error messages, e.g.
    /// `host=127.0.0.1 port=5432 user=bob dbname=x`. Multiple hosts and ports
    /// are comma-separated (a single port if all are equal); `hostaddr` is
    /// included when set. Never contains the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|(h, _)| h.to_string()).collect();
        let ports: Vec<String> = if self.hosts.iter().all(|(_, p)| *p == self.hosts[0].1) {
            vec![self.hosts[0].1.to_string()]
        } else {
            self.hosts.iter().map(|(_, p)| p.to_string()).collect()
        };
        let mut out = format!("host={}", quote_value(&hosts.join(",")));
        if let Some(addr) = &self.hostaddr {
            out.push_str(&format!(" hostaddr={}", quote_value(addr)));
        }
        out.push_str(&format!(
            " port={} user={} dbname={}",
            ports.join(","),
            quote_value(&self.user),
            quote_value(&self.dbname)
        ));
        out
    }

    /// The startup parameters to send, in this order: `user`, `database`,
    /// `application_name` (if set), `options` (if set), `client_encoding=UTF8`.
    pub fn startup_params(&self) -> Vec<(String, String)> {
        let mut params = vec![
            ("user".to_owned(), self.user.clone()),
            ("database".to_owned(), self.dbname.clone()),
        ];
        if let Some(app) = &self.application_name {
            params.push(("application_name".to_owned(), app.clone()));
        }
        if let Some(options) = &self.options {
            params.push(("options".to_owned(), options.clone()));
        }
        params.push(("client_encoding".to_owned(), "UTF8".to_owned()));
        params
    }

    /// The numeric address to connect to for `hosts[index]`, if `hostaddr`
    /// gives one (otherwise the host name must be resolved).
    pub fn hostaddr_at(&self, index: usize) -> Option<IpAddr> {
        self.hostaddr
            .as_deref()?
            .split(',')
            .nth(index)?
            .trim_matches(is_space)
            .parse()
            .ok()
    }
}

/// Quote a value for key=value syntax when it needs it.
fn quote_value(v: &str) -> String {
    if !v.is_empty() && !v.chars().any(|c| is_space(c) || c == '\'' || c == '\\') {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

impl fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructure so that adding a field without updating this fails to compile.
        let ConnConfig {
            hosts,
            hostaddr,
            user,
            password,
            dbname,
            application_name,
            connect_timeout,
            options,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            sslsni,
            keepalives,
            keepalives_idle,
            keepalives_interval,
            keepalives_count,
            tcp_user_timeout,
            target_session_attrs,
            load_balance_hosts,
            channel_binding,
        } = self;
        f.debug_struct("ConnConfig")
            .field("hosts", hosts)
            .field("hostaddr", hostaddr)
            .field("user", user)
            .field("password", &password.as_ref().map(|_| "***"))
            .field("dbname", dbname)
            .field("application_name", application_name)
            .field("connect_timeout", connect_timeout)
            .field("options", options)
            .field("sslmode", sslmode)
            .field("sslrootcert", sslrootcert)
            .field("sslcert", sslcert)
            .field("sslkey", sslkey)
            .field("sslsni", sslsni)
            .field("keepalives", keepalives)
            .field("keepalives_idle", keepalives_idle)
            .field("keepalives_interval", keepalives_interval)
            .field("keepalives_count", keepalives_count)
            .field("tcp_user_timeout", tcp_user_timeout)
            .field("target_session_attrs", target_session_attrs)
            .field("load_balance_hosts", load_balance_hosts)
            .field("channel_binding", channel_binding)
            .finish()
    }
}
