//! fakepg: a scriptable fake PostgreSQL server for benchmarks and fault-injection tests.
//!
//! It speaks the startup phase (trust or cleartext password), simple query, extended query
//! (Parse/Bind/Describe/Execute/Sync, with row-limited Execute), cursors (DECLARE / FETCH /
//! CLOSE), BEGIN/COMMIT/ROLLBACK/SET, CancelRequest and Terminate. Query results are
//! pre-generated JSON documents replayed from memory as pre-encoded DataRow messages in large
//! writes, so that the client is the bottleneck. What a query returns is chosen by the name it
//! selects from: see `workload.rs` (`w_<count>_<size>[__<fault>...]`).
//!
//! Usage: see `--help`. On start it prints `FAKEPG_PORT=...`, `FAKEPG_HOST=...` and (with
//! `--unix-dir`) `FAKEPG_SOCKET_DIR=...` on stdout, then serves until killed (or until the
//! `--watch-pid` process exits).

mod cpu;
mod proto;
mod session;
mod workload;

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use session::{Auth, Config, Sock};
use workload::Faults;

const HELP: &str = "\
fakepg: a scriptable fake PostgreSQL server (benchmarks, fault injection)

usage: fakepg [options]

  --host ADDR          TCP address to listen on (default 127.0.0.1)
  --port N             TCP port (default 0: pick a free one; printed as FAKEPG_PORT)
  --unix-dir DIR       also listen on the Unix socket DIR/.s.PGSQL.<port>
  --auth trust|password   authentication (default trust)
  --password PW        the password for --auth password (cleartext exchange)
  --fault SPEC         faults applied to every query, e.g. cut500 or error10__slow100
                       (a workload name's own faults are added to these)
  --write-size BYTES   largest single write (default 1048576)
  --ignore-flush       do not send anything on Flush: the whole answer to a query goes out
                       at Sync, in one write when it fits (a client then gets a small result
                       in a single read, whatever the timing)
  --watch-pid PID      exit when process PID has exited
  --pregen SIZES       generate the row blocks for these document sizes at start,
                       comma-separated (e.g. 430,4k,1mb), so the first query is not slowed
  --verbose            log sessions to stderr
  --cpu-file PATH      when a session starts or ends, write the sessions started and ended so
                       far and the CPU of the ended ones (`accepted`, `sessions`, `cpu_ns`
                       lines; see src/cpu.rs)
  --check              generate a few documents, print their sizes and exit

Workloads are chosen by the relation name in the query:
  w_<count>_<size>     <count> rows (suffix k = 1000, m = 1000000) of <size>-byte JSON
                       documents (suffix k = KiB, mb = MiB), e.g. w_1m_430, w_100k_4k, w_1k_1mb
  w_small              10 rows of 430 bytes
  LIMIT n / OFFSET n in the query are honoured. Any other relation: error 42P01.

Faults, appended to the name with double underscores (w_10k_430__cut500__slow100):
  cut<N>        close the connection after N rows (no error message)
  error<N>      ErrorResponse SQLSTATE 22012 after N rows; the session stays usable
  malformed<N>  after N rows, a DataRow with an invalid length field; then wait for close
  badrow<N>     after N rows, a DataRow with two columns; then wait for close
  unknown<N>    after N rows, a well-framed message of unknown type '~'; then wait for close
  notice<N>     a NoticeResponse and a ParameterStatus after N rows (harmless)
  bigmsg<SIZE>  pad the messages of error<N> and notice<N> with SIZE bytes (e.g. 3mb)
  slow<US>      write in 8 KiB pieces, sleeping US microseconds after each
  stall<MS>     wait MS milliseconds before the first row (CancelRequest ends it: 57014)
  nulls<K>      every K-th row is SQL NULL
  nulbyte<K>    every K-th row holds a NUL byte (in the middle of its JSON text)
  text | json   describe the column as text (oid 25) / json (oid 114) instead of jsonb
  twocols       two columns (data, extra)
  rename        the column is called doc instead of data
A CancelRequest with the right key makes the running query fail with SQLSTATE 57014.
";

fn die(msg: &str) -> ! {
    eprintln!("fakepg: {msg}");
    std::process::exit(2);
}

fn parse_size_arg(s: &str) -> usize {
    let l = s.to_ascii_lowercase();
    let (d, m) = if let Some(d) = l.strip_suffix("mb") {
        (d.to_string(), 1 << 20)
    } else if let Some(d) = l.strip_suffix('k') {
        (d.to_string(), 1 << 10)
    } else {
        (l.clone(), 1)
    };
    d.parse::<usize>()
        .map(|n| n * m)
        .unwrap_or_else(|_| die(&format!("bad size {s}")))
}

fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port: u16 = 0;
    let mut unix_dir: Option<PathBuf> = None;
    let mut auth = "trust".to_string();
    let mut password: Option<String> = None;
    let mut faults = Faults::default();
    let mut write_size = 1 << 20;
    let mut ignore_flush = false;
    let mut watch_pid: Option<u32> = None;
    let mut pregen: Vec<usize> = Vec::new();
    let mut verbose = false;
    let mut cpu_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| die(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return;
            }
            "--host" => host = val("--host"),
            "--port" => port = val("--port").parse().unwrap_or_else(|_| die("bad --port")),
            "--unix-dir" => unix_dir = Some(PathBuf::from(val("--unix-dir"))),
            "--auth" => auth = val("--auth"),
            "--password" => password = Some(val("--password")),
            "--fault" => {
                faults = Faults::parse(&val("--fault")).unwrap_or_else(|e| die(&e));
            }
            "--write-size" => {
                write_size = parse_size_arg(&val("--write-size")).max(4096);
            }
            "--watch-pid" => {
                watch_pid = Some(
                    val("--watch-pid")
                        .parse()
                        .unwrap_or_else(|_| die("bad --watch-pid")),
                )
            }
            "--pregen" => {
                pregen = val("--pregen")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_size_arg)
                    .collect()
            }
            "--verbose" => verbose = true,
            "--cpu-file" => cpu_file = Some(PathBuf::from(val("--cpu-file"))),
            "--ignore-flush" => ignore_flush = true,
            "--check" => {
                let mut so = std::io::stdout().lock();
                for size in [430usize, 4096, 1 << 20] {
                    let d = workload::make_doc(1, size);
                    let _ = writeln!(so, "size {size}: {} bytes", d.len());
                    if size < 1000 {
                        let _ = writeln!(so, "{}", String::from_utf8_lossy(&d));
                    }
                }
                return;
            }
            other => die(&format!("unknown option {other} (see --help)")),
        }
    }
    let auth = match auth.as_str() {
        "trust" => Auth::Trust,
        "password" => {
            Auth::Password(password.unwrap_or_else(|| die("--auth password needs --password")))
        }
        other => die(&format!("unknown --auth {other}")),
    };
    let cfg = Arc::new(Config {
        faults,
        write_size,
        auth,
        verbose,
        ignore_flush,
        cpu: cpu_file.map(|p| {
            cpu::CpuLog::new(p.clone())
                .unwrap_or_else(|e| die(&format!("--cpu-file {}: {e}", p.display())))
        }),
    });

    for size in pregen {
        workload::block(size);
    }

    let tcp = TcpListener::bind((host.as_str(), port))
        .unwrap_or_else(|e| die(&format!("cannot listen on {host}:{port}: {e}")));
    let port = tcp.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut sock_path = None;
    let unix = unix_dir.as_ref().map(|dir| {
        let path = dir.join(format!(".s.PGSQL.{port}"));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path)
            .unwrap_or_else(|e| die(&format!("cannot listen on {}: {e}", path.display())));
        sock_path = Some(path);
        l
    });

    {
        let mut so = std::io::stdout().lock();
        let _ = writeln!(so, "FAKEPG_PORT={port}");
        let _ = writeln!(so, "FAKEPG_HOST={host}");
        if let Some(d) = &unix_dir {
            let _ = writeln!(so, "FAKEPG_SOCKET_DIR={}", d.display());
        }
        let _ = so.flush();
    }

    if let Some(l) = unix {
        let cfg = cfg.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let cfg = cfg.clone();
                std::thread::spawn(move || session::serve(Sock::Unix(s), cfg));
            }
        });
    }
    if let Some(pid) = watch_pid {
        let path = sock_path.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                if let Some(p) = &path {
                    let _ = std::fs::remove_file(p);
                }
                std::process::exit(0);
            }
        });
    }
    for s in tcp.incoming().flatten() {
        let cfg = cfg.clone();
        std::thread::spawn(move || session::serve(Sock::Tcp(s), cfg));
    }
}
