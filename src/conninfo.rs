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

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Default Unix-domain socket directory (the value Debian's libpq is built with).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Default server port.
pub const DEFAULT_PORT: u16 = 5432;

/// The `sslmode` connection option: whether and how TLS is used.
///
/// The TLS engine must implement these meanings (they are libpq's):
///
/// * [`Disable`](SslMode::Disable): never send an `SSLRequest`; plaintext only.
/// * [`Allow`](SslMode::Allow): first attempt a plaintext connection; only if
///   the server rejects that attempt, retry once with TLS (without certificate
///   verification).
/// * [`Prefer`](SslMode::Prefer) (the default): send an `SSLRequest`; if the
///   server declines it (answers `N`) or the TLS handshake fails, fall back to
///   plaintext (reconnecting if needed). The certificate is not verified.
/// * [`Require`](SslMode::Require): TLS is mandatory, the connection fails if
///   it cannot be established. The certificate is not verified — except that,
///   as in libpq, when a root certificate is configured (`sslrootcert`), the
///   engine must verify the chain exactly as for `VerifyCa`.
/// * [`VerifyCa`](SslMode::VerifyCa): TLS is mandatory and the server
///   certificate must chain to a trusted root (`sslrootcert`); the host name
///   is not checked.
/// * [`VerifyFull`](SslMode::VerifyFull): as `VerifyCa`, and the certificate
///   must also match the host name being connected to (the [`Host::Tcp`] name,
///   not `hostaddr`).
///
/// No mode ever sends the password before the transport the mode asks for is
/// established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plaintext first, TLS only if the server insists.
    Allow,
    /// TLS first, plaintext if the server does not offer TLS.
    Prefer,
    /// TLS mandatory, no certificate verification (unless `sslrootcert` is set).
    Require,
    /// TLS mandatory, certificate chain verified.
    VerifyCa,
    /// TLS mandatory, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling of this mode (`"verify-full"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True if the connection must fail rather than continue without TLS.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// True if the server certificate chain must always be verified.
    pub fn verifies_certificate(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// True if the server certificate must match the host name.
    pub fn verifies_hostname(self) -> bool {
        self == SslMode::VerifyFull
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(err(format!("invalid sslmode value: \"{s}\""))),
        })
    }
}

/// The `channel_binding` connection option (SCRAM-SHA-256-PLUS).
///
/// `Prefer` (the default) uses channel binding when TLS is in use and the
/// server offers it; `Require` makes authentication fail without it;
/// `Disable` never uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelBindingMode {
    /// Never use channel binding.
    Disable,
    /// Use channel binding when available.
    Prefer,
    /// Fail unless channel binding is used.
    Require,
}

impl ChannelBindingMode {
    /// The libpq spelling of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBindingMode::Disable => "disable",
            ChannelBindingMode::Prefer => "prefer",
            ChannelBindingMode::Require => "require",
        }
    }
}

impl fmt::Display for ChannelBindingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelBindingMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => ChannelBindingMode::Disable,
            "prefer" => ChannelBindingMode::Prefer,
            "require" => ChannelBindingMode::Require,
            _ => return Err(err(format!("invalid channel_binding value: \"{s}\""))),
        })
    }
}

/// The `target_session_attrs` connection option: which servers of the host list qualify
/// (libpq 14+ semantics; see `connection::select`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    /// Any server (the default).
    #[default]
    Any,
    /// A session that accepts writes: `default_transaction_read_only` and `in_hot_standby`
    /// both off (else `SHOW transaction_read_only` is `off`).
    ReadWrite,
    /// A read-only session: the opposite of `ReadWrite`.
    ReadOnly,
    /// A server not in hot standby (`in_hot_standby` off, else `pg_is_in_recovery()` false).
    Primary,
    /// A server in hot standby.
    Standby,
    /// A standby if any host is one, else any server (a second pass over the hosts).
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetSessionAttrs {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => return Err(err(format!("invalid target_session_attrs value: \"{s}\""))),
        })
    }
}

/// The `load_balance_hosts` connection option (libpq 16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadBalanceHosts {
    /// Try the hosts in the order given (the default).
    #[default]
    Disable,
    /// Shuffle the hosts for each new connection, then each host's addresses.
    Random,
}

impl LoadBalanceHosts {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadBalanceHosts::Disable => "disable",
            LoadBalanceHosts::Random => "random",
        }
    }
}

impl FromStr for LoadBalanceHosts {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => LoadBalanceHosts::Disable,
            "random" => LoadBalanceHosts::Random,
            _ => return Err(err(format!("invalid load_balance_hosts value: \"{s}\""))),
        })
    }
}

/// One server to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP literal (IPv6 without brackets), reached over TCP.
    Tcp(String),
    /// A Unix-domain socket directory; the socket is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Unix(dir) => write!(f, "{}", dir.display()),
        }
    }
}

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

/// Keywords this module understands, with the environment variable that
/// supplies their default.
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("dbname", Some("PGDATABASE")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslsni", Some("PGSSLSNI")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("service", Some("PGSERVICE")),
];

/// Real libpq keywords that are deliberately not implemented. They get a
/// clearer error than an unknown keyword, and are never silently ignored.
const UNSUPPORTED_KEYWORDS: &[&str] = &[
    "replication",
    "requiressl",
    "requirepeer",
    "require_auth",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "sslnegotiation",
    "sslkeylogfile",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "gssdelegation",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// Map a keyword to its canonical `'static` spelling, or explain why not.
fn keyword(name: &str, in_uri: bool) -> Result<&'static str, ConnInfoError> {
    if let Some((k, _)) = KEYWORDS.iter().find(|(k, _)| *k == name) {
        return Ok(k);
    }
    if UNSUPPORTED_KEYWORDS.contains(&name) {
        return Err(err(format!(
            "connection option \"{name}\" is not supported by fraiseql-wire"
        )));
    }
    if in_uri {
        Err(err(format!("invalid URI query parameter: \"{name}\"")))
    } else {
        Err(err(format!("invalid connection option \"{name}\"")))
    }
}

/// C `isspace` in the "C" locale, which is what libpq uses.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// A parsed-but-unresolved keyword/value list, in order (later wins).
#[derive(Default)]
struct RawParams {
    pairs: Vec<(&'static str, String)>,
}

// ---------------------------------------------------------------------------
// key=value form
// ---------------------------------------------------------------------------

fn parse_key_value(s: &str, secrets: &mut Vec<String>) -> Result<RawParams, ConnInfoError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = RawParams::default();
    // True while the token being read directly follows an unquoted password
    // value: a stray word there is probably the rest of a password containing
    // a space, so it must not be echoed in an error message.
    let mut after_unquoted_password = false;

    loop {
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }

        let name_start = i;
        while i < chars.len() && !is_space(chars[i]) && chars[i] != '=' {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();

        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(if after_unquoted_password {
                err(
                    "missing \"=\" after the value of \"password\" in connection info string \
                     (quote values that contain spaces)",
                )
            } else if name.contains("://") || name.contains('@') {
                err(
                    "missing \"=\" in connection info string (a URI must start with \
                     \"postgresql://\" or \"postgres://\")",
                )
            } else {
                err(format!(
                    "missing \"=\" after \"{name}\" in connection info string"
                ))
            });
        }
        i += 1; // '='
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }

        let mut value = String::new();
        let quoted = i < chars.len() && chars[i] == '\'';
        if quoted {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(err("unterminated quoted string in connection info string"))
                    }
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(&c) => value.push(c),
                            None => {
                                return Err(err(
                                    "unterminated quoted string in connection info string",
                                ))
                            }
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !is_space(chars[i]) {
                if chars[i] == '\\' {
                    i += 1;
                    if let Some(&c) = chars.get(i) {
                        value.push(c);
                    }
                } else {
                    value.push(chars[i]);
                }
                i += 1;
            }
        }

        let kw = match keyword(&name, false) {
            Ok(kw) => kw,
            Err(_) if after_unquoted_password => {
                return Err(err(
                    "invalid connection option after the value of \"password\" \
                     (quote values that contain spaces)",
                ))
            }
            Err(e) => return Err(e),
        };
        if kw == "password" {
            secrets.push(value.clone());
        }
        after_unquoted_password = kw == "password" && !quoted;
        out.pairs.push((kw, value));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// URI form
// ---------------------------------------------------------------------------

const URI_PREFIXES: &[&str] = &["postgresql://", "postgres://"];

