//! TLS with libpq's `sslmode` semantics (docs/tls.md): the SSLRequest exchange, the rustls
//! client configuration (trusted roots, client certificate, SNI), certificate verification for
//! each mode, and the `tls-server-end-point` data for SCRAM-SHA-256-PLUS channel binding.
//!
//! rustls always runs with the ring provider passed explicitly: the host process may have
//! installed another process-wide default provider, which must not change our behaviour.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Transport;
use crate::conninfo::{ChannelBindingMode, ConnConfig, SslMode};
use crate::error::{Error, ErrorKind, Result};

/// Where `sslrootcert=system` finds the operating system's trusted roots (the first file that
/// exists; `SSL_CERT_FILE` overrides, as for OpenSSL).
///
/// Not `rustls-native-certs`: on Debian it reads this bundle and then every file of
/// /etc/ssl/certs, about ten times the time of the bundle alone, and each new TLS connection
/// pays it (`cargo bench --bench system_roots` prints both; docs/performance.md).
const SYSTEM_ROOT_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn tls_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Tls, message)
}

/// libpq's per-user directory: `~/.postgresql/<file>`.
fn default_file(file: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".postgresql").join(file))
}

fn is_system(path: &Path) -> bool {
    path == Path::new("system")
}

/// The mode actually applied. `sslrootcert=system` only makes sense with full verification:
/// as in libpq, the default mode becomes `verify-full` (`prefer`, the default, is taken as
/// unset) and an explicitly weaker mode is an error.
pub(crate) fn effective_mode(config: &ConnConfig) -> Result<SslMode> {
    match (&config.sslrootcert, config.sslmode) {
        (Some(p), SslMode::Prefer | SslMode::VerifyFull) if is_system(p) => Ok(SslMode::VerifyFull),
        (Some(p), mode) if is_system(p) => Err(tls_err(format!(
            "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
        ))),
        (_, mode) => Ok(mode),
    }
}

/// Does `path` exist? Errors other than "not found" (a permission problem, say) count as
/// existing, so that reading it reports them with the path.
fn exists(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ),
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| tls_err(format!("could not read {what} \"{}\": {e}", path.display())))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("could not read {what} \"{}\": {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{what} \"{}\" contains no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>)> {
    let what = "root certificate file";
    let certs = read_certs(path, what)?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    if added == 0 {
        return Err(tls_err(format!(
            "{what} \"{}\" contains no usable certificate",
            path.display()
        )));
    }
    Ok((roots, certs))
}

fn system_roots_file() -> Result<PathBuf> {
    if let Some(f) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Ok(PathBuf::from(f));
    }
    SYSTEM_ROOT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            tls_err(format!(
                "sslrootcert=system: no system root certificate file found (looked for {})",
                SYSTEM_ROOT_FILES.join(", ")
            ))
        })
}

/// The private key file must not be readable by others (libpq's rule: at most 0600 when owned
/// by the current user, at most 0640 when owned by root).
fn check_key_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        tls_err(format!(
            "could not access private key file \"{}\": {e}",
            path.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(tls_err(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        )));
    }
    let euid = rustix::process::geteuid().as_raw();
    let mode = meta.mode();
    let too_open =
        (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(tls_err(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            path.display()
        )));
    }
    Ok(())
}

/// The client certificate chain and key: `sslcert`/`sslkey`, else libpq's defaults
/// `~/.postgresql/postgresql.crt` and `.key`. A certificate file that does not exist means no
/// client certificate (as in libpq); a certificate without its key is an error.
fn client_identity(
    config: &ConnConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
    let Some(cert_path) = config
        .sslcert
        .clone()
        .or_else(|| default_file("postgresql.crt"))
    else {
        return Ok(None);
    };
    if !exists(&cert_path) {
        return Ok(None);
    }
    let certs = read_certs(&cert_path, "certificate file")?;
    let key_path = config
        .sslkey
        .clone()
        .or_else(|| default_file("postgresql.key"))
        .filter(|p| exists(p))
        .ok_or_else(|| {
            let shown = config
                .sslkey
                .clone()
                .or_else(|| default_file("postgresql.key"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.postgresql/postgresql.key".into());
            tls_err(format!(
                "certificate present, but not private key file \"{shown}\""
            ))
        })?;
    check_key_permissions(&key_path)?;
    let pem = read_file(&key_path, "private key file")?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        tls_err(format!(
            "could not load private key file \"{}\": {e}",
            key_path.display()
        ))
    })?;
    Ok(Some((certs, key)))
}

