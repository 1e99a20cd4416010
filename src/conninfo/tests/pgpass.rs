use super::*;
use crate::conninfo::pgpass::pgpass_lookup;

// ---- password file --------------------------------------------------

#[test]
fn pgpass_line_matching() {
    let file = "\
# comment:*:*:*:nope
db.example:5432:app:alice:first
*:5432:*:bob:b\\:o\\\\b
wild\\*:*:*:*:escaped-star
localhost:*:*:carol:local
/tmp:*:*:dave:socket
*:*:*:*:
*:*:*:*:never";
    let find = |h: &str, p: &str, d: &str, u: &str| pgpass_lookup(file.lines(), h, p, d, u);
    assert_eq!(
        find("db.example", "5432", "app", "alice").as_deref(),
        Some("first")
    );
    assert_eq!(find("db.example", "5433", "app", "alice"), None);
    assert_eq!(
        find("anything", "5432", "x", "bob").as_deref(),
        Some("b:o\\b")
    );
    assert_eq!(
        find("wild*", "1", "d", "zed").as_deref(),
        Some("escaped-star")
    );
    assert_eq!(find("wildX", "1", "d", "zed"), None);
    assert_eq!(
        find("localhost", "1", "d", "carol").as_deref(),
        Some("local")
    );
    assert_eq!(find("/tmp", "1", "d", "dave").as_deref(), Some("socket"));
    // First match wins even if its password is empty.
    assert_eq!(find("other", "1", "d", "zed"), None);
    // Malformed lines (too few fields) never match.
    assert_eq!(
        pgpass_lookup(["*:*:*"].into_iter(), "h", "1", "d", "u"),
        None
    );
    // A password stops at an unescaped ':'.
    assert_eq!(
        pgpass_lookup(["*:*:*:*:pw:extra"].into_iter(), "h", "1", "d", "u").as_deref(),
        Some("pw")
    );
}

#[cfg(unix)]
mod passfile {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "fraiseql-wire-conninfo-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const FILE: &str = "\
db.example:5432:app:alice:alice-pw
db.example:*:*:*:db-any
localhost:5432:*:bob:bob-local
/tmp:6000:*:bob:bob-tmp\r
10.0.0.1:*:*:*:addr-pw
";

    fn with_passfile(dir: &TempDir, mode: u32) -> Env {
        let path = dir.write("pgpass", FILE, mode);
        env_of(&[("PGPASSFILE", path.to_str().unwrap())])
    }

    #[test]
    fn used_when_no_password_given() {
        let dir = TempDir::new();
        let env = with_passfile(&dir, 0o600);
        let pw = |s: &str| parse_env(s, &env).unwrap().password;
        assert_eq!(
            pw("host=db.example user=alice dbname=app").as_deref(),
            Some("alice-pw")
        );
        assert_eq!(
            pw("host=db.example user=carol dbname=x").as_deref(),
            Some("db-any")
        );
        assert_eq!(pw("host=other user=alice dbname=app"), None);
        // Explicit (and environment) passwords take precedence.
        assert_eq!(
            pw("host=db.example user=alice dbname=app password=given").as_deref(),
            Some("given")
        );
        let mut env2 = env.clone();
        env2.insert("PGPASSWORD".into(), "envpw".into());
        assert_eq!(
            parse_env("host=db.example user=alice dbname=app", &env2)
                .unwrap()
                .password
                .as_deref(),
            Some("envpw")
        );
        // An explicitly empty password still consults the file.
        assert_eq!(
            pw("host=db.example user=alice dbname=app password=''").as_deref(),
            Some("alice-pw")
        );
        // URI form, and the first host is the one matched.
        assert_eq!(
            pw("postgresql://alice@db.example,other/app").as_deref(),
            Some("alice-pw")
        );
        assert_eq!(pw("postgresql://alice@other,db.example/app"), None);
    }

    #[test]
    fn localhost_matches_default_socket_and_hostaddr_used_without_host() {
        let dir = TempDir::new();
        let env = with_passfile(&dir, 0o600);
        let pw = |s: &str| parse_env(s, &env).unwrap().password;
        // Default socket directory counts as "localhost".
        assert_eq!(pw("user=bob").as_deref(), Some("bob-local"));
        assert_eq!(
            pw("host=/var/run/postgresql user=bob").as_deref(),
            Some("bob-local")
        );
        assert_eq!(pw("host=localhost user=bob").as_deref(), Some("bob-local"));
        // Another socket directory is matched by its path (CRLF tolerated).
        assert_eq!(
            pw("host=/tmp port=6000 user=bob").as_deref(),
            Some("bob-tmp")
        );
        assert_eq!(pw("host=/tmp port=5432 user=bob"), None);
        // hostaddr is matched when no host is given.
        assert_eq!(pw("hostaddr=10.0.0.1 user=x").as_deref(), Some("addr-pw"));
    }

    #[test]
    fn passfile_keyword_and_home_default() {
        let dir = TempDir::new();
        let path = dir.write("custom", "*:*:*:*:from-keyword\n", 0o600);
        let s = format!("user=u passfile='{}'", path.display());
        assert_eq!(
            parse_env(&s, &Env::new()).unwrap().password.as_deref(),
            Some("from-keyword")
        );
        dir.write(".pgpass", "*:*:*:*:from-home\n", 0o600);
        let env = env_of(&[("HOME", dir.0.to_str().unwrap())]);
        assert_eq!(
            parse_env("user=u", &env).unwrap().password.as_deref(),
            Some("from-home")
        );
        // The keyword beats PGPASSFILE, which beats HOME.
        let other = dir.write("other", "*:*:*:*:from-env\n", 0o600);
        let mut env2 = env.clone();
        env2.insert("PGPASSFILE".into(), other.to_str().unwrap().into());
        assert_eq!(
            parse_env("user=u", &env2).unwrap().password.as_deref(),
            Some("from-env")
        );
        assert_eq!(
            parse_env(&s, &env2).unwrap().password.as_deref(),
            Some("from-keyword")
        );
    }

    #[test]
    fn ignored_when_group_or_world_accessible_missing_or_not_a_file() {
        for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
            let dir = TempDir::new();
            let env = with_passfile(&dir, mode);
            let c = parse_env("host=db.example user=alice dbname=app", &env).unwrap();
            assert_eq!(c.password, None, "mode {mode:o}");
        }
        let dir = TempDir::new();
        let env = with_passfile(&dir, 0o400);
        let c = parse_env("host=db.example user=alice dbname=app", &env).unwrap();
        assert_eq!(c.password.as_deref(), Some("alice-pw"));

        let missing = dir.0.join("does-not-exist");
        let env = env_of(&[("PGPASSFILE", missing.to_str().unwrap())]);
        assert_eq!(parse_env("user=u", &env).unwrap().password, None);
        let env = env_of(&[("PGPASSFILE", dir.0.to_str().unwrap())]);
        assert_eq!(parse_env("user=u", &env).unwrap().password, None);
        let env = env_of(&[("HOME", "/nonexistent-fraiseql-home")]);
        assert_eq!(parse_env("user=u", &env).unwrap().password, None);
    }

    #[test]
    fn non_utf8_lines_are_skipped() {
        let dir = TempDir::new();
        let path = dir.0.join("bin");
        std::fs::write(&path, b"*:*:*:*:\xff\xfe\n*:*:*:*:good\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env_of(&[("PGPASSFILE", path.to_str().unwrap())]);
        assert_eq!(
            parse_env("user=u", &env).unwrap().password.as_deref(),
            Some("good")
        );
    }
}
