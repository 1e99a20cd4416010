//! The start-up exchange driven with blocking I/O on the caller's thread (`Client::connect` on
//! a Unix socket), against a server written here that answers a byte at a time with pauses:
//! every partial message is waited for in poll(2) within `connect_timeout`, an error in the
//! middle of the exchange keeps its SQLSTATE, and a server that never answers times out as
//! a connection failure.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use fraiseql_wire::{Client, ErrorKind};

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn auth(code: i32) -> Vec<u8> {
    msg(b'R', &code.to_be_bytes())
}

/// A socket directory of its own and the listener at `.s.PGSQL.<port>`.
fn listener(name: &str, port: u16) -> (PathBuf, UnixListener) {
    let dir = std::env::temp_dir().join(format!("fw-startup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let l = UnixListener::bind(dir.join(format!(".s.PGSQL.{port}"))).unwrap();
    (dir, l)
}

/// Read one frontend message whose first four bytes are its length (the StartupMessage).
fn read_startup(s: &mut impl Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut body).unwrap();
    body
}

/// Read one tagged frontend message.
fn read_message(s: &mut impl Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).unwrap();
    let mut body = vec![0; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4];
    s.read_exact(&mut body).unwrap();
    (head[0], body)
}

/// Write `bytes` one at a time with a pause after each.
fn trickle(s: &mut impl Write, bytes: &[u8]) {
    for b in bytes {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
        thread::sleep(Duration::from_micros(300));
    }
}

#[test]
fn a_start_up_answered_a_byte_at_a_time_is_waited_for() {
    let (dir, l) = listener("trickle", 5491);
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let startup = read_startup(&mut s);
        trickle(&mut s, &auth(3));
        let (tag, password) = read_message(&mut s);
        let mut rest = auth(0);
        rest.extend(msg(b'S', b"server_version\x0016.4\x00"));
        rest.extend(msg(b'K', &[0, 0, 0x30, 0x39, 0, 0, 0, 7]));
        rest.extend(msg(b'Z', b"I"));
        trickle(&mut s, &rest);
        // The client's Terminate when it is dropped.
        let (terminate, _) = read_message(&mut s);
        (startup, tag, password, terminate)
    });
    let client = Client::connect(&format!(
        "host={} port=5491 user=alice password=secret dbname=app connect_timeout=10",
        dir.display()
    ))
    .expect("the trickled start-up completes");
    assert_eq!(client.pool().idle_count(), 1);
    drop(client);
    let (startup, tag, password, terminate) = server.join().unwrap();
    let startup = String::from_utf8_lossy(&startup).into_owned();
    assert!(startup.contains("user\0alice\0"), "{startup:?}");
    assert_eq!((tag, password.as_slice()), (b'p', &b"secret\0"[..]));
    assert_eq!(terminate, b'X');
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_error_in_the_middle_of_the_exchange_keeps_its_sqlstate() {
    let (dir, l) = listener("error", 5492);
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        read_startup(&mut s);
        trickle(&mut s, &auth(3));
        read_message(&mut s);
        let fields =
            b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"alice\"\0\0";
        trickle(&mut s, &msg(b'E', fields));
    });
    let e = Client::connect(&format!(
        "host={} port=5492 user=alice password=wrong dbname=app connect_timeout=10",
        dir.display()
    ))
    .err()
    .expect("the server refused the password");
    server.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_eq!(e.sqlstate(), Some("28P01"), "{e}");
    assert!(
        e.message().contains("password authentication failed"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_that_never_answers_times_out_as_a_connection_failure() {
    let (dir, l) = listener("silent", 5493);
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        read_startup(&mut s);
        // Half an authentication request, then nothing until the client gives up.
        s.write_all(&auth(0)[..3]).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let e = Client::connect(&format!(
        "host={} port=5493 user=alice dbname=app connect_timeout=1",
        dir.display()
    ))
    .err()
    .expect("no answer");
    server.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    // libpq's rule: a connect_timeout under 2 s is taken as 2 s.
    assert!(e.message().ends_with("timed out after 2 s"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