/// Certificate verification for every mode: no roots means "accept any certificate" (the
/// unverified modes), roots mean "the chain must lead to one of them", plus the host name for
/// `verify-full`. The handshake signatures are always verified, so the peer has to hold the
/// private key of the certificate it presented (which is what channel binding relies on).
///
/// The chain is checked by webpki (rustls' `verify_server_cert_signed_by_trust_anchor`, the
/// chain half of `WebPkiServerVerifier`), the host name by libpq's rules ([`check_host_name`]):
/// `WebPkiServerVerifier` itself is not used because its name check follows RFC 6125 without
/// libpq's fallback to the subject CN, so certificates libpq accepts would be refused.
///
/// One chain result is overruled: webpki refuses a server certificate with `CA:TRUE`
/// (`CaUsedAsEndEntity`), which is what `openssl req -x509` makes and what PostgreSQL's
/// documentation recommends for a self-signed server certificate, copied by the client to
/// `root.crt`. OpenSSL (and so libpq) accepts it when the certificate is itself trusted: the
/// chain is that one certificate. The same holds here, only when the server's certificate is
/// byte for byte one of the configured roots: webpki has already checked its validity dates
/// (they come before the CA check), the handshake signature proves the server holds its key,
/// and the purpose checks OpenSSL applies to a server certificate are repeated
/// ([`self_signed_purpose`]). A `CA:TRUE` certificate that is not itself a root stays refused
/// (OpenSSL would accept it when a root signed it: a difference, stricter).
#[derive(Debug)]
struct PgVerifier {
    roots: Option<Roots>,
    /// verify-full: the host name is checked too.
    verify_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The trusted roots, as a store for webpki and as the certificates themselves (to recognise a
/// server certificate that is one of them).
#[derive(Debug)]
struct Roots {
    store: Arc<RootCertStore>,
    certs: Vec<CertificateDer<'static>>,
}

fn cert_problem(problem: CertProblem) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        problem,
    ))))
}

