//! Error values of the Rust core. The FFI layer maps [`ErrorKind`] one to one onto `fw_status`.

use std::fmt;

mod tls_text;
pub(crate) use tls_text::{certificate_problem, rustls_problem};

/// What kind of failure happened. Each kind has its own C status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input from the caller (a malformed identifier, an invalid ratio, a bad conninfo).
    InvalidArgument,
    /// A required pointer was NULL (FFI only).
    Null,
    /// Could not reach the server.
    Connect,
    /// The server refused the credentials.
    Auth,
    /// TLS could not be negotiated or verified.
    Tls,
    /// The server sent an ErrorResponse.
    Server,
    /// The server sent something the protocol does not allow.
    Protocol,
    /// The result is not exactly one `data` column of type json/jsonb.
    Schema,
    /// The stream's hard memory limit was exceeded.
    MemoryLimit,
    /// The stream was cancelled.
    Cancelled,
    /// The connection broke.
    Io,
    /// The call is not allowed in the current state.
    State,
    /// An internal bug was caught.
    Panic,
    /// The library was shut down.
    Shutdown,
}

impl ErrorKind {
    /// A short lowercase label for metrics (`error_category`).
    pub fn category(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Null => "null",
            ErrorKind::Connect => "connect",
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Schema => "schema",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Io => "io",
            ErrorKind::State => "state",
            ErrorKind::Panic => "panic",
            ErrorKind::Shutdown => "shutdown",
        }
    }
}

/// The fields of a PostgreSQL ErrorResponse that a caller can act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub position: Option<String>,
}

/// The most bytes of one field of an ErrorResponse/NoticeResponse kept in a [`ServerError`]:
/// a longer field (`22P02` quotes the whole bad input, megabytes of it) is cut there and
/// says how much was left out.
pub const MAX_FIELD_BYTES: usize = 16 * 1024;

/// `bytes` as text, cut to [`MAX_FIELD_BYTES`] (at a character boundary) with a note of the
/// bytes left out.
fn field_text(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_FIELD_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut cut = MAX_FIELD_BYTES;
    // Back to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
    while cut > 0 && bytes[cut] & 0xC0 == 0x80 {
        cut -= 1;
    }
    format!(
        "{}... ({} bytes truncated)",
        String::from_utf8_lossy(&bytes[..cut]),
        bytes.len() - cut
    )
}

impl ServerError {
    /// Build from the fields of an ErrorResponse/NoticeResponse body. Fields longer than
    /// [`MAX_FIELD_BYTES`] are truncated.
    pub fn from_fields(
        fields: &mut postgres_protocol::message::backend::ErrorFields<'_>,
    ) -> std::io::Result<ServerError> {
        use fallible_iterator::FallibleIterator;
        let mut e = ServerError::default();
        while let Some(f) = fields.next()? {
            let (ty, value) = (f.type_(), field_text(f.value_bytes()));
            match ty {
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.sqlstate = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                b'P' => e.position = Some(value),
                _ => {}
            }
        }
        Ok(e)
    }
}

/// The message of a server error that came without one (an ErrorResponse with no `M` field).
const NO_MESSAGE: &str = "the server sent an error without a message";

/// An error of the Rust core: a kind, a message for people, and the server's fields when the
/// server sent an ErrorResponse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    server: Option<Box<ServerError>>,
    /// Set on the failure to send a query's request when not one byte of it reached the
    /// socket: the server cannot have started the query, so it may be retried on another
    /// connection (see `Client::execute` and docs/reliability.md).
    unsent: bool,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            server: None,
            unsent: false,
        }
    }

    /// An error from a server ErrorResponse. `kind` is usually [`ErrorKind::Server`], but
    /// authentication failures use [`ErrorKind::Auth`] and cancellations [`ErrorKind::Cancelled`].
    pub fn server(kind: ErrorKind, server: ServerError) -> Error {
        let text = if server.message.is_empty() {
            NO_MESSAGE
        } else {
            server.message.as_str()
        };
        let message = if server.severity.is_empty() {
            text.to_string()
        } else {
            format!("{}: {text}", server.severity)
        };
        Error {
            kind,
            message,
            server: Some(Box::new(server)),
            unsent: false,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }
    pub fn io(context: &str, err: &std::io::Error) -> Error {
        // A TLS failure on an established connection (an alert from the server after the
        // handshake, a corrupt record) comes as an I/O error wrapping rustls' error: say what
        // it means instead of rustls' names.
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Error::new(ErrorKind::Io, format!("{context}: {}", rustls_problem(tls)));
        }
        Error::new(ErrorKind::Io, format!("{context}: {err}"))
    }
    pub fn state(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::State, message)
    }
    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "the stream was cancelled")
    }
    pub fn shutdown() -> Error {
        Error::new(
            ErrorKind::Shutdown,
            "the library was shut down (fw_shutdown); no further calls are possible in this process",
        )
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn server_error(&self) -> Option<&ServerError> {
        self.server.as_deref()
    }
    pub fn sqlstate(&self) -> Option<&str> {
        self.server.as_deref().map(|s| s.sqlstate.as_str())
    }

    /// Mark this (send) error as one that happened before any byte of the request reached
    /// the socket.
    pub(crate) fn request_unsent(mut self) -> Error {
        self.unsent = true;
        self
    }

    /// Whether the request this error is about never reached the server (see
    /// [`Error::request_unsent`]): only then is a query retried on another connection.
    pub(crate) fn is_request_unsent(&self) -> bool {
        self.unsent
    }

    /// Prefix the message with context, keeping kind and server fields.
    pub fn context(mut self, ctx: impl fmt::Display) -> Error {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.server {
            if !s.sqlstate.is_empty() {
                write!(f, " (SQLSTATE {})", s.sqlstate)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        assert_eq!(field_text(b"short"), "short");
        let exact = vec![b'x'; MAX_FIELD_BYTES];
        assert_eq!(field_text(&exact).len(), MAX_FIELD_BYTES);
        let long = vec![b'x'; 2_200_000];
        let t = field_text(&long);
        assert!(t.starts_with("xxxx"));
        assert!(
            t.ends_with(&format!(
                "... ({} bytes truncated)",
                2_200_000 - MAX_FIELD_BYTES
            )),
            "{}",
            &t[t.len() - 40..]
        );
        // A two-byte character across the limit is left out whole, not cut in half.
        let mut accented = vec![b'a'; MAX_FIELD_BYTES - 1];
        accented.extend_from_slice("é".repeat(10).as_bytes());
        let t = field_text(&accented);
        assert!(!t.contains('\u{FFFD}'), "a character was cut");
        assert!(t.contains("(20 bytes truncated)"), "{}", &t[t.len() - 40..]);
    }

    #[test]
    fn an_error_without_a_message_says_so() {
        let e = Error::server(ErrorKind::Server, ServerError::default());
        assert_eq!(e.to_string(), "the server sent an error without a message");
        let e = Error::server(
            ErrorKind::Server,
            ServerError {
                severity: "FATAL".into(),
                sqlstate: "XX000".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            e.to_string(),
            "FATAL: the server sent an error without a message (SQLSTATE XX000)"
        );
    }
}