fn uri_prefix_len(s: &str) -> Option<usize> {
    URI_PREFIXES
        .iter()
        .find(|p| s.starts_with(**p))
        .map(|p| p.len())
}

/// Percent-decode one URI component. `what` names the component for error
/// messages; a `secret` component is never echoed.
fn percent_decode(s: &str, what: &str, secret: bool) -> Result<String, ConnInfoError> {
    let shown = |s: &str| {
        if secret {
            String::new()
        } else {
            format!(": \"{s}\"")
        }
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    let b = (hi * 16 + lo) as u8;
                    if b == 0 {
                        return Err(err(format!(
                            "forbidden value %00 in percent-encoded URI {what}{}",
                            shown(s)
                        )));
                    }
                    out.push(b);
                    i += 3;
                }
                _ => {
                    return Err(err(format!(
                        "invalid percent-encoded token in URI {what}{}",
                        shown(s)
                    )))
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        err(format!(
            "percent-decoded URI {what} is not valid UTF-8{}",
            shown(s)
        ))
    })
}

fn parse_uri(
    s: &str,
    prefix_len: usize,
    secrets: &mut Vec<String>,
) -> Result<RawParams, ConnInfoError> {
    let mut out = RawParams::default();
    let mut rest = &s[prefix_len..];
    let mut pos = prefix_len; // byte offset of `rest` within `s`

    // Credentials: as libpq, look for '@' before the first '/'.
    if let Some(at) = rest
        .find(['@', '/'])
        .filter(|&i| rest.as_bytes()[i] == b'@')
    {
        let userinfo = &rest[..at];
        let (user, password) = match userinfo.find(':') {
            Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
            None => (userinfo, None),
        };
        if let Some(pw) = password {
            secrets.push(pw.to_owned());
            let pw = percent_decode(pw, "password", true)?;
            if !pw.is_empty() {
                secrets.push(pw.clone());
                out.pairs.push(("password", pw));
            }
        }
        if !user.is_empty() {
            out.pairs
                .push(("user", percent_decode(user, "user name", false)?));
        }
        rest = &rest[at + 1..];
        pos += at + 1;
    }

    // Host list: host[:port][,host[:port]...]
    let b = rest.as_bytes();
    let mut i = 0;
    let mut hosts: Vec<String> = Vec::new();
    let mut ports: Vec<String> = Vec::new();
    loop {
        let host = if b.get(i) == Some(&b'[') {
            let close = rest[i + 1..].find(']').map(|j| i + 1 + j).ok_or_else(|| {
                err(
                    "end of string reached when looking for matching \"]\" in IPv6 host \
                     address in URI",
                )
            })?;
            let h = &rest[i + 1..close];
            if h.is_empty() {
                return Err(err("IPv6 host address may not be empty in URI"));
            }
            i = close + 1;
            match b.get(i) {
                None | Some(b':' | b'/' | b'?' | b',') => {}
                Some(_) => {
                    let c = rest[i..].chars().next().unwrap_or('?');
                    return Err(err(format!(
                        "unexpected character \"{c}\" at position {} in URI (expected \":\" or \"/\")",
                        pos + i + 1
                    )));
                }
            }
            h
        } else {
            let start = i;
            while i < b.len() && !matches!(b[i], b':' | b'/' | b'?' | b',') {
                i += 1;
            }
            &rest[start..i]
        };
        hosts.push(percent_decode(host, "host", false)?);

        if b.get(i) == Some(&b':') {
            let start = i + 1;
            i = start;
            while i < b.len() && !matches!(b[i], b'/' | b'?' | b',') {
                i += 1;
            }
            ports.push(percent_decode(&rest[start..i], "port", false)?);
        } else {
            ports.push(String::new());
        }

        if b.get(i) == Some(&b',') {
            i += 1;
        } else {
            break;
        }
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        out.pairs.push(("host", hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.pairs.push(("port", ports.join(",")));
    }
    rest = &rest[i..];

    // Database name.
    if let Some(after) = rest.strip_prefix('/') {
        let end = after.find('?').unwrap_or(after.len());
        let db = percent_decode(&after[..end], "database name", false)?;
        if !db.is_empty() {
            out.pairs.push(("dbname", db));
        }
        rest = &after[end..];
    }

    // Query parameters.
    if let Some(query) = rest.strip_prefix('?') {
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let Some((raw_key, raw_value)) = param.split_once('=') else {
                let key = percent_decode(param, "query parameter", false)?;
                return Err(err(format!(
                    "missing key/value separator \"=\" in URI query parameter: \"{key}\""
                )));
            };
            let key = percent_decode(raw_key, "query parameter", false)?;
            if raw_value.contains('=') {
                // Never echo the value: it may be a password.
                return Err(err(format!(
                    "extra key/value separator \"=\" in URI query parameter \"{key}\" \
                     (percent-encode \"=\" as %3D)"
                )));
            }
            let is_password = key == "password";
            if is_password {
                secrets.push(raw_value.to_owned());
            }
            let what = format!("query parameter \"{key}\"");
            let value = percent_decode(raw_value, &what, is_password)?;
            if is_password {
                secrets.push(value.clone());
            }
            // JDBC compatibility, as libpq: ssl=true means sslmode=require.
            let (key, value) = if key == "ssl" && value == "true" {
                ("sslmode".to_owned(), "require".to_owned())
            } else {
                (key, value)
            };
            out.pairs.push((keyword(&key, true)?, value));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Resolution: explicit values, then environment, then built-in defaults
// ---------------------------------------------------------------------------

struct Params<'a> {
    explicit: HashMap<&'static str, String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Params<'_> {
    /// The explicit value (even if empty), else the non-empty environment value.
    fn get(&self, kw: &'static str) -> Option<String> {
        if let Some(v) = self.explicit.get(kw) {
            return Some(v.clone());
        }
        let var = KEYWORDS
            .iter()
            .find(|(k, _)| *k == kw)
            .and_then(|(_, var)| *var)?;
        (self.env)(var).filter(|v| !v.is_empty())
    }

    /// Like `get`, but an empty value counts as absent.
    fn get_nonempty(&self, kw: &'static str) -> Option<String> {
        self.get(kw).filter(|v| !v.is_empty())
    }
}

/// libpq's `parse_int_param`: a decimal `int`, surrounding whitespace allowed.
fn parse_int(value: &str, kw: &str) -> Result<i32, ConnInfoError> {
    value.trim_matches(is_space).parse::<i32>().map_err(|_| {
        err(format!(
            "invalid integer value \"{value}\" for connection option \"{kw}\""
        ))
    })
}

fn parse_port(value: &str) -> Result<u16, ConnInfoError> {
    let t = value.trim_matches(is_space);
    if t.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    match t.parse::<u32>() {
        Ok(p) if t.bytes().all(|b| b.is_ascii_digit()) && (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(err(format!("invalid port number: \"{value}\""))),
    }
}

fn default_host() -> Host {
    if cfg!(unix) {
        Host::Unix(PathBuf::from(DEFAULT_SOCKET_DIR))
    } else {
        Host::Tcp("localhost".to_owned())
    }
}

fn host_from(name: &str) -> Host {
    if name.starts_with('/') {
        Host::Unix(PathBuf::from(name))
    } else {
        Host::Tcp(name.to_owned())
    }
}

/// Hosts to try with their ports, plus the raw `hostaddr` value.
type ResolvedHosts = (Vec<(Host, u16)>, Option<String>);

/// `verify_full`: the server certificate will be checked against the host name, so a host
/// given only by `hostaddr` is refused as libpq refuses it ("host name must be specified for
/// a verified SSL connection"; libpq finds out at connection time, for that host).
fn resolve_hosts(p: &Params<'_>, verify_full: bool) -> Result<ResolvedHosts, ConnInfoError> {
    let names: Option<Vec<String>> = p
        .get("host")
        .map(|h| h.split(',').map(str::to_owned).collect());
    let hostaddr = p.get_nonempty("hostaddr");
    let addrs: Option<Vec<String>> = hostaddr.as_ref().map(|a| {
        a.split(',')
            .map(|s| s.trim_matches(is_space).to_owned())
            .collect()
    });

    if let Some(addrs) = &addrs {
        for a in addrs.iter().filter(|a| !a.is_empty()) {
            if a.parse::<IpAddr>().is_err() {
                return Err(err(format!(
                    "could not parse network address \"{a}\" in hostaddr (expected a numeric IP address)"
                )));
            }
        }
    }

    let hosts: Vec<Host> = match (&names, &addrs) {
        (Some(names), Some(addrs)) => {
            if names.len() != addrs.len() {
                return Err(err(format!(
                    "could not match {} host names to {} hostaddr values",
                    names.len(),
                    addrs.len()
                )));
            }
            names
                .iter()
                .zip(addrs)
                .map(|(n, a)| match (n.is_empty(), a.is_empty()) {
                    (false, _) => host_from(n),
                    (true, false) => Host::Tcp(a.clone()),
                    (true, true) => default_host(),
                })
                .collect()
        }
        (Some(names), None) => names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    default_host()
                } else {
                    host_from(n)
                }
            })
            .collect(),
        (None, Some(addrs)) => addrs
            .iter()
            .map(|a| {
                if a.is_empty() {
                    default_host()
                } else {
                    Host::Tcp(a.clone())
                }
            })
            .collect(),
        (None, None) => vec![default_host()],
    };

    if let (true, Some(addrs)) = (verify_full, &addrs) {
        for (i, a) in addrs.iter().enumerate() {
            let named = names
                .as_ref()
                .and_then(|n| n.get(i))
                .is_some_and(|n| !n.is_empty());
            if !a.is_empty() && !named {
                return Err(err(format!(
                    "host name must be specified for a verified SSL connection (host {} of {}, \
                     hostaddr {a}): sslmode=verify-full checks the server certificate against \
                     the host name, and hostaddr is only the address to connect to; give the \
                     name the certificate holds in host",
                    i + 1,
                    addrs.len()
                )));
            }
        }
    }

    let ports: Vec<u16> = match p.get("port") {
        None => vec![DEFAULT_PORT],
        Some(list) => list.split(',').map(parse_port).collect::<Result<_, _>>()?,
    };
    let ports = if ports.len() == 1 {
        vec![ports[0]; hosts.len()]
    } else if ports.len() == hosts.len() {
        ports
    } else {
        return Err(err(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            hosts.len()
        )));
    };

    Ok((hosts.into_iter().zip(ports).collect(), hostaddr))
}

fn resolve(
    raw: RawParams,
    env: &dyn Fn(&str) -> Option<String>,
    os_user: &dyn Fn() -> Result<String, ConnInfoError>,
) -> Result<ConnConfig, ConnInfoError> {
    let p = Params {
        explicit: raw.pairs.into_iter().collect(),
        env,
    };

    if let Some(service) = p.get_nonempty("service") {
        return Err(err(format!(
            "connection option \"service\" (\"{service}\") is not supported: \
             there is no pg_service.conf support"
        )));
    }

    if let Some(enc) = p.get("client_encoding") {
        let e = enc.to_ascii_lowercase();
        if e != "utf8" && e != "utf-8" {
            return Err(err(format!(
                "client_encoding \"{enc}\" is not supported (only UTF8 is)"
            )));
        }
    }

    if let Some(mode) = p.get("gssencmode") {
        match mode.as_str() {
            "disable" | "prefer" => {}
            "require" => {
                return Err(err(
                    "gssencmode value \"require\" is not supported (no GSSAPI support)",
                ))
            }
            _ => return Err(err(format!("invalid gssencmode value: \"{mode}\""))),
        }
    }

    let sslmode = match p.get("sslmode") {
        Some(v) => v.parse::<SslMode>()?,
        None => SslMode::Prefer,
    };
    let channel_binding = match p.get("channel_binding") {
        Some(v) => v.parse::<ChannelBindingMode>()?,
        None => ChannelBindingMode::Prefer,
    };

    let target_session_attrs = match p.get("target_session_attrs") {
        None => TargetSessionAttrs::Any,
        Some(v) => v.parse::<TargetSessionAttrs>()?,
    };
    let load_balance_hosts = match p.get("load_balance_hosts") {
        None => LoadBalanceHosts::Disable,
        Some(v) => v.parse::<LoadBalanceHosts>()?,
    };

    let connect_timeout = match p.get("connect_timeout") {
        None => None,
        Some(v) => match parse_int(&v, "connect_timeout")? {
            t if t <= 0 => None,
            1 => Some(Duration::from_secs(2)),
            t => Some(Duration::from_secs(t as u64)),
        },
    };

    let keepalives = match p.get("keepalives") {
        None => true,
        Some(v) => parse_int(&v, "keepalives")? != 0,
    };
    let secs = |kw: &'static str| -> Result<Option<Duration>, ConnInfoError> {
        p.get(kw)
            .map(|v| parse_int(&v, kw).map(|n| Duration::from_secs(n.max(0) as u64)))
            .transpose()
    };
    let keepalives_idle = secs("keepalives_idle")?;
    let keepalives_interval = secs("keepalives_interval")?;
    let keepalives_count = p
        .get("keepalives_count")
        .map(|v| parse_int(&v, "keepalives_count").map(|n| n.max(0) as u32))
        .transpose()?;
    // Milliseconds; negative values become 0 (the system default), as in libpq.
    let tcp_user_timeout = p
        .get("tcp_user_timeout")
        .map(|v| parse_int(&v, "tcp_user_timeout").map(|n| Duration::from_millis(n.max(0) as u64)))
        .transpose()?;

    let sslsni = match p.get("sslsni").as_deref() {
        None | Some("1") => true,
        Some("0") => false,
        Some(v) => return Err(err(format!("invalid sslsni value: \"{v}\""))),
    };

    // As the TLS engine decides it: sslrootcert=system turns the default mode into verify-full.
    let verify_full = sslmode == SslMode::VerifyFull
        || (sslmode == SslMode::Prefer && p.get("sslrootcert").as_deref() == Some("system"));
    let (hosts, hostaddr) = resolve_hosts(&p, verify_full)?;

    let user = match p.get_nonempty("user") {
        Some(u) => u,
        None => os_user()?,
    };
    let dbname = p.get_nonempty("dbname").unwrap_or_else(|| user.clone());

    let application_name = p
        .get_nonempty("application_name")
        .or_else(|| p.get_nonempty("fallback_application_name"));
    let options = p.get_nonempty("options");
    let path = |kw| p.get_nonempty(kw).map(PathBuf::from);
    let sslrootcert = path("sslrootcert");
    let sslcert = path("sslcert");
    let sslkey = path("sslkey");

    let mut password = p.get_nonempty("password");
    if password.is_none() {
        let passfile = p.get_nonempty("passfile").map(PathBuf::from).or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".pgpass"))
        });
        if let Some(file) = passfile {
            let (host, port) = &hosts[0];
            let host_key = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
                Host::Unix(dir) => dir.to_string_lossy().into_owned(),
            };
            password = password_from_file(&file, &host_key, &port.to_string(), &dbname, &user);
        }
    }

    Ok(ConnConfig {
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
    })
}

