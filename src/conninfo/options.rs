//! The enumerated option values (`sslmode`, `channel_binding`,
//! `target_session_attrs`, `load_balance_hosts`) and [`Host`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::{err, ConnInfoError};

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
