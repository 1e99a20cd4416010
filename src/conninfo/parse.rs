//! Parsing the two textual forms, `keyword=value` pairs and URIs, into an
//! ordered keyword/value list; nothing is resolved here.

use super::{err, ConnInfoError};

/// Keywords this module understands, with the environment variable that
/// supplies their default.
pub(super) const KEYWORDS: &[(&str, Option<&str>)] = &[
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
pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// A parsed-but-unresolved keyword/value list, in order (later wins).
#[derive(Default)]
pub(super) struct RawParams {
    pub(super) pairs: Vec<(&'static str, String)>,
}

// ---------------------------------------------------------------------------
// key=value form
// ---------------------------------------------------------------------------

pub(super) fn parse_key_value(
    s: &str,
    secrets: &mut Vec<String>,
) -> Result<RawParams, ConnInfoError> {
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

pub(super) fn uri_prefix_len(s: &str) -> Option<usize> {
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

pub(super) fn parse_uri(
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
