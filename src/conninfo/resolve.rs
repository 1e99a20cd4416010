//! Resolution of a parsed keyword list into a [`ConnConfig`]: explicit values,
//! then `PG*` environment variables, then built-in defaults; host, port and
//! `hostaddr` lists; option validation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::parse::{is_space, RawParams, KEYWORDS};
use super::pgpass::password_from_file;
use super::{
    err, ChannelBindingMode, ConnConfig, ConnInfoError, Host, LoadBalanceHosts, SslMode,
    TargetSessionAttrs, DEFAULT_PORT, DEFAULT_SOCKET_DIR,
};

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

pub(super) fn resolve(
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
