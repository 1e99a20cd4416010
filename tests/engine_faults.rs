//! Fault injection with the fake server of the benchmark suite (`benches/fakepg`): a broken
//! message after N rows delivers the N rows first, then the protocol error; a cut connection
//! delivers the rows before it, then an I/O error.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use fraiseql_wire::{Client, ErrorKind, Next, Query, Wait};

struct FakePg {
    child: Child,
    dir: String,
    port: String,
}

impl Drop for FakePg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fakepg() -> FakePg {
    let root = env!("CARGO_MANIFEST_DIR");
    let target = format!("{root}/target/fakepg");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(format!("{root}/benches/fakepg/Cargo.toml"))
        .args(["--target-dir", &target])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "could not build benches/fakepg");
    let dir = std::env::temp_dir().join(format!("fw-fault-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(format!("{target}/release/fakepg"))
        .arg("--unix-dir")
        .arg(&dir)
        .args(["--watch-pid", &std::process::id().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("fakepg starts");
    let mut port = None;
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if let Some(p) = line.trim().strip_prefix("FAKEPG_PORT=") {
            port = Some(p.to_string());
        }
    }
    FakePg {
        child,
        dir: dir.display().to_string(),
        port: port.expect("fakepg printed its port"),
    }
}

fn rows_then_error(client: &Client, source: &str) -> (usize, fraiseql_wire::Error) {
    let mut s = client.execute(&Query::new(source).unwrap()).unwrap();
    let mut n = 0;
    loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(_)) => n += 1,
            Ok(other) => panic!("{source}: expected an error after {n} rows, got {other:?}"),
            Err(e) => return (n, e),
        }
    }
}

#[test]
fn rows_before_a_fault_are_delivered_then_the_error() {
    let f = fakepg();
    let client = Client::connect(&format!(
        "host={} port={} user=bench dbname=bench",
        f.dir, f.port
    ))
    .unwrap();

    let (n, e) = rows_then_error(&client, "w_10k_430__malformed700");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(n, 700, "rows before the malformed message");

    let (n, e) = rows_then_error(&client, "w_10k_430__badrow700");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(n, 700, "rows before the two-column DataRow");

    let (n, e) = rows_then_error(&client, "w_10k_430__cut3000");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(n, 3000, "rows before the cut");

    let (n, e) = rows_then_error(&client, "w_10k_430__error1234");
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert_eq!(e.sqlstate(), Some("22012"));
    assert_eq!(n, 1234);
}
