//! Authentication exchanges: trust, cleartext, MD5 and SCRAM-SHA-256 (via `postgres-protocol`).

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::Connection;
use crate::error::{Error, ErrorKind, Result};

/// The mechanism the server asked for (the `mechanism` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Trust,
    Cleartext,
    Md5,
    ScramSha256,
}

impl Mechanism {
    pub fn label(self) -> &'static str {
        match self {
            Mechanism::Trust => "trust",
            Mechanism::Cleartext => "cleartext",
            Mechanism::Md5 => "md5",
            Mechanism::ScramSha256 => "scram-sha-256",
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
    channel_binding: ChannelBinding,
) -> Result<Mechanism> {
    let mut out = BytesMut::new();
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
            let mut has_scram = false;
            while let Some(m) = mechs.next().map_err(|e| Error::protocol(e.to_string()))? {
                if m == "SCRAM-SHA-256" {
                    has_scram = true;
                }
            }
            if !has_scram {
                return Err(Error::new(
                    ErrorKind::Auth,
                    "the server offered no SASL mechanism this library supports (SCRAM-SHA-256)",
                ));
            }
            let pw = need_password(password, "SCRAM-SHA-256")?;
            let mut scram = ScramSha256::new(pw, channel_binding);
            frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut out)
                .map_err(write_err)?;
            conn.send(&out).await?;
            match conn.read_message().await? {
                Message::AuthenticationSaslContinue(body) => {
                    scram.update(body.data()).map_err(|e| {
                        Error::new(ErrorKind::Auth, format!("SCRAM exchange failed: {e}"))
                    })?;
                }
                Message::ErrorResponse(body) => return Err(super::startup_error(body)),
                _ => return Err(Error::protocol("unexpected message during SCRAM exchange")),
            }
            out.clear();
            frontend::sasl_response(scram.message(), &mut out).map_err(write_err)?;
            conn.send(&out).await?;
            match conn.read_message().await? {
                Message::AuthenticationSaslFinal(body) => {
                    scram.finish(body.data()).map_err(|e| {
                        Error::new(
                            ErrorKind::Auth,
                            format!("the server's SCRAM signature did not verify: {e}"),
                        )
                    })?;
                }
                Message::ErrorResponse(body) => return Err(super::startup_error(body)),
                _ => return Err(Error::protocol("unexpected message during SCRAM exchange")),
            }
            expect_ok(conn).await?;
            Ok(Mechanism::ScramSha256)
        }
        Message::AuthenticationKerberosV5
        | Message::AuthenticationScmCredential
        | Message::AuthenticationGss
        | Message::AuthenticationSspi
        | Message::AuthenticationGssContinue(_) => Err(Error::new(
            ErrorKind::Auth,
            "the server requested an authentication method this library does not support \
             (GSSAPI/SSPI/Kerberos)",
        )),
        Message::ErrorResponse(body) => Err(super::startup_error(body)),
        _ => Err(Error::protocol(
            "unexpected message from the server during authentication",
        )),
    }
}

async fn expect_ok(conn: &mut Connection) -> Result<()> {
    match conn.read_message().await? {
        Message::AuthenticationOk => Ok(()),
        Message::ErrorResponse(body) => Err(super::startup_error(body)),
        _ => Err(Error::protocol(
            "expected AuthenticationOk from the server after the password",
        )),
    }
}