/// A verification failure found by our own checks (not webpki's), with its message for people.
#[derive(Debug)]
enum CertProblem {
    /// libpq's wording: the first name found, how many others, the host name.
    NameMismatch {
        first: String,
        others: usize,
        host: String,
    },
    /// No subjectAltName DNS/IP entry and no CN to check.
    NoName { host: String },
    /// A name that cannot be compared (libpq refuses these too).
    BadName(String),
    /// The certificate is one of the roots but not usable by a TLS server.
    Purpose(String),
    /// The certificate could not be parsed for the name check.
    Unparsable(String),
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::NameMismatch {
                first,
                others: 0,
                host,
            } => write!(
                f,
                "host name check (sslmode=verify-full): the server certificate for \"{first}\" \
                 does not match host name \"{host}\""
            ),
            CertProblem::NameMismatch {
                first,
                others,
                host,
            } => write!(
                f,
                "host name check (sslmode=verify-full): the server certificate for \"{first}\" \
                 (and {others} other name{}) does not match host name \"{host}\"",
                if *others == 1 { "" } else { "s" }
            ),
            CertProblem::NoName { host } => write!(
                f,
                "host name check (sslmode=verify-full): the server certificate has no \
                 subjectAltName DNS or IP entry and no common name to compare with host name \
                 \"{host}\""
            ),
            CertProblem::BadName(m) | CertProblem::Purpose(m) | CertProblem::Unparsable(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for CertProblem {}

/// libpq's `wildcard_certificate_match`: `*.rest` matches `label.rest` (case-insensitively),
/// where the label has no dot.
fn wildcard_matches(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    if pattern.len() < 3 || !suffix.starts_with('.') || pattern.len() > host.len() {
        return false;
    }
    let cut = host.len() - suffix.len();
    host.is_char_boundary(cut)
        && host[cut..].eq_ignore_ascii_case(suffix)
        && !host[..cut].contains('.')
}

/// libpq's `pq_verify_peer_name_matches_certificate_name`: the whole name, case-insensitively,
/// or a wildcard, except that a host that is an IP address is only ever compared whole
/// (RFC 6125: `*.0.0.1` does not match `127.0.0.1`). A name with an embedded NUL is refused.
fn name_matches(name: &str, host: &str) -> std::result::Result<bool, CertProblem> {
    if name.contains('\0') {
        return Err(CertProblem::BadName(
            "host name check (sslmode=verify-full): the server certificate's name contains an \
             embedded NUL"
                .into(),
        ));
    }
    Ok(name.eq_ignore_ascii_case(host)
        || (host.parse::<IpAddr>().is_err() && wildcard_matches(name, host)))
}

/// The host name check of libpq 15 and later (`verify-full`), on the server's certificate:
///
/// * every subjectAltName `dNSName` is compared with the host name as a string (exactly, or as
///   a `*.` wildcard for one label), and every `iPAddress` with the host when it is an IP
///   address (IPv4 with IPv4, IPv6 with IPv6, byte for byte);
/// * the subject's first common name is compared like a `dNSName`, but only when there is no
///   subjectAltName entry of the host's kind (`dNSName` for a host name, `iPAddress` for an IP
///   address);
/// * an `iPAddress` entry that is neither 4 nor 16 bytes long, or a name with an embedded NUL,
///   fails the check.
fn check_host_name(cert_der: &[u8], host: &str) -> std::result::Result<(), CertProblem> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| {
        CertProblem::Unparsable(format!(
            "host name check (sslmode=verify-full): could not read the server certificate: {e}"
        ))
    })?;
    let host_ip: Option<IpAddr> = host.parse().ok();
    let mut examined = 0usize;
    let mut first: Option<String> = None;
    let mut check_cn = true;
    let san = cert.subject_alternative_name().map_err(|e| {
        CertProblem::Unparsable(format!(
            "host name check (sslmode=verify-full): could not read the server certificate's \
             subjectAltName: {e}"
        ))
    })?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        let (matched, shown) = match name {
            GeneralName::DNSName(n) => {
                if host_ip.is_none() {
                    check_cn = false;
                }
                (name_matches(n, host)?, (*n).to_string())
            }
            GeneralName::IPAddress(bytes) => {
                if host_ip.is_some() {
                    check_cn = false;
                }
                let addr = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
                    n => {
                        return Err(CertProblem::BadName(format!(
                            "host name check (sslmode=verify-full): the server certificate \
                             contains an IP address entry of invalid length {n}"
                        )))
                    }
                };
                (host_ip == Some(addr), addr.to_string())
            }
            _ => continue,
        };
        examined += 1;
        if matched {
            return Ok(());
        }
        first.get_or_insert(shown);
    }
    if check_cn {
        if let Some(cn) = cert.subject().iter_common_name().next() {
            examined += 1;
            let cn = cn.as_str().map_err(|_| {
                CertProblem::BadName(
                    "host name check (sslmode=verify-full): the server certificate's common \
                     name is not a readable string"
                        .into(),
                )
            })?;
            if name_matches(cn, host)? {
                return Ok(());
            }
            first.get_or_insert(cn.to_string());
        }
    }
    match first {
        Some(first) => Err(CertProblem::NameMismatch {
            first,
            others: examined - 1,
            host: host.to_string(),
        }),
        None => Err(CertProblem::NoName {
            host: host.to_string(),
        }),
    }
}

