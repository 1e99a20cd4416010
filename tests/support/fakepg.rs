//! The fake server of the benchmark suite (`benches/fakepg`) for tests
//! (`support::fakepg`): built on first use, one per call, on a Unix socket in a temp
//! directory, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub struct FakePg {
    child: Child,
    pub dir: String,
    pub port: String,
    /// What it printed on stderr so far (its session log with `--verbose`).
    stderr: Arc<Mutex<Vec<String>>>,
}

impl FakePg {
    /// The lines it printed on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Trust over its Unix socket.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=bench dbname=bench",
            self.dir, self.port
        )
    }

    /// Trust over TCP on 127.0.0.1 (plain: it does not offer TLS).
    pub fn tcp_conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=bench dbname=bench sslmode=disable",
            self.port
        )
    }
}

impl Drop for FakePg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Build the fake server (once per process) and return its path.
pub fn fakepg_binary() -> String {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let target = format!("{root}/target/fakepg");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(format!("{root}/benches/fakepg/Cargo.toml"))
            .args(["--target-dir", &target])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "could not build benches/fakepg");
        format!("{target}/release/fakepg")
    })
    .clone()
}

/// Start a fake server with these extra arguments (e.g. `--ignore-flush`).
pub fn fakepg_with(args: &[&str]) -> FakePg {
    static N: AtomicUsize = AtomicUsize::new(0);
    let binary = fakepg_binary();
    let dir = std::env::temp_dir().join(format!(
        "fw-fake-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(binary)
        .arg("--unix-dir")
        .arg(&dir)
        .args(["--watch-pid", &std::process::id().to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fakepg starts");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    {
        let lines = stderr.clone();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("{line}");
                lines.lock().unwrap().push(line);
            }
        });
    }
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
        stderr,
    }
}

/// A fake server with default settings.
pub fn fakepg() -> FakePg {
    fakepg_with(&[])
}
