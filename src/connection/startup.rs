//! The start-up exchange as a state machine without I/O: it is given the bytes the server sent
//! and says what to do next (write these bytes, read more, the session is authenticated, the
//! session is ready). The connection drives it with blocking reads and writes on the caller's
//! thread, or with the runtime's asynchronous ones ([`super::Connection`]); both drivers run
//! the same decisions, and the tests below run them on byte fixtures.
//!
//! States (each arrow is one message from the server; any other message, an ErrorResponse or
//! a message over [`crate::protocol::header`]'s limits ends the exchange with an error):
//!
//! ```text
//! Start ──(StartupMessage written)──> AwaitAuth
//! AwaitAuth ──AuthenticationOk──> AwaitReady                      (trust)
//! AwaitAuth ──CleartextPassword / MD5Password──> AwaitAuthOk      (password written)
//! AwaitAuth ──SASL──> AwaitSaslContinue                           (SASLInitialResponse written)
//! AwaitSaslContinue ──SASLContinue──> AwaitSaslFinal              (SASLResponse written)
//! AwaitSaslFinal ──SASLFinal──> AwaitAuthOk                       (server signature verified)
//! AwaitAuthOk ──AuthenticationOk──> AwaitReady
//! AwaitReady ──BackendKeyData / ParameterStatus / NoticeResponse──> AwaitReady
//! AwaitReady ──ReadyForQuery──> Done
//! ```

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::ScramSha256;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::auth::ChannelBindingInfo;
use super::auth::{self, Mechanism};
use crate::conninfo::{ChannelBindingMode, ConnConfig};
use crate::error::{Error, ErrorKind, Result, ServerError};
use crate::protocol::Phase;

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Write these bytes to the server whole, then step again.
    Send(BytesMut),
    /// The buffer holds no whole message: read more from the server, then step again.
    Read,
    /// AuthenticationOk arrived (by this mechanism): from here on messages are held to the
    /// session's limits. Step again for the session's parameters.
    Authenticated(Mechanism),
    /// ReadyForQuery: the session is started; the exchange is over.
    Ready(TransactionStatus),
}

/// The transaction status of a ReadyForQuery message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// 'I': not in a transaction block.
    Idle,
    /// 'T': in a transaction block.
    InTransaction,
    /// 'E': in a failed transaction block.
    Failed,
}

impl TransactionStatus {
    /// In words, for messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TransactionStatus::Idle => "idle",
            TransactionStatus::InTransaction => "in a transaction block",
            TransactionStatus::Failed => "in a failed transaction block",
        }
    }

    pub(crate) fn from_byte(b: u8) -> Result<TransactionStatus> {
        match b {
            b'I' => Ok(TransactionStatus::Idle),
            b'T' => Ok(TransactionStatus::InTransaction),
            b'E' => Ok(TransactionStatus::Failed),
            other => {
                crate::metrics::protocol_error("malformed");
                Err(Error::protocol(format!(
                    "the server sent a ReadyForQuery with an unknown transaction status 0x{other:02x}"
                )))
            }
        }
    }
}

enum State {
    Start,
    AwaitAuth,
    AwaitSaslContinue(Box<ScramSha256>, Mechanism),
    AwaitSaslFinal(Box<ScramSha256>, Mechanism),
    AwaitAuthOk(Mechanism),
    AwaitReady,
    Done,
    /// An error ended the exchange; stepping again repeats that nothing more can happen.
    Failed,
}

/// The start-up exchange of one connection (see the module's documentation).
pub(crate) struct Startup<'a> {
    state: State,
    params: Vec<(String, String)>,
    user: &'a str,
    password: Option<&'a str>,
    binding: ChannelBindingInfo,
    /// The mechanism label of the server's first answer (`None` before it arrived): the
    /// `mechanism` of `fraiseql_authentications_total`.
    requested: Option<&'static str>,
    /// AuthenticationOk arrived.
    authenticated: bool,
    /// The cancel key (BackendKeyData).
    pub key: Option<(i32, i32)>,
    /// The ParameterStatus messages, in order.
    pub parameters: Vec<(String, String)>,
    /// The NoticeResponses the server sent before ReadyForQuery.
    pub notices: Vec<ServerError>,
}