/// OpenSSL's purpose check for a server certificate (`X509_PURPOSE_SSL_SERVER` on the chain's
/// first certificate), for a self-signed certificate accepted because it is one of the roots:
/// an extendedKeyUsage, when present, must allow TLS servers (serverAuth, or one of the two
/// "server gated crypto" purposes), and a keyUsage, when present, must allow a digital
/// signature, key encipherment or key agreement.
fn self_signed_purpose(cert_der: &[u8]) -> std::result::Result<(), CertProblem> {
    let unreadable = |e: &dyn std::fmt::Display| {
        CertProblem::Unparsable(format!("could not read the server certificate: {e}"))
    };
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| unreadable(&e))?;
    if let Some(eku) = cert.extended_key_usage().map_err(|e| unreadable(&e))? {
        const SGC: &[&str] = &["2.16.840.1.113730.4.1", "1.3.6.1.4.1.311.10.3.3"];
        let sgc = eku
            .value
            .other
            .iter()
            .any(|oid| SGC.contains(&oid.to_id_string().as_str()));
        if !eku.value.server_auth && !sgc {
            return Err(CertProblem::Purpose(
                "the server certificate is not for TLS servers (its extendedKeyUsage lacks \
                 serverAuth)"
                    .into(),
            ));
        }
    }
    if let Some(ku) = cert.key_usage().map_err(|e| unreadable(&e))? {
        let ku = ku.value;
        if !(ku.digital_signature() || ku.key_encipherment() || ku.key_agreement()) {
            return Err(CertProblem::Purpose(
                "the server certificate's keyUsage allows neither digital signatures, key \
                 encipherment nor key agreement"
                    .into(),
            ));
        }
    }
    Ok(())
}

