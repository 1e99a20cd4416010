//! `sslrootcert=system` reads the roots OpenSSL would (`SSL_CERT_FILE`, else the system's
//! bundle), against the throwaway server's TLS certificate (signed by the test
//! CA `FW_PG_SSLROOTCERT`, which the system's store does not hold). One test in its own
//! binary: it sets process-wide environment variables.

mod support;

use fraiseql_wire::{Client, ErrorKind};
use support::pg;

#[test]
fn sslrootcert_system_trusts_the_roots_openssl_would() {
    let pg = pg();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname={} user=fw_tls_only \
         password=tls-secret connect_timeout=10 sslrootcert=system",
        pg.port(),
        pg.var("FW_PG_DB"),
    );
    // The system's bundle (on Debian /etc/ssl/certs/ca-certificates.crt) does not hold the
    // test CA.
    std::env::remove_var("SSL_CERT_FILE");
    let e = Client::connect(&conninfo)
        .err()
        .expect("the test CA is not a system root");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(
        e.message()
            .contains("(trusted roots: the system roots in \""),
        "{e}"
    );
    assert!(
        e.message()
            .contains("the server certificate is not signed by a trusted root"),
        "{e}"
    );
    // SSL_CERT_FILE naming the test CA: trusted, and verified as verify-full (the default
    // mode with sslrootcert=system).
    std::env::set_var("SSL_CERT_FILE", pg.var("FW_PG_SSLROOTCERT"));
    let client = Client::connect(&conninfo).expect("trusted through SSL_CERT_FILE");
    assert_eq!(client.pool().idle_count(), 1);
    // The host name is checked: 127.0.0.2 is not in the certificate.
    let e = Client::connect(&conninfo.replace("host=localhost ", "host=127.0.0.2 "))
        .err()
        .expect("the host name is not the certificate's");
    assert!(e.message().contains("host name check"), "{e}");
}