impl<'a> Startup<'a> {
    pub(crate) fn new(config: &'a ConnConfig, binding: ChannelBindingInfo) -> Startup<'a> {
        Startup {
            state: State::Start,
            params: config.startup_params(),
            user: &config.user,
            password: config.password.as_deref(),
            binding,
            requested: None,
            authenticated: false,
            key: None,
            parameters: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// The limits messages are held to now (see [`crate::protocol::header`]).
    pub(crate) fn phase(&self) -> Phase {
        if self.authenticated {
            Phase::Session
        } else {
            Phase::Auth
        }
    }

    /// The mechanism the server asked for, once its first answer arrived.
    pub(crate) fn requested(&self) -> Option<&'static str> {
        self.requested
    }

    /// Whether authentication has completed (AuthenticationOk received).
    pub(crate) fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The next step, taking at most one whole message from the front of `buf`.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> Result<Step> {
        if matches!(self.state, State::Start) {
            let mut out = BytesMut::new();
            let sent = frontend::startup_message(
                self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &mut out,
            );
            if let Err(e) = sent {
                self.state = State::Failed;
                return Err(Error::invalid(format!("invalid startup parameter: {e}")));
            }
            self.state = State::AwaitAuth;
            return Ok(Step::Send(out));
        }
        if matches!(self.state, State::Done) {
            return Err(Error::state(
                "the session start-up is over; nothing more is expected",
            ));
        }
        // Messages that need no answer (a verified SCRAM signature, the session's parameters)
        // are taken in turn until one does, or the buffer holds no whole message.
        loop {
            if matches!(self.state, State::Failed) {
                return Err(Error::state(
                    "the session start-up failed; nothing more is expected",
                ));
            }
            let Some(msg) = next_message(buf, self.phase())? else {
                return Ok(Step::Read);
            };
            let state = std::mem::replace(&mut self.state, State::Failed);
            let (next, step) = self.on_message(state, msg)?;
            self.state = next;
            match step {
                Some(Step::Authenticated(m)) => {
                    self.authenticated = true;
                    return Ok(Step::Authenticated(m));
                }
                Some(step) => return Ok(step),
                None => {}
            }
        }
    }

    /// Take one message in `state`: the next state, and the step for the driver (`None`:
    /// nothing to do but take the next message).
    fn on_message(&mut self, state: State, msg: Message) -> Result<(State, Option<Step>)> {
        match state {
            State::AwaitAuth => {
                self.requested = Some(crate::metrics::requested_mechanism(&msg));
                self.first_request(msg)
            }
            State::AwaitSaslContinue(mut scram, m) => match msg {
                Message::AuthenticationSaslContinue(body) => {
                    auth::scram_server_first(&mut scram, body.data())?;
                    let mut out = BytesMut::new();
                    frontend::sasl_response(scram.message(), &mut out).map_err(write_err)?;
                    Ok((State::AwaitSaslFinal(scram, m), Some(Step::Send(out))))
                }
                Message::ErrorResponse(body) => Err(startup_error(&body)),
                _ => Err(auth::unexpected("unexpected message during SCRAM exchange")),
            },
            State::AwaitSaslFinal(mut scram, m) => match msg {
                Message::AuthenticationSaslFinal(body) => {
                    auth::scram_server_final(&mut scram, body.data())?;
                    Ok((State::AwaitAuthOk(m), None))
                }
                Message::ErrorResponse(body) => Err(startup_error(&body)),
                _ => Err(auth::unexpected("unexpected message during SCRAM exchange")),
            },
            State::AwaitAuthOk(m) => match msg {
                Message::AuthenticationOk => Ok((State::AwaitReady, Some(Step::Authenticated(m)))),
                Message::ErrorResponse(body) => Err(startup_error(&body)),
                _ => Err(auth::unexpected(
                    "expected AuthenticationOk from the server after the password",
                )),
            },
            State::AwaitReady => match msg {
                Message::BackendKeyData(k) => {
                    self.key = Some((k.process_id(), k.secret_key()));
                    Ok((State::AwaitReady, None))
                }
                Message::ParameterStatus(p) => {
                    if let (Ok(name), Ok(value)) = (p.name(), p.value()) {
                        self.parameters.push((name.to_owned(), value.to_owned()));
                    }
                    Ok((State::AwaitReady, None))
                }
                Message::NoticeResponse(body) => {
                    self.notices.push(crate::protocol::notice(&body)?);
                    Ok((State::AwaitReady, None))
                }
                Message::ReadyForQuery(body) => Ok((
                    State::Done,
                    Some(Step::Ready(TransactionStatus::from_byte(body.status())?)),
                )),
                Message::ErrorResponse(body) => Err(startup_error(&body)),
                _ => {
                    crate::metrics::protocol_error("unexpected_in_startup");
                    Err(Error::protocol(
                        "unexpected message from the server during session startup",
                    ))
                }
            },
            State::Start | State::Done | State::Failed => unreachable!("handled in step"),
        }
    }

    /// The server's first answer to the StartupMessage.
    fn first_request(&mut self, first: Message) -> Result<(State, Option<Step>)> {
        if self.binding.mode == ChannelBindingMode::Require {
            // Checked before any password is sent (libpq does the same).
            let refused = match &first {
                Message::AuthenticationOk => Some("the server authenticated the client without it"),
                Message::AuthenticationCleartextPassword
                | Message::AuthenticationMd5Password(_) => {
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
        let mut out = BytesMut::new();
        match first {
            Message::AuthenticationOk => Ok((
                State::AwaitReady,
                Some(Step::Authenticated(Mechanism::Trust)),
            )),
            Message::AuthenticationCleartextPassword => {
                let pw = auth::need_password(self.password, "cleartext password")?;
                frontend::password_message(pw, &mut out).map_err(write_err)?;
                Ok((
                    State::AwaitAuthOk(Mechanism::Cleartext),
                    Some(Step::Send(out)),
                ))
            }
            Message::AuthenticationMd5Password(body) => {
                let pw = auth::need_password(self.password, "MD5 password")?;
                let hash = postgres_protocol::authentication::md5_hash(
                    self.user.as_bytes(),
                    pw,
                    body.salt(),
                );
                frontend::password_message(hash.as_bytes(), &mut out).map_err(write_err)?;
                Ok((State::AwaitAuthOk(Mechanism::Md5), Some(Step::Send(out))))
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
                let (mechanism, binding) = auth::choose_scram(&self.binding, has_scram, has_plus)?;
                let name = match mechanism {
                    Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
                    _ => "SCRAM-SHA-256",
                };
                let pw = auth::need_password(self.password, name)?;
                let scram = ScramSha256::new(pw, binding);
                frontend::sasl_initial_response(name, scram.message(), &mut out)
                    .map_err(write_err)?;
                Ok((
                    State::AwaitSaslContinue(Box::new(scram), mechanism),
                    Some(Step::Send(out)),
                ))
            }
            Message::AuthenticationKerberosV5 => Err(auth::unsupported("Kerberos V5 (request 2)")),
            Message::AuthenticationScmCredential => Err(auth::unsupported(
                "SCM credential (request 6, Unix-socket peer credentials of PostgreSQL before 9.1)",
            )),
            Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                Err(auth::unsupported("GSSAPI (request 7)"))
            }
            Message::AuthenticationSspi => Err(auth::unsupported("SSPI (request 9)")),
            Message::ErrorResponse(body) => Err(startup_error(&body)),
            _ => Err(auth::unexpected(
                "unexpected message from the server during authentication",
            )),
        }
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::protocol(format!("could not encode an authentication message: {e}"))
}

/// The next whole message at the front of `buf`, if it holds one. Its header is checked
/// first (see [`crate::protocol::header`]): a message announcing more than `phase` allows is
/// refused before any more of it is read.
pub(crate) fn next_message(buf: &mut BytesMut, phase: Phase) -> Result<Option<Message>> {
    let Some(header) = crate::protocol::header(buf, phase)? else {
        return Ok(None);
    };
    if header.tag == b'D' && header.total > crate::protocol::MAX_MESSAGE {
        // Never expected here (start-up, or before a result is described): bounded as any
        // other message.
        crate::metrics::protocol_error("message_too_long");
        return Err(Error::protocol(format!(
            "the server sent a DataRow of {} bytes where none was expected",
            header.total
        )));
    }
    if buf.len() < header.total {
        return Ok(None);
    }
    Message::parse(buf).map_err(|e| {
        crate::metrics::protocol_error("malformed");
        Error::protocol(format!("malformed message from the server: {e}"))
    })
}

/// Map an ErrorResponse received during startup to an error: class 28 (invalid authorization)
/// is an authentication failure, anything else a connection failure.
pub(crate) fn startup_error(
    body: &postgres_protocol::message::backend::ErrorResponseBody,
) -> Error {
    match ServerError::from_fields(&mut body.fields()) {
        Ok(se) => {
            let kind = if se.sqlstate.starts_with("28") {
                ErrorKind::Auth
            } else {
                ErrorKind::Connect
            };
            Error::server(kind, se)
        }
        Err(e) => Error::protocol(format!("malformed ErrorResponse: {e}")),
    }
}

/// The server's one-byte answer to an SSLRequest: `true` for 'S' (start the TLS handshake),
/// `false` for 'N' (the server does not do TLS).
pub(crate) fn ssl_answer(answer: u8) -> Result<bool> {
    match answer {
        b'S' => Ok(true),
        b'N' => Ok(false),
        // Unauthenticated text: not shown (CVE-2024-10977).
        b'E' => Err(Error::new(
            ErrorKind::Connect,
            "the server sent an error response during the SSL exchange",
        )),
        other => Err(Error::protocol(format!(
            "received invalid response to the SSL request: 0x{other:02x}"
        ))),
    }
}

#[cfg(test)]
#[path = "startup_tests.rs"]
mod tests;