// ---------------------------------------------------------------------------
// Password file
// ---------------------------------------------------------------------------

/// Read one `:`-terminated field with `\` escapes. Returns the unescaped
/// field, whether it was the bare wildcard `*`, and the rest after the `:`;
/// `None` if the line ends before the `:`.
fn pgpass_field(s: &str) -> Option<(String, bool, &str)> {
    let mut field = String::new();
    let mut it = s.char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = it.next() {
                    field.push(next);
                }
            }
            ':' => return Some((field, &s[..i] == "*", &s[i + 1..])),
            c => field.push(c),
        }
    }
    None
}

/// Find the password of the first line matching the connection, following
/// libpq's rules. An empty password on the first matching line yields `None`.
fn pgpass_lookup<'a>(
    lines: impl Iterator<Item = &'a str>,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    'lines: for line in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        for wanted in [host, port, dbname, user] {
            match pgpass_field(rest) {
                Some((field, wildcard, next)) if wildcard || field == wanted => rest = next,
                _ => continue 'lines,
            }
        }
        // The password runs to the next unescaped ':' or the end of line.
        let mut password = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        password.push(next);
                    }
                }
                ':' => break,
                c => password.push(c),
            }
        }
        return Some(password).filter(|p| !p.is_empty());
    }
    None
}

/// Look the connection up in a password file. A missing or unreadable file,
/// or (on Unix) one that is not a regular file or grants any permission to
/// group or others, is ignored, as libpq does. Lines that are not valid UTF-8
/// are skipped.
fn password_from_file(
    path: &Path,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return None;
        }
    }
    let contents = std::fs::read(path).ok()?;
    let lines = contents
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    pgpass_lookup(lines, host, port, dbname, user)
}