impl PgVerifier {
    /// The chain check, with the self-signed-root exception described on [`PgVerifier`].
    fn verify_chain(
        &self,
        roots: &Roots,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<(), rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let result = rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots.store,
            intermediates,
            now,
            self.algorithms.all,
        );
        match result {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(ref other)))
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) && roots
                    .certs
                    .iter()
                    .any(|r| r.as_ref() == end_entity.as_ref()) =>
            {
                self_signed_purpose(end_entity).map_err(cert_problem)
            }
            other => other,
        }
    }
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            self.verify_chain(roots, end_entity, intermediates, now)?;
            if self.verify_name {
                let host = match server_name {
                    ServerName::DnsName(d) => d.as_ref().to_string(),
                    ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
                    _ => String::new(),
                };
                check_host_name(end_entity.as_ref(), &host).map_err(cert_problem)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client certificate, offered whenever the server asks for one.
#[derive(Debug)]
struct ClientIdentity(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The TLS side of one connection attempt, built from the settings before any byte is sent
/// (so that unreadable files fail the connection instead of silently weakening it).
pub(crate) struct TlsSetup {
    config: Arc<ClientConfig>,
    /// Where the trusted roots came from, for messages; `None` when not verifying.
    roots_from: Option<String>,
    verify_name: bool,
}

impl TlsSetup {
    /// Trusted roots, as in libpq: `sslrootcert` (or `system`), else `~/.postgresql/root.crt`
    /// when it exists. Roots, when there are any, are checked in every mode; without roots
    /// `verify-ca`/`verify-full` fail. A configured `sslrootcert` that does not exist is an error
    /// for `require` too (libpq would quietly skip verification there).
    pub(crate) fn new(config: &ConnConfig, mode: SslMode) -> Result<TlsSetup> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let key_provider = provider.key_provider;
        let missing = |path: &Path| {
            tls_err(format!(
                "root certificate file \"{}\" does not exist; either provide the file, use the \
                 system's trusted roots with sslrootcert=system, or change sslmode to disable \
                 server certificate verification",
                path.display()
            ))
        };
        let roots = match &config.sslrootcert {
            Some(p) if is_system(p) => {
                let file = system_roots_file()?;
                let roots = load_roots(&file)?;
                Some((roots, format!("the system roots in \"{}\"", file.display())))
            }
            Some(p) if exists(p) => Some((load_roots(p)?, format!("\"{}\"", p.display()))),
            Some(p) if mode.requires_tls() => return Err(missing(p)),
            Some(_) => None,
            None => match default_file("root.crt") {
                Some(p) if exists(&p) => Some((load_roots(&p)?, format!("\"{}\"", p.display()))),
                Some(p) if mode.verifies_certificate() => return Err(missing(&p)),
                None if mode.verifies_certificate() => {
                    return Err(tls_err(format!(
                        "sslmode={mode} needs a root certificate file (sslrootcert), and there \
                         is no home directory for the default ~/.postgresql/root.crt"
                    )))
                }
                _ => None,
            },
        };
        let verify_name = mode.verifies_hostname();
        let (roots, roots_from) = match roots {
            Some(((store, certs), from)) => (
                Some(Roots {
                    store: Arc::new(store),
                    certs,
                }),
                Some(from),
            ),
            None => (None, None),
        };
        let verifier = PgVerifier {
            roots,
            verify_name,
            algorithms,
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(format!("could not set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut tls = match client_identity(config)? {
            Some((certs, key)) => {
                let key = key_provider
                    .load_private_key(key)
                    .map_err(|e| tls_err(format!("could not use the private key: {e}")))?;
                let certified = rustls::sign::CertifiedKey::new(certs, key);
                // Only a definite mismatch is an error: rustls cannot parse some certificates
                // OpenSSL accepts (X.509 v1), which the server may still take.
                if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
                    certified.keys_match()
                {
                    return Err(tls_err(
                        "the client certificate (sslcert) does not match the private key (sslkey)",
                    ));
                }
                builder.with_client_cert_resolver(Arc::new(ClientIdentity(Arc::new(certified))))
            }
            None => builder.with_no_client_auth(),
        };
        tls.enable_sni = config.sslsni;
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        tls.resumption = rustls::client::Resumption::disabled();
        Ok(TlsSetup {
            config: Arc::new(tls),
            roots_from,
            verify_name,
        })
    }

    /// The name the certificate is checked against (and sent as SNI when it is a DNS name):
    /// the host name, never `hostaddr`.
    fn server_name(&self, host: &str) -> Result<ServerName<'static>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ServerName::IpAddress(ip.into()));
        }
        match DnsName::try_from(host.to_owned()) {
            Ok(n) => Ok(ServerName::DnsName(n)),
            Err(_) if !self.verify_name => Ok(ServerName::IpAddress(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED).into(),
            )),
            Err(_) => Err(tls_err(format!(
                "host name \"{host}\" is not a valid DNS name, so sslmode=verify-full cannot \
                 check the server certificate against it"
            ))),
        }
    }

    /// Run the TLS handshake on a socket whose SSLRequest the server accepted.
    pub(crate) async fn handshake(&self, host: &str, s: TcpStream) -> Result<TlsStream<TcpStream>> {
        let name = self.server_name(host)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, s)
            .await
            .map_err(|e| self.handshake_error(host, &e))
    }

    fn handshake_error(&self, host: &str, e: &io::Error) -> Error {
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        let Some(err) = inner else {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return tls_err(format!(
                    "the server at \"{host}\" closed the connection during the TLS handshake"
                ));
            }
            return tls_err(format!("TLS handshake with \"{host}\" failed: {e}"));
        };
        let roots = self.roots_from.as_deref().unwrap_or("none");
        match err {
            rustls::Error::InvalidCertificate(ce) => tls_err(format!(
                "certificate verify failed for host \"{host}\" (trusted roots: {roots}): {}",
                crate::error::certificate_problem(ce)
            )),
            other => tls_err(format!(
                "TLS handshake with \"{host}\" failed: {}",
                crate::error::rustls_problem(other)
            )),
        }
    }
}

