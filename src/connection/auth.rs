//! Authentication: the mechanisms (trust, cleartext, MD5, SCRAM-SHA-256 and -PLUS via
//! `postgres-protocol`'s SASL module), the SCRAM variant chosen, and the SCRAM checks. The
//! exchange itself is a step of the start-up state machine ([`super::startup`]).

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use crate::conninfo::ChannelBindingMode;
use crate::error::{Error, ErrorKind, Result};

/// The mechanism the server asked for (the `mechanism` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Trust,
    Cleartext,
    Md5,
    ScramSha256,
    /// SCRAM-SHA-256-PLUS: SCRAM with `tls-server-end-point` channel binding.
    ScramSha256Plus,
}

impl Mechanism {
    pub fn label(self) -> &'static str {
        match self {
            Mechanism::Trust => "trust",
            Mechanism::Cleartext => "cleartext",
            Mechanism::Md5 => "md5",
            Mechanism::ScramSha256 => "scram-sha-256",
            Mechanism::ScramSha256Plus => "scram-sha-256-plus",
        }
    }
}

pub(super) fn need_password<'a>(password: Option<&'a str>, what: &str) -> Result<&'a [u8]> {
    password.map(str::as_bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::Auth,
            format!("the server requested {what} authentication but no password was supplied"),
        )
    })
}

/// Take the SCRAM server-first message (AuthenticationSASLContinue): checked first (an
/// iteration count of 0 would make a proof without key stretching; libpq refuses it too),
/// then the proof is computed for the next message.
pub(crate) fn scram_server_first(scram: &mut ScramSha256, data: &[u8]) -> Result<()> {
    crate::protocol::check_scram_server_first(data)?;
    scram
        .update(data)
        .map_err(|e| Error::new(ErrorKind::Auth, format!("SCRAM exchange failed: {e}")))
}

/// Verify the SCRAM server-final message (AuthenticationSASLFinal): the server's signature.
pub(crate) fn scram_server_final(scram: &mut ScramSha256, data: &[u8]) -> Result<()> {
    scram.finish(data).map_err(|e| {
        Error::new(
            ErrorKind::Auth,
            format!("the server's SCRAM signature did not verify: {e}"),
        )
    })
}

/// An authentication method the server asked for that this library does not implement.
pub(super) fn unsupported(method: &str) -> Error {
    Error::new(
        ErrorKind::Auth,
        format!(
            "the server requested {method} authentication, which is not supported by this \
             library (supported: trust, password, md5, SCRAM-SHA-256)"
        ),
    )
}

/// A message the protocol does not allow during authentication (`fraiseql_protocol_errors_total`).
pub(super) fn unexpected(what: &str) -> Error {
    crate::metrics::protocol_error("unexpected_in_auth");
    Error::protocol(what)
}

/// Pick the SCRAM variant and the GS2 channel-binding flag, as libpq does: SCRAM-SHA-256-PLUS
/// ('p') on TLS when the server offers it and `channel_binding` is not `disable`; otherwise
/// SCRAM-SHA-256 with 'y' ("I could bind, you did not offer it", so the server can detect a
/// downgrade) on TLS, or 'n' without TLS or with binding disabled.
pub(super) fn choose_scram(
    info: &ChannelBindingInfo,
    has_scram: bool,
    has_plus: bool,
) -> Result<(Mechanism, ChannelBinding)> {
    let auth_err = |m: &str| Error::new(ErrorKind::Auth, m.to_owned());
    let require = info.mode == ChannelBindingMode::Require;
    if require && !info.tls {
        return Err(auth_err(
            "channel binding required (channel_binding=require), but SSL is not in use",
        ));
    }
    let wanted = info.tls && info.mode != ChannelBindingMode::Disable;
    if wanted && has_plus {
        match &info.end_point {
            Some(hash) => {
                return Ok((
                    Mechanism::ScramSha256Plus,
                    ChannelBinding::tls_server_end_point(hash.clone()),
                ))
            }
            None if require => {
                return Err(auth_err(
                    "channel binding required (channel_binding=require), but the server \
                     certificate's signature algorithm has no hash usable for \
                     tls-server-end-point",
                ))
            }
            None => {}
        }
    }
    if require {
        return Err(auth_err(
            "channel binding required (channel_binding=require), but the server did not offer \
             SCRAM-SHA-256-PLUS",
        ));
    }
    if !has_scram {
        return Err(auth_err(
            "the server offered no SASL mechanism this library supports (SCRAM-SHA-256)",
        ));
    }
    // The server offered -PLUS but no binding data could be computed: 'y' would be taken as a
    // downgrade attack, so claim no support.
    let binding = if wanted && !has_plus {
        ChannelBinding::unrequested()
    } else {
        ChannelBinding::unsupported()
    };
    Ok((Mechanism::ScramSha256, binding))
}

/// What SCRAM needs to know to choose between SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (built
/// from the transport by `tls::channel_binding_info`).
pub(crate) struct ChannelBindingInfo {
    pub mode: ChannelBindingMode,
    /// The connection runs over TLS.
    pub tls: bool,
    /// `tls-server-end-point` data: the hash of the server certificate (RFC 5929); `None` when
    /// not on TLS or the certificate's signature algorithm has no usable hash.
    pub end_point: Option<Vec<u8>>,
}
