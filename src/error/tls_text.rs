//! rustls' errors in words: a failed handshake's certificate checks, and a TLS alert or bad
//! record on an established connection (which comes as an I/O error wrapping rustls' error,
//! see [`Error::io`](super::Error::io)). Kept apart from the connection's TLS set-up so that
//! the error type needs nothing from the connection.

use rustls::pki_types::UnixTime;
use rustls::CertificateError;

/// A rustls error in words (the handshake, or a TLS record read later).
pub(crate) fn rustls_problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(ce) => certificate_problem(ce),
        rustls::Error::AlertReceived(alert) => {
            format!("the server sent TLS alert \"{}\"", alert_text(*alert))
        }
        other => other.to_string(),
    }
}

/// What the alert means, for the alerts a PostgreSQL server sends.
fn alert_text(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match alert {
        A::CertificateRequired => {
            "certificate required: the server wants a client certificate (sslcert/sslkey)".into()
        }
        A::HandshakeFailure => "handshake failure: no protocol version or cipher in common, or \
                                the client certificate was refused"
            .into(),
        A::BadCertificate => "bad certificate: the server refused the client certificate".into(),
        A::UnknownCA => {
            "unknown CA: the client certificate is not signed by a CA the server trusts".into()
        }
        A::CertificateExpired => "certificate expired: the client certificate has expired".into(),
        A::AccessDenied => "access denied".into(),
        A::ProtocolVersion => "protocol version: no TLS version in common".into(),
        A::InternalError => "internal error on the server".into(),
        other => format!("alert number {}", u8::from(other)),
    }
}

/// A date in UTC for messages (`2020-02-01 00:00:00 UTC`), from Unix seconds.
fn utc(t: UnixTime) -> String {
    let secs = t.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Which certificate check failed, in words (never a Rust debug dump).
pub(crate) fn certificate_problem(ce: &CertificateError) -> String {
    match ce {
        CertificateError::UnknownIssuer => {
            "chain check: the server certificate is not signed by a trusted root (nor through \
             the intermediates it sent)"
                .into()
        }
        CertificateError::BadSignature => {
            "chain check: a signature in the server's certificate chain is invalid".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "host name check: the server certificate does not match the host name".into()
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "validity check: the server certificate expired on {} (now {})",
            utc(*not_after),
            utc(*time)
        ),
        CertificateError::Expired => "validity check: the server certificate has expired, or \
                                      its validity period is malformed"
            .into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "validity check: the server certificate is not valid before {} (now {})",
            utc(*not_before),
            utc(*time)
        ),
        CertificateError::NotValidYet => {
            "validity check: the server certificate is not valid yet".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "purpose check: the server certificate is not for TLS servers (its extendedKeyUsage \
             lacks serverAuth)"
                .into()
        }
        CertificateError::BadEncoding => {
            "the server certificate is malformed (invalid DER encoding)".into()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "chain check: the server's certificate chain uses an unsupported signature algorithm"
                .into()
        }
        CertificateError::Other(other) => {
            // The connection's own checks (a host name, a self-signed certificate's purpose)
            // say what failed in their Display text.
            match other.0.downcast_ref::<webpki::Error>() {
                Some(e) => webpki_problem(e),
                None => format!("{}", other.0),
            }
        }
        other => format!("{other}"),
    }
}

/// webpki's errors that rustls passes on as "other", in words.
fn webpki_problem(e: &webpki::Error) -> String {
    use webpki::Error as W;
    match e {
        W::CaUsedAsEndEntity => "chain check: the server certificate is a CA certificate \
                                 (basicConstraints CA:TRUE) that is not itself one of the \
                                 trusted roots"
            .into(),
        W::EndEntityUsedAsCa => "chain check: a certificate in the server's chain that signs \
                                 another is not a CA certificate (basicConstraints CA:FALSE)"
            .into(),
        W::PathLenConstraintViolated => {
            "chain check: the server's chain breaks a CA's path length constraint".into()
        }
        W::NameConstraintViolation => {
            "chain check: the server certificate breaks a CA's name constraints".into()
        }
        W::UnsupportedCriticalExtension => {
            "chain check: a certificate in the server's chain has an unsupported critical \
             extension"
                .into()
        }
        W::MaximumPathDepthExceeded | W::MaximumPathBuildCallsExceeded => {
            "chain check: the server's certificate chain is too long".into()
        }
        other => format!("chain check failed (webpki: {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_for_messages() {
        assert_eq!(
            utc(UnixTime::since_unix_epoch(Duration::from_secs(
                1_580_515_200
            ))),
            "2020-02-01 00:00:00 UTC"
        );
        assert_eq!(
            utc(UnixTime::since_unix_epoch(Duration::from_secs(951_827_696))),
            "2000-02-29 12:34:56 UTC"
        );
    }

    #[test]
    fn an_alert_is_named_in_words() {
        let e = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        assert_eq!(
            rustls_problem(&e),
            "the server sent TLS alert \"unknown CA: the client certificate is not signed by a \
             CA the server trusts\""
        );
    }
}