/// Send an SSLRequest and read the one-byte answer: `true` for 'S' (start the handshake),
/// `false` for 'N' (the server does not do TLS).
pub(crate) async fn ssl_request(s: &mut TcpStream) -> Result<bool> {
    let mut msg = BytesMut::with_capacity(8);
    postgres_protocol::message::frontend::ssl_request(&mut msg);
    s.write_all(&msg)
        .await
        .map_err(|e| Error::io("could not send the SSL request", &e))?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::new(
                ErrorKind::Io,
                "the server closed the connection in answer to the SSL request",
            )
        } else {
            Error::io("could not read the answer to the SSL request", &e)
        }
    })?;
    if !super::startup::ssl_answer(answer[0])? {
        return Ok(false);
    }
    // Nothing may follow 'S' before the server's handshake messages, which only come after
    // our ClientHello: bytes already waiting were injected before encryption started
    // (CVE-2021-23222), so refuse them instead of processing them.
    let mut extra = [0u8; 1];
    match s.try_read(&mut extra) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(e) => Err(Error::io("could not read from the server", &e)),
        Ok(0) => Err(Error::new(
            ErrorKind::Io,
            "the server closed the connection after accepting the SSL request",
        )),
        Ok(_) => Err(Error::protocol(
            "received unencrypted data after the SSL response (possible man-in-the-middle \
             attack)",
        )),
    }
}

/// What SCRAM needs to know of the transport (see [`ChannelBindingInfo`]).
pub(crate) fn channel_binding_info(
    mode: ChannelBindingMode,
    transport: &Transport,
) -> super::auth::ChannelBindingInfo {
    let tls = match transport {
        Transport::Tls(s) => Some(s),
        _ => None,
    };
    let end_point = match (mode, tls) {
        (ChannelBindingMode::Disable, _) | (_, None) => None,
        (_, Some(s)) => s
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| tls_server_end_point(c.as_ref())),
    };
    super::auth::ChannelBindingInfo {
        mode,
        tls: tls.is_some(),
        end_point,
    }
}

/// One DER element at the start of `input`: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The OID (content bytes) of a certificate's outer `signatureAlgorithm`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (SEQUENCE, cert, _) = der_element(cert)? else {
        return None;
    };
    let (SEQUENCE, _tbs, rest) = der_element(cert)? else {
        return None;
    };
    let (SEQUENCE, algorithm, _) = der_element(rest)? else {
        return None;
    };
    let (OID, oid, _) = der_element(algorithm)? else {
        return None;
    };
    Some(oid)
}

#[derive(Debug, PartialEq, Eq)]
enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// RFC 5929 section 4.1: the hash of the certificate's signature algorithm, with MD5 and SHA-1
/// replaced by SHA-256. Algorithms without a single hash (RSASSA-PSS, EdDSA) have none, as in
/// PostgreSQL, which then cannot do channel binding either.
fn end_point_hash(oid: &[u8]) -> Option<EndPointHash> {
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
    const NIST_SIG: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    use EndPointHash::*;
    if oid == ECDSA_SHA1 || oid == DSA_SHA1 {
        return Some(Sha256);
    }
    let (&last, prefix) = oid.split_last()?;
    match (prefix, last) {
        // md5WithRSA, sha1WithRSA, sha256/384/512/224WithRSA
        (PKCS1, 0x04 | 0x05 | 0x0b) => Some(Sha256),
        (PKCS1, 0x0c) => Some(Sha384),
        (PKCS1, 0x0d) => Some(Sha512),
        (PKCS1, 0x0e) => Some(Sha224),
        // ecdsa-with-SHA224/256/384/512
        (ECDSA_SHA2, 0x01) => Some(Sha224),
        (ECDSA_SHA2, 0x02) => Some(Sha256),
        (ECDSA_SHA2, 0x03) => Some(Sha384),
        (ECDSA_SHA2, 0x04) => Some(Sha512),
        // dsa-with-sha224/256
        (NIST_SIG, 0x01) => Some(Sha224),
        (NIST_SIG, 0x02) => Some(Sha256),
        _ => None,
    }
}