// ---------------------------------------------------------------------------
// OS user
// ---------------------------------------------------------------------------

/// Name and home directory of the effective user, from the password database.
#[cfg(unix)]
fn current_user_entry() -> Result<(String, Option<PathBuf>), ConnInfoError> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: geteuid() has no preconditions, touches no caller memory and
    // cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut buf_len = 1024usize;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; buf_len];
        let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the whole call: `pwd` is writable
        // storage for one `passwd`, `buf` is a writable buffer of exactly
        // `buf.len()` bytes, and `result` is a valid out-pointer. The
        // re-entrant getpwuid_r keeps no reference to them after returning.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < (1 << 20) {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(err(format!(
                "could not look up local user ID {uid}: {}",
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        if result.is_null() {
            return Err(err(format!("local user with ID {uid} does not exist")));
        }
        // SAFETY: getpwuid_r returned 0 with a non-null `result`, so it
        // initialised `*pwd` (result == pwd.as_mut_ptr()); its string fields
        // are null or NUL-terminated strings stored inside `buf`, which is
        // still alive and unmodified here. The data is copied out before `buf`
        // is dropped.
        let (name, home) = unsafe {
            let pwd = pwd.assume_init_ref();
            let name = (!pwd.pw_name.is_null()).then(|| CStr::from_ptr(pwd.pw_name).to_owned());
            let home = (!pwd.pw_dir.is_null()).then(|| CStr::from_ptr(pwd.pw_dir).to_owned());
            (name, home)
        };
        let name = name
            .and_then(|n| n.into_string().ok())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(format!("local user with ID {uid} has no usable name")))?;
        let home = home
            .filter(|h| !h.as_bytes().is_empty())
            .map(|h| PathBuf::from(OsStr::from_bytes(h.as_bytes())));
        return Ok((name, home));
    }
}

#[cfg(not(unix))]
fn current_user_entry() -> Result<(String, Option<PathBuf>), ConnInfoError> {
    Err(err(
        "could not determine the local user name; set user or PGUSER",
    ))
}

fn os_user_name() -> Result<String, ConnInfoError> {
    current_user_entry().map(|(name, _)| name)
}

