//! Authentication exchanges: trust, cleartext, MD5 and SCRAM-SHA-256 (via `postgres-protocol`).

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::tls::ChannelBindingInfo;
use super::Connection;
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

fn need_password<'a>(password: Option<&'a str>, what: &str) -> Result<&'a [u8]> {
    password.map(str::as_bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::Auth,
            format!("the server requested {what} authentication but no password was supplied"),
        )
    })
}

fn write_err(e: std::io::Error) -> Error {
    Error::protocol(format!("could not encode an authentication message: {e}"))
}

/// Run the authentication exchange that starts with `first` (an Authentication* message).
/// Returns the mechanism used once AuthenticationOk arrives.
pub(super) async fn authenticate(
    conn: &mut Connection,
    first: Message,
    user: &str,
    password: Option<&str>,
    channel_binding: ChannelBindingInfo,
) -> Result<Mechanism> {
    let mut out = BytesMut::new();
    if channel_binding.mode == ChannelBindingMode::Require {
        // Checked before any password is sent (libpq does the same).
        let refused = match &first {
            Message::AuthenticationOk => Some("the server authenticated the client without it"),
            Message::AuthenticationCleartextPassword | Message::AuthenticationMd5Password(_) => {
                Some("the server asked for a password without channel binding")
            }
            _ => None,
        };
        if let Some(why) = refused {
            return Err(Error::new(
                ErrorKind::Auth,
                format!("channel binding required (channel_binding=require), but {why}"),
            ));
        }
    }
    match first {
        Message::AuthenticationOk => Ok(Mechanism::Trust),
        Message::AuthenticationCleartextPassword => {
            let pw = need_password(password, "cleartext password")?;
            frontend::password_message(pw, &mut out).map_err(write_err)?;
            conn.send(&out).await?;
            expect_ok(conn).await?;
            Ok(Mechanism::Cleartext)
        }
        Message::AuthenticationMd5Password(body) => {
            let pw = need_password(password, "MD5 password")?;
            let hash =
                postgres_protocol::authentication::md5_hash(user.as_bytes(), pw, body.salt());
            frontend::password_message(hash.as_bytes(), &mut out).map_err(write_err)?;
            conn.send(&out).await?;
            expect_ok(conn).await?;
            Ok(Mechanism::Md5)
        }
        Message::AuthenticationSasl(body) => {
            use fallible_iterator::FallibleIterator;
            let mut mechs = body.mechanisms();
            let (mut has_scram, mut has_plus) = (false, false);
            while let Some(m) = mechs.next().map_err(|e| Error::protocol(e.to_string()))? {
                match m {
                    "SCRAM-SHA-256" => has_scram = true,
                    "SCRAM-SHA-256-PLUS" => has_plus = true,
                    _ => {}
                }
            }
            let (mechanism, binding) = choose_scram(channel_binding, has_scram, has_plus)?;
            let name = match mechanism {
                Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
                _ => "SCRAM-SHA-256",
            };
            let pw = need_password(password, name)?;
            let mut scram = ScramSha256::new(pw, binding);
            frontend::sasl_initial_response(name, scram.message(), &mut out).map_err(write_err)?;
            conn.send(&out).await?;
            match conn.read_message().await? {
                Message::AuthenticationSaslContinue(body) => {
                    scram_server_first(&mut scram, body.data())?
                }
                Message::ErrorResponse(body) => return Err(super::startup_error(body)),
                _ => return Err(unexpected("unexpected message during SCRAM exchange")),
            }
            out.clear();
            frontend::sasl_response(scram.message(), &mut out).map_err(write_err)?;
            conn.send(&out).await?;
            match conn.read_message().await? {
                Message::AuthenticationSaslFinal(body) => {
                    scram_server_final(&mut scram, body.data())?
                }
                Message::ErrorResponse(body) => return Err(super::startup_error(body)),
                _ => return Err(unexpected("unexpected message during SCRAM exchange")),
            }
            expect_ok(conn).await?;
            Ok(mechanism)
        }
        Message::AuthenticationKerberosV5 => Err(unsupported("Kerberos V5 (request 2)")),
        Message::AuthenticationScmCredential => Err(unsupported(
            "SCM credential (request 6, Unix-socket peer credentials of PostgreSQL before 9.1)",
        )),
        Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
            Err(unsupported("GSSAPI (request 7)"))
        }
        Message::AuthenticationSspi => Err(unsupported("SSPI (request 9)")),
        Message::ErrorResponse(body) => Err(super::startup_error(body)),
        _ => Err(unexpected(
            "unexpected message from the server during authentication",
        )),
    }
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
fn unsupported(method: &str) -> Error {
    Error::new(
        ErrorKind::Auth,
        format!(
            "the server requested {method} authentication, which is not supported by this \
             library (supported: trust, password, md5, SCRAM-SHA-256)"
        ),
    )
}

/// A message the protocol does not allow during authentication (`fraiseql_protocol_errors_total`).
fn unexpected(what: &str) -> Error {
    crate::metrics::protocol_error("unexpected_in_auth");
    Error::protocol(what)
}

/// Pick the SCRAM variant and the GS2 channel-binding flag, as libpq does: SCRAM-SHA-256-PLUS
/// ('p') on TLS when the server offers it and `channel_binding` is not `disable`; otherwise
/// SCRAM-SHA-256 with 'y' ("I could bind, you did not offer it", so the server can detect a
/// downgrade) on TLS, or 'n' without TLS or with binding disabled.
fn choose_scram(
    info: ChannelBindingInfo,
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
        match info.end_point {
            Some(hash) => {
                return Ok((
                    Mechanism::ScramSha256Plus,
                    ChannelBinding::tls_server_end_point(hash),
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

async fn expect_ok(conn: &mut Connection) -> Result<()> {
    match conn.read_message().await? {
        Message::AuthenticationOk => Ok(()),
        Message::ErrorResponse(body) => Err(super::startup_error(body)),
        _ => Err(unexpected(
            "expected AuthenticationOk from the server after the password",
        )),
    }
}