/// `tls-server-end-point` channel binding data for a DER certificate.
pub(crate) fn tls_server_end_point(cert: &[u8]) -> Option<Vec<u8>> {
    let hash = end_point_hash(signature_algorithm_oid(cert)?)?;
    Some(match hash {
        EndPointHash::Sha224 => sha2::Sha224::digest(cert).to_vec(),
        EndPointHash::Sha256 => sha2::Sha256::digest(cert).to_vec(),
        EndPointHash::Sha384 => sha2::Sha384::digest(cert).to_vec(),
        EndPointHash::Sha512 => sha2::Sha512::digest(cert).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER value: SEQUENCE { SEQUENCE {tbs}, SEQUENCE { OID } }.
    fn fake_cert(oid: &[u8]) -> Vec<u8> {
        let tbs = [0x30, 0x03, 0x02, 0x01, 0x01];
        let mut alg = vec![0x30, (oid.len() + 2) as u8, 0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = tbs.to_vec();
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x01, 0x00]);
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn end_point_hash_follows_rfc_5929() {
        let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let ecdsa_sha384 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let rsa_sha1 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        let rsa_sha512 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
        let rsa_pss = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        let ed25519 = [0x2b, 0x65, 0x70];
        let hash = |oid: &[u8]| end_point_hash(signature_algorithm_oid(&fake_cert(oid)).unwrap());
        assert_eq!(hash(&ecdsa_sha256), Some(EndPointHash::Sha256));
        assert_eq!(hash(&ecdsa_sha384), Some(EndPointHash::Sha384));
        assert_eq!(hash(&rsa_sha1), Some(EndPointHash::Sha256));
        assert_eq!(hash(&rsa_sha512), Some(EndPointHash::Sha512));
        assert_eq!(hash(&rsa_pss), None);
        assert_eq!(hash(&ed25519), None);
        let cert = fake_cert(&ecdsa_sha384);
        assert_eq!(tls_server_end_point(&cert).unwrap().len(), 48);
    }

    #[test]
    fn der_parsing_rejects_truncated_input() {
        let cert = fake_cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        for n in 0..cert.len() {
            assert_eq!(signature_algorithm_oid(&cert[..n]), None, "prefix {n}");
        }
        assert_eq!(der_element(&[0x30, 0x82, 0x01]), None);
        assert_eq!(
            der_element(&[0x04, 0x81, 0x02, 0xaa, 0xbb, 0xcc]),
            Some((0x04, &[0xaa, 0xbb][..], &[0xcc][..]))
        );
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn wildcards_follow_libpq() {
        assert!(wildcard_matches("*.example.com", "db.example.com"));
        assert!(wildcard_matches("*.example.com", "DB.Example.COM"));
        // One label only, and never the bare domain.
        assert!(!wildcard_matches("*.example.com", "a.db.example.com"));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        // Only a leading "*." is a wildcard.
        assert!(!wildcard_matches("db*.example.com", "db1.example.com"));
        assert!(!wildcard_matches("*", "localhost"));
        assert!(!wildcard_matches("*x.example.com", "ax.example.com"));
    }

    #[test]
    fn names_compare_case_insensitively_and_refuse_nul() {
        assert!(name_matches("LocalHost", "localhost").unwrap());
        assert!(!name_matches("localhost", "localhost.").unwrap());
        assert!(name_matches("local\0host", "localhost").is_err());
    }

    #[test]
    fn wildcards_never_match_an_ip_address_host() {
        // RFC 6125: an IP address is compared whole (dNSName entries and the CN alike).
        assert!(!name_matches("*.0.0.1", "127.0.0.1").unwrap());
        assert!(!name_matches("*.2.3.4", "::ffff:1.2.3.4").unwrap());
        assert!(name_matches("127.0.0.1", "127.0.0.1").unwrap());
        // a host name that merely looks numeric-ish still gets wildcards
        assert!(name_matches("*.0.0.1.example", "127.0.0.1.example").unwrap());
    }
}
