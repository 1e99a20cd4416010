//! Why `sslrootcert=system` reads one bundle file instead of using `rustls-native-certs`:
//! the time to build a root store each way, as every new TLS connection with
//! `sslrootcert=system` does (src/connection/tls.rs). Prints a table; run with
//! `cargo bench --bench system_roots`.

use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// What the library does: the first bundle file that exists (`SSL_CERT_FILE` first), parsed
/// as PEM into a root store.
fn bundle() -> usize {
    let path = std::env::var("SSL_CERT_FILE")
        .ok()
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(String::from),
        )
        .find(|p| std::path::Path::new(p).exists())
        .expect("no system certificate bundle (install ca-certificates)");
    let pem = std::fs::read(&path).expect("read the bundle");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .collect();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs).0
}

/// The crate made for it.
fn native() -> usize {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs).0
}

fn time(f: fn() -> usize, runs: u32) -> (Duration, usize) {
    let mut n = f(); // warm the page cache
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            n = std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], n)
}

fn main() {
    let runs = 21;
    let (b, nb) = time(bundle, runs);
    let (r, nr) = time(native, runs);
    println!("root store for sslrootcert=system, median of {runs} loads (wall)");
    println!("| way | roots | time per load | vs bundle |");
    println!("|---|---:|---:|---:|");
    println!("| one bundle file (the library) | {nb} | {b:.2?} | 1.00x |");
    println!(
        "| rustls-native-certs | {nr} | {r:.2?} | {:.2}x |",
        r.as_secs_f64() / b.as_secs_f64()
    );
}