// ---------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

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

    // ---- defaults -------------------------------------------------------

    #[test]
    fn empty_string_gives_all_defaults() {
        let c = ok("");
        assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
        assert_eq!(c.hostaddr, None);
        assert_eq!(c.user, "osuser");
        assert_eq!(c.dbname, "osuser");
        assert_eq!(c.password, None);
        assert_eq!(c.application_name, None);
        assert_eq!(c.connect_timeout, None);
        assert_eq!(c.options, None);
        assert_eq!(c.sslmode, SslMode::Prefer);
        assert_eq!(c.sslrootcert, None);
        assert_eq!(c.sslcert, None);
        assert_eq!(c.sslkey, None);
        assert!(c.sslsni);
        assert!(c.keepalives);
        assert_eq!(c.keepalives_idle, None);
        assert_eq!(c.keepalives_interval, None);
        assert_eq!(c.keepalives_count, None);
        assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
        assert_eq!(c.load_balance_hosts, LoadBalanceHosts::Disable);
        assert_eq!(c.tcp_user_timeout, None);
        assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
        assert_eq!(ok("   \t\n "), c);
        assert_eq!(ok("postgresql://"), c);
        assert_eq!(ok("postgres://"), c);
    }

    #[test]
    fn default_user_is_the_effective_os_user() {
        let expected = os_user_name().expect("the test runs as a user with a passwd entry");
        let empty = |_: &str| None;
        let c = ConnConfig::parse_with_env("host=h", &empty).unwrap();
        assert_eq!(c.user, expected);
        assert_eq!(c.dbname, expected);
    }

    #[test]
    fn parse_with_real_environment() {
        // Everything that matters is explicit, so the ambient environment
        // cannot change the outcome.
        let c = ConnConfig::parse(
            "host=db.example port=6000 user=u dbname=d password=p service='' \
             client_encoding=UTF8 sslmode=disable gssencmode=disable",
        )
        .unwrap();
        assert_eq!(c.hosts, vec![tcp("db.example", 6000)]);
        assert_eq!(c.user, "u");
        assert_eq!(c.password.as_deref(), Some("p"));
        assert_eq!(c.sslmode, SslMode::Disable);
    }

    // ---- key=value form -------------------------------------------------

    #[test]
    fn key_value_basic() {
        let c = ok("host=localhost port=5433 user=bob password=pw dbname=mydb \
                    application_name=app options='-c search_path=x' connect_timeout=10");
        assert_eq!(c.hosts, vec![tcp("localhost", 5433)]);
        assert_eq!(c.user, "bob");
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.dbname, "mydb");
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.options.as_deref(), Some("-c search_path=x"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn key_value_whitespace_around_equals() {
        let c = ok("  host =  h1\tport= 1234\nuser\t=\tu  ");
        assert_eq!(c.hosts, vec![tcp("h1", 1234)]);
        assert_eq!(c.user, "u");
    }

    #[test]
    fn key_value_quoting_and_escapes() {
        let c = ok(r"password='it\'s a \\ secret' dbname='my db' user=a\ b options=x\'y");
        assert_eq!(c.password.as_deref(), Some(r"it's a \ secret"));
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.user, "a b");
        assert_eq!(c.options.as_deref(), Some("x'y"));
        // Quoted value directly followed by the next keyword.
        let c = ok("dbname='x'user=y");
        assert_eq!((c.dbname.as_str(), c.user.as_str()), ("x", "y"));
        // Empty quoted value means "default" for user.
        assert_eq!(ok("user='' dbname=d").user, "osuser");
    }

    #[test]
    fn key_value_later_duplicate_wins() {
        assert_eq!(ok("dbname=a dbname=b").dbname, "b");
    }

    #[test]
    fn key_value_value_after_equals_skips_whitespace_like_libpq() {
        // libpq skips whitespace after '=', so an "empty" value swallows the
        // next word.
        let c = ok("application_name= dbname=d");
        assert_eq!(c.application_name.as_deref(), Some("dbname=d"));
        assert_eq!(c.dbname, "osuser");
    }

    #[test]
    fn key_value_errors() {
        assert_eq!(fail("host=h foo=bar"), "invalid connection option \"foo\"");
        assert_eq!(
            fail("host"),
            "missing \"=\" after \"host\" in connection info string"
        );
        assert_eq!(
            fail("host=h dbname"),
            "missing \"=\" after \"dbname\" in connection info string"
        );
        assert_eq!(
            fail("host='abc"),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            fail(r"host='abc\"),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            fail("replication=database"),
            "connection option \"replication\" is not supported by fraiseql-wire"
        );
    }

    #[test]
    fn key_value_errors_never_echo_password_fragments() {
        let m = fail("password=abc s3cr3t host=h");
        assert!(!m.contains("s3cr3t"), "{m}");
        assert!(m.contains("password"), "{m}");
        let m = fail("password=abc s3cr3t=x");
        assert!(!m.contains("s3cr3t"), "{m}");
        let m = fail("password='s3cr3t");
        assert!(!m.contains("s3cr3t"), "{m}");
        // A mistyped URI is not echoed either.
        let m = fail("postgresql:/u:s3cr3t@h/db");
        assert!(!m.contains("s3cr3t"), "{m}");
        assert!(m.contains("postgresql://"), "{m}");
    }

    // ---- URI form -------------------------------------------------------

    #[test]
    fn uri_full() {
        let c =
            ok("postgresql://bob:pw@db.example.com:6543/mydb?application_name=app&sslmode=require");
        assert_eq!(c.hosts, vec![tcp("db.example.com", 6543)]);
        assert_eq!(c.user, "bob");
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.dbname, "mydb");
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.sslmode, SslMode::Require);
        assert_eq!(ok("postgres://bob@h/d"), ok("postgresql://bob@h/d"));
    }

    #[test]
    fn uri_partial_forms() {
        let c = ok("postgresql://h");
        assert_eq!(c.hosts, vec![tcp("h", 5432)]);
        assert_eq!(c.dbname, "osuser");
        let c = ok("postgresql://h:7000");
        assert_eq!(c.hosts, vec![tcp("h", 7000)]);
        let c = ok("postgresql:///db");
        assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
        assert_eq!(c.dbname, "db");
        let c = ok("postgresql://:7000/db");
        assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 7000)]);
        let c = ok("postgresql://user@/db");
        assert_eq!(c.user, "user");
        assert_eq!(c.password, None);
        let c = ok("postgresql://:pw@h");
        assert_eq!(c.user, "osuser");
        assert_eq!(c.password.as_deref(), Some("pw"));
        let c = ok("postgresql://u:@h");
        assert_eq!(c.password, None);
        let c = ok("postgresql://h/db?");
        assert_eq!(c.dbname, "db");
        let c = ok("postgresql://h?dbname=q&&user=z&");
        assert_eq!((c.dbname.as_str(), c.user.as_str()), ("q", "z"));
    }

    #[test]
    fn uri_percent_decoding_everywhere() {
        let c = ok("postgresql://us%40er:p%3Aw%2F%40d@h%2Dx:5%34%332/d%20b?application_name=a%26b&options=-c%20x%3Dy");
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.as_deref(), Some("p:w/@d"));
        assert_eq!(c.hosts, vec![tcp("h-x", 5432)]);
        assert_eq!(c.dbname, "d b");
        assert_eq!(c.application_name.as_deref(), Some("a&b"));
        assert_eq!(c.options.as_deref(), Some("-c x=y"));
        // '+' is not a space; non-ASCII is fine.
        let c = ok("postgresql://h/a+b%C3%A9");
        assert_eq!(c.dbname, "a+bé");
        // Query keys are decoded too.
        assert_eq!(ok("postgresql://h?db%6eame=x").dbname, "x");
    }

    #[test]
    fn uri_ipv6() {
        let c = ok("postgresql://[::1]:5433/db");
        assert_eq!(c.hosts, vec![tcp("::1", 5433)]);
        let c = ok("postgresql://u@[2001:db8::7]/db");
        assert_eq!(c.hosts, vec![tcp("2001:db8::7", 5432)]);
        let c = ok("postgresql://[fe80::1%25eth0]");
        assert_eq!(c.hosts, vec![tcp("fe80::1%eth0", 5432)]);
        let c = ok("postgresql://[::1]:1,[::2]:2");
        assert_eq!(c.hosts, vec![tcp("::1", 1), tcp("::2", 2)]);
        let c = ok("postgresql://[::1]?sslmode=disable");
        assert_eq!(c.hosts, vec![tcp("::1", 5432)]);
        // Key/value form takes IPv6 without brackets.
        assert_eq!(ok("host=::1 port=5").hosts, vec![tcp("::1", 5)]);
    }

    #[test]
    fn uri_socket_paths() {
        let c = ok("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
        assert_eq!(c.hosts, vec![unix("/var/run/postgresql", 5432)]);
        assert_eq!(c.dbname, "db");
        let c = ok("postgresql://%2Ftmp:6000/db");
        assert_eq!(c.hosts, vec![unix("/tmp", 6000)]);
        let c = ok("postgresql:///db?host=/tmp&port=7000");
        assert_eq!(c.hosts, vec![unix("/tmp", 7000)]);
        let c = ok("postgresql://ignored/db?host=%2Fsock");
        assert_eq!(c.hosts, vec![unix("/sock", 5432)]);
        assert_eq!(ok("host=/tmp").hosts, vec![unix("/tmp", 5432)]);
    }

    #[test]
    fn uri_ssl_true_means_require() {
        assert_eq!(ok("postgresql://h?ssl=true").sslmode, SslMode::Require);
        assert_eq!(
            fail("postgresql://h?ssl=false"),
            "invalid URI query parameter: \"ssl\""
        );
    }

    #[test]
    fn uri_errors() {
        assert_eq!(
            fail("postgresql://h?foo=bar"),
            "invalid URI query parameter: \"foo\""
        );
        assert_eq!(
            fail("postgresql://h?require_auth=md5"),
            "connection option \"require_auth\" is not supported by fraiseql-wire"
        );
        assert_eq!(
            fail("postgresql://host:5432:5433"),
            "invalid port number: \"5432:5433\""
        );
        assert_eq!(
            fail("postgresql://h?sslmode"),
            "missing key/value separator \"=\" in URI query parameter: \"sslmode\""
        );
        assert_eq!(
            fail("postgresql://h?options=a=b"),
            "extra key/value separator \"=\" in URI query parameter \"options\" \
             (percent-encode \"=\" as %3D)"
        );
        assert_eq!(
            fail("postgresql://[::1"),
            "end of string reached when looking for matching \"]\" in IPv6 host address in URI"
        );
        assert_eq!(
            fail("postgresql://[]/db"),
            "IPv6 host address may not be empty in URI"
        );
        assert_eq!(
            fail("postgresql://[::1]x/db"),
            "unexpected character \"x\" at position 19 in URI (expected \":\" or \"/\")"
        );
        assert_eq!(
            fail("postgresql://h/d%zzb"),
            "invalid percent-encoded token in URI database name: \"d%zzb\""
        );
        assert_eq!(
            fail("postgresql://h%2/d"),
            "invalid percent-encoded token in URI host: \"h%2\""
        );
        assert_eq!(
            fail("postgresql://h/d%00"),
            "forbidden value %00 in percent-encoded URI database name: \"d%00\""
        );
        assert_eq!(
            fail("postgresql://h/d%FF"),
            "percent-decoded URI database name is not valid UTF-8: \"d%FF\""
        );
        assert_eq!(
            fail("postgresql://u%ZZ@h"),
            "invalid percent-encoded token in URI user name: \"u%ZZ\""
        );
        assert_eq!(
            fail("postgresql://h?application_name=%G1"),
            "invalid percent-encoded token in URI query parameter \"application_name\": \"%G1\""
        );
    }

    #[test]
    fn uri_errors_never_contain_the_password() {
        let cases = [
            "postgresql://u:s3cr3t@host:99999999/db",
            "postgresql://u:s3cr3t@host/db?foo=1",
            "postgresql://u:s3cr3t@host/db?sslmode=bogus",
            "postgresql://u:s3cr3t%zz@host/db",
            "postgresql://u:s3cr3t%00@host/db",
            "postgresql://u:s3cr3t%FF@host/db",
            "postgresql://host/db?password=s3cr3t%zz",
            "postgresql://host/db?password=s3cr3t=x",
            "postgresql://host/db?password=s3cr3t&connect_timeout=s3cr3t",
            "postgresql://u:s3cr3t@[::1",
        ];
        for case in cases {
            let m = fail(case);
            assert!(!m.contains("s3cr3t"), "{case}: {m}");
        }
        assert_eq!(
            fail("postgresql://u:s3cr3t@host:99999999/db"),
            "invalid port number: \"99999999\""
        );
        assert_eq!(
            fail("postgresql://u:s3cr3t%zz@host/db"),
            "invalid percent-encoded token in URI password"
        );
        // Even a value that happens to equal the password is scrubbed.
        assert_eq!(
            fail("postgresql://u:12345x@host:12345x/db"),
            "invalid port number: \"***\""
        );
        // A short password is hidden only as a whole quoted value, so the
        // rest of the message stays readable.
        assert_eq!(
            fail("postgresql://u:p@host:p/db"),
            "invalid port number: \"***\""
        );
        assert_eq!(
            fail("postgresql://u:p@host/db?sslmode=prefer-p"),
            "invalid sslmode value: \"prefer-p\""
        );
        let env = env_of(&[("PGPASSWORD", "envs3cr3t"), ("PGPORT", "envs3cr3t")]);
        let m = fail_env("", &env);
        assert!(!m.contains("envs3cr3t"), "{m}");
    }

    // ---- hosts and ports ------------------------------------------------

    #[test]
    fn multi_host() {
        let c = ok("host=a,b,c port=1,2,3");
        assert_eq!(c.hosts, vec![tcp("a", 1), tcp("b", 2), tcp("c", 3)]);
        let c = ok("host=a,b port=7");
        assert_eq!(c.hosts, vec![tcp("a", 7), tcp("b", 7)]);
        let c = ok("host=a,/tmp");
        assert_eq!(c.hosts, vec![tcp("a", 5432), unix("/tmp", 5432)]);
        let c = ok("host=a,,b port=1,,3");
        assert_eq!(
            c.hosts,
            vec![tcp("a", 1), unix(DEFAULT_SOCKET_DIR, 5432), tcp("b", 3)]
        );
        let c = ok("postgresql://u@a:1,b,c:3/db");
        assert_eq!(c.hosts, vec![tcp("a", 1), tcp("b", 5432), tcp("c", 3)]);
        let c = ok("postgresql://a,b:9/db");
        assert_eq!(c.hosts, vec![tcp("a", 5432), tcp("b", 9)]);
        assert_eq!(
            fail("host=a,b,c port=1,2"),
            "could not match 2 port numbers to 3 hosts"
        );
        assert_eq!(
            fail("host=a port=1,2"),
            "could not match 2 port numbers to 1 hosts"
        );
    }

    #[test]
    fn ports() {
        assert_eq!(ok("port=1").hosts[0].1, 1);
        assert_eq!(ok("port=65535").hosts[0].1, 65535);
        assert_eq!(ok("port=' 5433 '").hosts[0].1, 5433);
        assert_eq!(ok("port=''").hosts[0].1, 5432);
        for bad in ["0", "65536", "99999999", "abc", "-1", "+5", "54x", "1.5"] {
            assert_eq!(
                fail(&format!("port={bad}")),
                format!("invalid port number: \"{bad}\"")
            );
        }
        assert_eq!(fail("postgresql://h:abc"), "invalid port number: \"abc\"");
    }

    #[test]
    fn hostaddr() {
        let c = ok("hostaddr=10.0.0.1 port=6000");
        assert_eq!(c.hosts, vec![tcp("10.0.0.1", 6000)]);
        assert_eq!(c.hostaddr.as_deref(), Some("10.0.0.1"));
        assert_eq!(c.hostaddr_at(0), Some("10.0.0.1".parse().unwrap()));
        let c = ok("host=db.example,other hostaddr=10.0.0.1,");
        assert_eq!(c.hosts, vec![tcp("db.example", 5432), tcp("other", 5432)]);
        assert_eq!(c.hostaddr_at(0), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.hostaddr_at(1), None);
        assert_eq!(c.hostaddr_at(2), None);
        let c = ok("host=,h hostaddr=::1,");
        assert_eq!(c.hosts, vec![tcp("::1", 5432), tcp("h", 5432)]);
        assert_eq!(ok("").hostaddr_at(0), None);
        assert_eq!(
            fail("hostaddr=db.example"),
            "could not parse network address \"db.example\" in hostaddr (expected a numeric IP address)"
        );
        assert_eq!(
            fail("host=a,b hostaddr=1.2.3.4"),
            "could not match 2 host names to 1 hostaddr values"
        );
    }

    #[test]
    fn verify_full_needs_a_host_name_not_only_hostaddr() {
        const MSG: &str = "host name must be specified for a verified SSL connection";
        for s in [
            "hostaddr=127.0.0.1 sslmode=verify-full",
            "host='' hostaddr=127.0.0.1 sslmode=verify-full",
            "host=db.example, hostaddr=,10.0.0.1 sslmode=verify-full",
            // sslrootcert=system makes the default sslmode verify-full
            "hostaddr=127.0.0.1 sslrootcert=system",
        ] {
            let m = fail(s);
            assert!(m.contains(MSG), "{s}: {m}");
        }
        let m = fail("host=a,,b hostaddr=,10.0.0.2, sslmode=verify-full");
        assert!(m.contains("(host 2 of 3, hostaddr 10.0.0.2)"), "{m}");
        // a host name given with the address, or a mode that checks no name, is fine
        ok("host=db.example hostaddr=127.0.0.1 sslmode=verify-full");
        ok("host=127.0.0.1 hostaddr=127.0.0.1 sslmode=verify-full");
        ok("hostaddr=127.0.0.1 sslmode=verify-ca");
        ok("hostaddr=127.0.0.1 sslmode=require");
    }

    // ---- individual options --------------------------------------------

    #[test]
    fn sslmode_values() {
        for (s, m) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(ok(&format!("sslmode={s}")).sslmode, m);
            assert_eq!(m.as_str(), s);
            assert_eq!(m.to_string(), s);
        }
        assert_eq!(fail("sslmode=bogus"), "invalid sslmode value: \"bogus\"");
        assert_eq!(
            fail("sslmode=Require"),
            "invalid sslmode value: \"Require\""
        );
        assert_eq!(fail("sslmode=''"), "invalid sslmode value: \"\"");
        assert!(SslMode::Require.requires_tls());
        assert!(!SslMode::Prefer.requires_tls());
        assert!(SslMode::VerifyCa.verifies_certificate());
        assert!(!SslMode::Require.verifies_certificate());
        assert!(SslMode::VerifyFull.verifies_hostname());
        assert!(!SslMode::VerifyCa.verifies_hostname());
    }

    #[test]
    fn connect_timeout_values() {
        assert_eq!(ok("connect_timeout=0").connect_timeout, None);
        assert_eq!(ok("connect_timeout=-5").connect_timeout, None);
        assert_eq!(
            ok("connect_timeout=1").connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            ok("connect_timeout=2").connect_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            ok("connect_timeout=' 30 '").connect_timeout,
            Some(Duration::from_secs(30))
        );
        for bad in ["abc", "1.5", "", "99999999999"] {
            assert_eq!(
                fail(&format!("connect_timeout='{bad}'")),
                format!(
                    "invalid integer value \"{bad}\" for connection option \"connect_timeout\""
                )
            );
        }
    }

    #[test]
    fn keepalive_options() {
        let c = ok("keepalives=0 keepalives_idle=30 keepalives_interval=-1 keepalives_count=4");
        assert!(!c.keepalives);
        assert_eq!(c.keepalives_idle, Some(Duration::from_secs(30)));
        assert_eq!(c.keepalives_interval, Some(Duration::from_secs(0)));
        assert_eq!(c.keepalives_count, Some(4));
        assert!(ok("keepalives=1").keepalives);
        assert!(ok("keepalives=7").keepalives);
        assert_eq!(
            fail("keepalives=yes"),
            "invalid integer value \"yes\" for connection option \"keepalives\""
        );
        assert_eq!(
            fail("keepalives_count=x"),
            "invalid integer value \"x\" for connection option \"keepalives_count\""
        );
    }

    #[test]
    fn ssl_files_and_sni() {
        let c = ok("sslrootcert=/ca.pem sslcert=/c.pem sslkey=/k.pem sslsni=0");
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.sslcert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.sslkey, Some(PathBuf::from("/k.pem")));
        assert!(!c.sslsni);
        assert!(ok("sslsni=1").sslsni);
        assert_eq!(ok("sslrootcert=''").sslrootcert, None);
        assert_eq!(
            ok("sslrootcert=system").sslrootcert,
            Some(PathBuf::from("system"))
        );
        assert_eq!(fail("sslsni=yes"), "invalid sslsni value: \"yes\"");
    }

    #[test]
    fn application_name_and_fallback() {
        assert_eq!(
            ok("fallback_application_name=fb")
                .application_name
                .as_deref(),
            Some("fb")
        );
        assert_eq!(
            ok("fallback_application_name=fb application_name=app")
                .application_name
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            ok("fallback_application_name=fb application_name=''")
                .application_name
                .as_deref(),
            Some("fb")
        );
        let env = env_of(&[("PGAPPNAME", "envapp")]);
        let c = parse_env("fallback_application_name=fb", &env).unwrap();
        assert_eq!(c.application_name.as_deref(), Some("envapp"));
    }

    #[test]
    fn target_session_attrs() {
        use TargetSessionAttrs as T;
        for (v, want) in [
            ("any", T::Any),
            ("read-write", T::ReadWrite),
            ("read-only", T::ReadOnly),
            ("primary", T::Primary),
            ("standby", T::Standby),
            ("prefer-standby", T::PreferStandby),
        ] {
            let c = ok(&format!("target_session_attrs={v}"));
            assert_eq!(c.target_session_attrs, want);
            assert_eq!(want.as_str(), v);
            let c = parse_env("", &env_of(&[("PGTARGETSESSIONATTRS", v)])).unwrap();
            assert_eq!(c.target_session_attrs, want, "from PGTARGETSESSIONATTRS");
        }
        assert_eq!(
            fail("target_session_attrs=bogus"),
            "invalid target_session_attrs value: \"bogus\""
        );
        assert_eq!(
            fail("target_session_attrs=Primary"),
            "invalid target_session_attrs value: \"Primary\""
        );
    }

    #[test]
    fn load_balance_hosts() {
        assert_eq!(
            ok("load_balance_hosts=random").load_balance_hosts,
            LoadBalanceHosts::Random
        );
        assert_eq!(
            ok("load_balance_hosts=disable").load_balance_hosts,
            LoadBalanceHosts::Disable
        );
        let c = parse_env("", &env_of(&[("PGLOADBALANCEHOSTS", "random")])).unwrap();
        assert_eq!(c.load_balance_hosts, LoadBalanceHosts::Random);
        assert_eq!(
            fail("load_balance_hosts=yes"),
            "invalid load_balance_hosts value: \"yes\""
        );
    }

    #[test]
    fn tcp_user_timeout() {
        assert_eq!(
            ok("tcp_user_timeout=1500").tcp_user_timeout,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            ok("tcp_user_timeout=-5").tcp_user_timeout,
            Some(Duration::ZERO)
        );
        assert_eq!(
            fail("tcp_user_timeout=1s"),
            "invalid integer value \"1s\" for connection option \"tcp_user_timeout\""
        );
    }

    #[test]
    fn client_encoding() {
        ok("client_encoding=UTF8");
        ok("client_encoding=utf8");
        ok("client_encoding=UTF-8");
        assert_eq!(
            fail("client_encoding=LATIN1"),
            "client_encoding \"LATIN1\" is not supported (only UTF8 is)"
        );
        assert_eq!(
            fail_env("", &env_of(&[("PGCLIENTENCODING", "SQL_ASCII")])),
            "client_encoding \"SQL_ASCII\" is not supported (only UTF8 is)"
        );
    }

    #[test]
    fn gssencmode_channel_binding_and_ignored_options() {
        ok("gssencmode=disable");
        ok("gssencmode=prefer");
        assert_eq!(
            fail("gssencmode=require"),
            "gssencmode value \"require\" is not supported (no GSSAPI support)"
        );
        assert_eq!(fail("gssencmode=x"), "invalid gssencmode value: \"x\"");
        assert_eq!(
            ok("channel_binding=disable").channel_binding,
            ChannelBindingMode::Disable
        );
        assert_eq!(
            ok("channel_binding=prefer").channel_binding,
            ChannelBindingMode::Prefer
        );
        assert_eq!(
            ok("channel_binding=require").channel_binding,
            ChannelBindingMode::Require
        );
        assert_eq!(
            fail("channel_binding=maybe"),
            "invalid channel_binding value: \"maybe\""
        );
        assert_eq!(
            ok("sslcompression=1 krbsrvname=postgres gsslib=gssapi"),
            ok("")
        );
        assert_eq!(
            fail("service=mydb"),
            "connection option \"service\" (\"mydb\") is not supported: there is no pg_service.conf support"
        );
        ok("service=''");
    }

    // ---- environment ----------------------------------------------------

    #[test]
    fn environment_defaults() {
        let env = env_of(&[
            ("PGHOST", "envhost,/envsock"),
            ("PGPORT", "1111,2222"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGOPTIONS", "-c x=1"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/r.pem"),
            ("PGSSLCERT", "/c.pem"),
            ("PGSSLKEY", "/k.pem"),
            ("PGTARGETSESSIONATTRS", "any"),
            ("PGCHANNELBINDING", "require"),
        ]);
        let c = parse_env("", &env).unwrap();
        assert_eq!(c.hosts, vec![tcp("envhost", 1111), unix("/envsock", 2222)]);
        assert_eq!(c.user, "envuser");
        assert_eq!(c.password.as_deref(), Some("envpw"));
        assert_eq!(c.dbname, "envdb");
        assert_eq!(c.application_name.as_deref(), Some("envapp"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(c.options.as_deref(), Some("-c x=1"));
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/r.pem")));
        assert_eq!(c.sslcert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.sslkey, Some(PathBuf::from("/k.pem")));
        assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
        assert_eq!(c.channel_binding, ChannelBindingMode::Require);

        let c = parse_env("", &env_of(&[("PGHOSTADDR", "127.0.0.1")])).unwrap();
        assert_eq!(c.hosts, vec![tcp("127.0.0.1", 5432)]);
        assert_eq!(c.hostaddr.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn explicit_values_win_over_environment() {
        let env = env_of(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "1111"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "verify-full"),
            ("PGCONNECT_TIMEOUT", "bogus"),
        ]);
        let c = parse_env(
            "host=h port=2 user=u password=p dbname=d sslmode=disable connect_timeout=0",
            &env,
        )
        .unwrap();
        assert_eq!(c.hosts, vec![tcp("h", 2)]);
        assert_eq!(c.user, "u");
        assert_eq!(c.password.as_deref(), Some("p"));
        assert_eq!(c.dbname, "d");
        assert_eq!(c.sslmode, SslMode::Disable);
        assert_eq!(c.connect_timeout, None);

        let c = parse_env(
            "postgresql://u:p@h:2/d?sslmode=disable&connect_timeout=0",
            &env,
        )
        .unwrap();
        assert_eq!(c.hosts, vec![tcp("h", 2)]);
        assert_eq!((c.user.as_str(), c.dbname.as_str()), ("u", "d"));
        assert_eq!(c.sslmode, SslMode::Disable);

        // Parts absent from a URI still come from the environment.
        let c = parse_env("postgresql://h/d?connect_timeout=0", &env).unwrap();
        assert_eq!(c.hosts, vec![tcp("h", 1111)]);
        assert_eq!(c.user, "envuser");

        // An explicit empty value overrides the environment with the built-in
        // default, as libpq.
        let c = parse_env("host='' port='' user='' dbname='' connect_timeout=0", &env).unwrap();
        assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
        assert_eq!(c.user, "osuser");
        assert_eq!(c.dbname, "osuser");
    }

    #[test]
    fn empty_environment_variables_are_unset() {
        let env = env_of(&[("PGSSLMODE", ""), ("PGHOST", ""), ("PGUSER", "")]);
        let c = parse_env("", &env).unwrap();
        assert_eq!(c, ok(""));
    }

    #[test]
    fn environment_errors() {
        assert_eq!(
            fail_env("", &env_of(&[("PGSSLMODE", "nope")])),
            "invalid sslmode value: \"nope\""
        );
        assert_eq!(
            fail_env("", &env_of(&[("PGPORT", "0")])),
            "invalid port number: \"0\""
        );
        assert_eq!(
            fail_env("", &env_of(&[("PGCONNECT_TIMEOUT", "soon")])),
            "invalid integer value \"soon\" for connection option \"connect_timeout\""
        );
        assert_eq!(
            fail_env("", &env_of(&[("PGSERVICE", "svc")])),
            "connection option \"service\" (\"svc\") is not supported: there is no pg_service.conf support"
        );
    }

    #[test]
    fn default_user_lookup_failure_is_reported_only_when_needed() {
        let no_user = || Err(err("could not look up local user ID 4242: boom"));
        let empty = |_: &str| None;
        assert_eq!(
            parse_inner("host=h", &empty, &no_user).unwrap_err().message,
            "could not look up local user ID 4242: boom"
        );
        assert_eq!(parse_inner("user=u", &empty, &no_user).unwrap().user, "u");
    }

    // ---- Debug, describe, startup parameters ---------------------------

    #[test]
    fn debug_redacts_password() {
        let c = ok("host=h user=u password=hunter2 dbname=d");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("password: Some(\"***\")"), "{dbg}");
        assert!(dbg.contains("user: \"u\""), "{dbg}");
        let alt = format!("{c:#?}");
        assert!(!alt.contains("hunter2"), "{alt}");
        assert!(format!("{:?}", ok("host=h")).contains("password: None"));
    }

    #[test]
    fn describe_is_safe() {
        let c = ok("host=127.0.0.1 port=5432 user=bob dbname=x password=hunter2");
        assert_eq!(c.describe(), "host=127.0.0.1 port=5432 user=bob dbname=x");
        let c = ok("host=a,/tmp port=1,2 user='b b' dbname=it\\'s");
        assert_eq!(
            c.describe(),
            r"host=a,/tmp port=1,2 user='b b' dbname='it\'s'"
        );
        let c = ok("host=h hostaddr=10.0.0.1 user=u dbname=d");
        assert_eq!(
            c.describe(),
            "host=h hostaddr=10.0.0.1 port=5432 user=u dbname=d"
        );
        let c = ok("host=a,b port=7 user=u dbname=d");
        assert_eq!(c.describe(), "host=a,b port=7 user=u dbname=d");
        // The description parses back to the same targets.
        let back = ok(&ok("host=a,/tmp port=1,2 user='b b' dbname=it\\'s").describe());
        assert_eq!(back.hosts, vec![tcp("a", 1), unix("/tmp", 2)]);
        assert_eq!((back.user.as_str(), back.dbname.as_str()), ("b b", "it's"));
    }

    #[test]
    fn startup_params() {
        let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            ok("user=u dbname=d").startup_params(),
            s(&[
                ("user", "u"),
                ("database", "d"),
                ("client_encoding", "UTF8")
            ])
        );
        assert_eq!(
            ok("user=u dbname=d application_name=app options='-c geqo=off' password=pw")
                .startup_params(),
            s(&[
                ("user", "u"),
                ("database", "d"),
                ("application_name", "app"),
                ("options", "-c geqo=off"),
                ("client_encoding", "UTF8"),
            ])
        );
        assert_eq!(
            ok("user=u options=''").startup_params(),
            s(&[
                ("user", "u"),
                ("database", "u"),
                ("client_encoding", "UTF8")
            ])
        );
    }

    // ---- password file --------------------------------------------------

    #[test]
    fn pgpass_line_matching() {
        let file = "\
# comment:*:*:*:nope
db.example:5432:app:alice:first
*:5432:*:bob:b\\:o\\\\b
wild\\*:*:*:*:escaped-star
localhost:*:*:carol:local
/tmp:*:*:dave:socket
*:*:*:*:
*:*:*:*:never";
        let find = |h: &str, p: &str, d: &str, u: &str| pgpass_lookup(file.lines(), h, p, d, u);
        assert_eq!(
            find("db.example", "5432", "app", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(find("db.example", "5433", "app", "alice"), None);
        assert_eq!(
            find("anything", "5432", "x", "bob").as_deref(),
            Some("b:o\\b")
        );
        assert_eq!(
            find("wild*", "1", "d", "zed").as_deref(),
            Some("escaped-star")
        );
        assert_eq!(find("wildX", "1", "d", "zed"), None);
        assert_eq!(
            find("localhost", "1", "d", "carol").as_deref(),
            Some("local")
        );
        assert_eq!(find("/tmp", "1", "d", "dave").as_deref(), Some("socket"));
        // First match wins even if its password is empty.
        assert_eq!(find("other", "1", "d", "zed"), None);
        // Malformed lines (too few fields) never match.
        assert_eq!(
            pgpass_lookup(["*:*:*"].into_iter(), "h", "1", "d", "u"),
            None
        );
        // A password stops at an unescaped ':'.
        assert_eq!(
            pgpass_lookup(["*:*:*:*:pw:extra"].into_iter(), "h", "1", "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[cfg(unix)]
    mod passfile {
        use super::*;
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicUsize, Ordering};

        struct TempDir(PathBuf);

        impl TempDir {
            fn new() -> TempDir {
                static N: AtomicUsize = AtomicUsize::new(0);
                let dir = std::env::temp_dir().join(format!(
                    "fraiseql-wire-conninfo-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&dir).unwrap();
                TempDir(dir)
            }

            fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
                let path = self.0.join(name);
                std::fs::write(&path, contents).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                path
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        const FILE: &str = "\
db.example:5432:app:alice:alice-pw
db.example:*:*:*:db-any
localhost:5432:*:bob:bob-local
/tmp:6000:*:bob:bob-tmp\r
10.0.0.1:*:*:*:addr-pw
";

        fn with_passfile(dir: &TempDir, mode: u32) -> Env {
            let path = dir.write("pgpass", FILE, mode);
            env_of(&[("PGPASSFILE", path.to_str().unwrap())])
        }

        #[test]
        fn used_when_no_password_given() {
            let dir = TempDir::new();
            let env = with_passfile(&dir, 0o600);
            let pw = |s: &str| parse_env(s, &env).unwrap().password;
            assert_eq!(
                pw("host=db.example user=alice dbname=app").as_deref(),
                Some("alice-pw")
            );
            assert_eq!(
                pw("host=db.example user=carol dbname=x").as_deref(),
                Some("db-any")
            );
            assert_eq!(pw("host=other user=alice dbname=app"), None);
            // Explicit (and environment) passwords take precedence.
            assert_eq!(
                pw("host=db.example user=alice dbname=app password=given").as_deref(),
                Some("given")
            );
            let mut env2 = env.clone();
            env2.insert("PGPASSWORD".into(), "envpw".into());
            assert_eq!(
                parse_env("host=db.example user=alice dbname=app", &env2)
                    .unwrap()
                    .password
                    .as_deref(),
                Some("envpw")
            );
            // An explicitly empty password still consults the file.
            assert_eq!(
                pw("host=db.example user=alice dbname=app password=''").as_deref(),
                Some("alice-pw")
            );
            // URI form, and the first host is the one matched.
            assert_eq!(
                pw("postgresql://alice@db.example,other/app").as_deref(),
                Some("alice-pw")
            );
            assert_eq!(pw("postgresql://alice@other,db.example/app"), None);
        }

        #[test]
        fn localhost_matches_default_socket_and_hostaddr_used_without_host() {
            let dir = TempDir::new();
            let env = with_passfile(&dir, 0o600);
            let pw = |s: &str| parse_env(s, &env).unwrap().password;
            // Default socket directory counts as "localhost".
            assert_eq!(pw("user=bob").as_deref(), Some("bob-local"));
            assert_eq!(
                pw("host=/var/run/postgresql user=bob").as_deref(),
                Some("bob-local")
            );
            assert_eq!(pw("host=localhost user=bob").as_deref(), Some("bob-local"));
            // Another socket directory is matched by its path (CRLF tolerated).
            assert_eq!(
                pw("host=/tmp port=6000 user=bob").as_deref(),
                Some("bob-tmp")
            );
            assert_eq!(pw("host=/tmp port=5432 user=bob"), None);
            // hostaddr is matched when no host is given.
            assert_eq!(pw("hostaddr=10.0.0.1 user=x").as_deref(), Some("addr-pw"));
        }

        #[test]
        fn passfile_keyword_and_home_default() {
            let dir = TempDir::new();
            let path = dir.write("custom", "*:*:*:*:from-keyword\n", 0o600);
            let s = format!("user=u passfile='{}'", path.display());
            assert_eq!(
                parse_env(&s, &Env::new()).unwrap().password.as_deref(),
                Some("from-keyword")
            );
            dir.write(".pgpass", "*:*:*:*:from-home\n", 0o600);
            let env = env_of(&[("HOME", dir.0.to_str().unwrap())]);
            assert_eq!(
                parse_env("user=u", &env).unwrap().password.as_deref(),
                Some("from-home")
            );
            // The keyword beats PGPASSFILE, which beats HOME.
            let other = dir.write("other", "*:*:*:*:from-env\n", 0o600);
            let mut env2 = env.clone();
            env2.insert("PGPASSFILE".into(), other.to_str().unwrap().into());
            assert_eq!(
                parse_env("user=u", &env2).unwrap().password.as_deref(),
                Some("from-env")
            );
            assert_eq!(
                parse_env(&s, &env2).unwrap().password.as_deref(),
                Some("from-keyword")
            );
        }

        #[test]
        fn ignored_when_group_or_world_accessible_missing_or_not_a_file() {
            for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
                let dir = TempDir::new();
                let env = with_passfile(&dir, mode);
                let c = parse_env("host=db.example user=alice dbname=app", &env).unwrap();
                assert_eq!(c.password, None, "mode {mode:o}");
            }
            let dir = TempDir::new();
            let env = with_passfile(&dir, 0o400);
            let c = parse_env("host=db.example user=alice dbname=app", &env).unwrap();
            assert_eq!(c.password.as_deref(), Some("alice-pw"));

            let missing = dir.0.join("does-not-exist");
            let env = env_of(&[("PGPASSFILE", missing.to_str().unwrap())]);
            assert_eq!(parse_env("user=u", &env).unwrap().password, None);
            let env = env_of(&[("PGPASSFILE", dir.0.to_str().unwrap())]);
            assert_eq!(parse_env("user=u", &env).unwrap().password, None);
            let env = env_of(&[("HOME", "/nonexistent-fraiseql-home")]);
            assert_eq!(parse_env("user=u", &env).unwrap().password, None);
        }

        #[test]
        fn non_utf8_lines_are_skipped() {
            let dir = TempDir::new();
            let path = dir.0.join("bin");
            std::fs::write(&path, b"*:*:*:*:\xff\xfe\n*:*:*:*:good\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let env = env_of(&[("PGPASSFILE", path.to_str().unwrap())]);
            assert_eq!(
                parse_env("user=u", &env).unwrap().password.as_deref(),
                Some("good")
            );
        }
    }
}
