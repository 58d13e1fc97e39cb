//! Configuration tests: the documented example file, precedence, and errors that
//! name their source.

use std::io::Write;

use super::*;

const SPEC_EXAMPLE: &str = r#"
upstream = "http://127.0.0.1:3000"
listen = "0.0.0.0:8080"
query_listen = "127.0.0.1:9181"
database = "sqlite://auditgate.db"
rules = "rules/"
instance = "gw-1"
trusted_proxies = ["127.0.0.1/32"]
fail_mode = "open"
method_override = "honour"
retention_days = 0
config_refresh = "2s"

[actor]
order = ["header", "jwt", "basic", "whoami"]
header = "X-Remote-User"
jwt_claim = "sub"
jwt_key = "certs/jwt-public.pem"
whoami_url = "/api/v1/me/"
whoami_field = "/username"

[snapshot]
forward_headers = ["authorization", "cookie"]
timeout = "2s"
max_bytes = 1048576
redact = ["password", "secret", "token"]
skip_unchanged = false
ignore_fields = ["/updated_at"]
volatile_fields = ["csrfmiddlewaretoken", "authenticity_token"]   # replaces the default list

[limits]
max_header_bytes = 65536
max_body_bytes = 10485760
upstream_timeout = "30s"
header_read_timeout = "10s"
shutdown_timeout = "30s"

[recorder]
queue = 10000
batch = 500
flush_interval = "50ms"
spool = "auditgate.spool"

[query]
tokens = [{ name = "ops", token = "a", role = "admin" }, { name = "siem", token = "b", role = "read" }]
"#;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A fresh P-256 public key in PEM, made by the `openssl` command.
pub(crate) fn ec_public_pem(dir: &Path) -> std::path::PathBuf {
    let private = dir.join("jwt-private.pem");
    let public = dir.join("jwt-public.pem");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).status().expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", private.to_str().unwrap()]);
    run(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    public
}

#[test]
fn spec_example_loads() {
    let dir = tempfile::tempdir().unwrap();
    let key = ec_public_pem(dir.path());
    let f = file(&SPEC_EXAMPLE.replace("certs/jwt-public.pem", key.to_str().unwrap()));
    let c = Config::load(Some(f.path()), env(&[]), &Vec::new()).unwrap();
    assert_eq!(c.instance, "gw-1");
    assert_eq!(c.upstream.unwrap().authority.as_str(), "127.0.0.1:3000");
    assert_eq!(c.snapshot.ignore_fields, vec!["/updated_at"]);
    assert_eq!(c.snapshot.volatile_fields, ["csrfmiddlewaretoken", "authenticity_token"]);
    let defaults = Config::load(None, env(&[]), &Vec::new()).unwrap();
    assert_eq!(defaults.snapshot.volatile_fields.len(), 8);
    assert!(
        ["_token", "__VIEWSTATE", "csrfmiddlewaretoken"]
            .iter()
            .all(|v| defaults.snapshot.volatile_fields.contains(&v.to_string()))
    );
    assert_eq!(c.limits.upstream_timeout, Duration::from_secs(30));
    assert!(c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
    assert!(c.actor.jwt.is_some());
}

#[test]
fn jwt_keys_are_checked_at_start() {
    let load = |toml: &str| Config::load(Some(file(toml).path()), env(&[]), &Vec::new());
    let err = |toml: &str| match load(toml) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{toml} was accepted"),
    };
    assert!(err("[actor]\njwt_key = \"/nonexistent/key.pem\"\n").contains("actor.jwt_key: cannot read"));
    assert!(err("[actor]\njwks_file = \"/nonexistent/jwks.json\"\n").contains("actor.jwks_file: cannot read"));
    assert!(err("[actor]\njwt_secret = \"a\"\njwks_file = \"x\"\n").contains("only one of"));
    assert!(err("[actor]\njwt_secret = \"\"\n").contains("actor.jwt_secret: is empty"));
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    assert!(err(&format!("[actor]\njwt_key = \"{}\"\n", garbage.display())).contains("not an RSA or EC public key"));
    assert!(load("[actor]\njwt_secret = \"s3cret\"\n").unwrap().actor.jwt.is_some());
}

#[test]
fn flags_beat_environment_beat_file() {
    let f = file("listen = \"127.0.0.1:1000\"\nquery_listen = \"127.0.0.1:2000\"\ndatabase = \"sqlite://file.db\"\n");
    let e = env(&[("AUDITGATE_LISTEN", "127.0.0.1:1001"), ("AUDITGATE_DATABASE", "sqlite://env.db"), ("PATH", "/bin")]);
    let flags: Overrides = vec![("listen", "127.0.0.1:1002".into())];
    let c = Config::load(Some(f.path()), e, &flags).unwrap();
    assert_eq!(c.listen.port(), 1002);
    assert_eq!(c.database, "sqlite://env.db");
    assert_eq!(c.query_listen.port(), 2000);
}

#[test]
fn environment_values_are_typed_by_key() {
    let e = env(&[
        ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32,10.0.0.0/8"),
        ("AUDITGATE_ACTOR__JWT_CLAIM", "username"),
        ("AUDITGATE_LIMITS__MAX_BODY_BYTES", "2048"),
        ("AUDITGATE_SNAPSHOT__SKIP_UNCHANGED", "true"),
        ("AUDITGATE_INSTANCE", "123"),
    ]);
    let c = Config::load(None, e, &Vec::new()).unwrap();
    assert!(c.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
    assert_eq!(c.actor.jwt_claim, "username");
    assert_eq!(c.limits.max_body_bytes, 2048);
    assert!(c.snapshot.skip_unchanged);
    assert_eq!(c.instance, "123");
}

#[test]
fn file_errors_name_file_line_and_key() {
    for (text, line, needle) in [
        ("listen = \"0.0.0.0:1\"\n\n[limits]\nmax_body_byte = 5\n", 4, "max_body_byte"),
        ("retention_days = \"ten\"\n", 1, "retention_days: invalid type: string"),
        ("\nlisten = 2\n", 2, "listen: invalid type: integer"),
        ("[limits]\n\nmax_body_bytes = \"lots\"\n", 3, "limits.max_body_bytes: invalid type: string"),
        ("[actor]\norder = 3\n", 2, "actor.order: expected a list"),
        ("[snapshot]\nmax_bytes = 1\n\nbogus = 3\n", 4, "bogus"),
        ("listen = \n", 1, ""),
    ] {
        let f = file(text);
        let err = Config::load(Some(f.path()), env(&[]), &Vec::new()).unwrap_err().to_string();
        let prefix = format!("{}:{line}: ", f.path().display());
        assert!(err.starts_with(&prefix), "{err} should start with {prefix}");
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
}

#[test]
fn environment_errors_name_the_variable() {
    let err =
        Config::load(None, env(&[("AUDITGATE_LIMITS__MAX_BODY_BYTES", "lots")]), &Vec::new()).unwrap_err().to_string();
    assert!(err.starts_with("environment variable AUDITGATE_LIMITS__MAX_BODY_BYTES: "), "{err}");
    let err = Config::load(None, env(&[("AUDITGATE_NOPE", "1")]), &Vec::new()).unwrap_err().to_string();
    assert!(err.contains("AUDITGATE_NOPE") && err.contains("unknown field"), "{err}");
}

#[test]
fn validation_collects_every_problem() {
    let f = file(
        "listen = \"nowhere\"\nfail_mode = \"sideways\"\ntrusted_proxies = [\"10.0.0.0/33\"]\nconfig_refresh = \"soon\"\n[actor]\norder = [\"psychic\"]\n",
    );
    let err = Config::load(Some(f.path()), env(&[]), &Vec::new()).unwrap_err().to_string();
    for needle in ["listen", "fail_mode", "trusted_proxies", "config_refresh", "actor.order"] {
        assert!(err.contains(needle), "{err} lacks {needle}");
    }
}

#[test]
fn upstream_must_be_http() {
    for bad in ["ftp://x", "127.0.0.1:3000", "http://x/?a=1"] {
        let flags: Overrides = vec![("upstream", bad.into())];
        assert!(Config::load(None, env(&[]), &flags).is_err(), "{bad}");
    }
    let flags: Overrides = vec![("upstream", "http://127.0.0.1:3000/app/".into())];
    let c = Config::load(None, env(&[]), &flags).unwrap();
    assert_eq!(c.upstream.unwrap().base_path, "/app");
}

#[test]
fn the_default_runtime_leaves_one_core_to_the_rest_of_the_machine() {
    let threads: Vec<usize> = [0, 1, 2, 4, 16].into_iter().map(default_worker_threads).collect();
    assert_eq!(threads, [1, 1, 1, 3, 15]);
    let set = Config::load(None, env(&[("AUDITGATE_WORKER_THREADS", "2")]), &Vec::new()).unwrap();
    assert_eq!(set.worker_threads, 2, "a set value is kept");
}

#[test]
fn sinks_come_from_the_file_or_the_environment_and_their_problems_are_named() {
    let f = file(
        "[[sink]]\nname = \"siem\"\nkind = \"syslog\"\nurl = \"tcp://127.0.0.1:6514\"\n\n\
         [[sink]]\nname = \"hec\"\nkind = \"webhook\"\nurl = \"https://collector.example/ingest\"\nsecret = \"k\"\nbatch = 100\n",
    );
    let c = Config::load(Some(f.path()), env(&[]), &Vec::new()).unwrap();
    let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["siem", "hec"]);
    assert_eq!(c.sinks[0].format, crate::sink::Format::Native);
    let e = env(&[("AUDITGATE_SINK", r#"[{ name = "x", kind = "kafka", url = "https://h/" }]"#)]);
    let err = Config::load(None, e, &Vec::new()).unwrap_err().to_string();
    assert!(err.contains("sink `x`: kind: `kafka` is not `syslog` or `webhook`"), "{err}");
    // An unknown key names its line.
    let f = file("[[sink]]\nname = \"x\"\nkind = \"syslog\"\nurl = \"tcp://h:1\"\nretries = 3\n");
    let err = Config::load(Some(f.path()), env(&[]), &Vec::new()).unwrap_err().to_string();
    assert!(err.contains(":5:") && err.contains("retries"), "{err}");
}

/// Every bounded setting is read and checked: a value past its bound,
/// given through the environment, stops the configuration naming the key.
#[test]
fn every_bounded_setting_is_checked_naming_its_key() {
    let variable = |key: &str| format!("AUDITGATE_{}", key.replace('.', "__").to_ascii_uppercase());
    let mut past = Vec::new();
    for (key, _, most) in bounds::DURATIONS {
        past.push((*key, format!("{}ms", most.as_millis() + 1)));
    }
    for (key, _, most) in bounds::NUMBERS {
        past.push((*key, (most + 1).to_string()));
    }
    for (key, value) in past {
        let vars = vec![(variable(key), value.clone()), ("AUDITGATE_UPSTREAM".into(), "http://127.0.0.1:3000".into())];
        let err = Config::load(None, vars, &Vec::new()).unwrap_err().to_string();
        assert!(err.contains(&format!("{key}: {value}")) || err.contains(&format!("{key}: ")), "{key}={value}: {err}");
    }
    // Within bounds, the defaults among them, all is well.
    let vars = vec![("AUDITGATE_UPSTREAM".to_string(), "http://127.0.0.1:3000".to_string())];
    assert!(Config::load(None, vars, &Vec::new()).is_ok());
}

#[test]
fn a_file_auditgate_writes_is_a_regular_file_or_not_yet_in_a_directory_that_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.spool");
    assert_eq!(usable_file("recorder.spool", &file), Ok(()), "not yet there, its directory is");
    std::fs::write(&file, "").unwrap();
    assert_eq!(usable_file("recorder.spool", &file), Ok(()), "a regular file");
    assert_eq!(usable_file("database", Path::new("relative-and-new.db")), Ok(()), "in the working directory");
    let err = usable_file("recorder.spool", dir.path()).unwrap_err();
    assert_eq!(err, format!("recorder.spool: `{}` is not a regular file", dir.path().display()));
    let err = usable_file("database", &dir.path().join("no/such.db")).unwrap_err();
    assert!(err.starts_with("database: the directory of"), "{err}");
    // Under a regular file: not "missing", its own error (not a directory).
    let under = file.join("x.db");
    let err = usable_file("database", &under).unwrap_err();
    assert_eq!(err, format!("database: `{}`: Not a directory (os error 20)", under.display()));
    assert_eq!(sqlite_file("sqlite:///tmp/a.db?cache_mib=8"), Some(PathBuf::from("/tmp/a.db")));
    assert_eq!(sqlite_file("sqlite://rel.db"), Some(PathBuf::from("rel.db")));
    assert_eq!(sqlite_file("sqlite::memory:"), None);
    assert_eq!(sqlite_file("sqlite://:memory:"), None);
    assert_eq!(sqlite_file("sqlite://"), None);
    assert_eq!(sqlite_file("postgres://u@h/db"), None);
}

#[test]
fn a_named_rules_directory_must_exist_and_the_default_may_not() {
    let vars = |rules: Option<&str>| {
        let mut v = vec![("AUDITGATE_UPSTREAM".to_string(), "http://127.0.0.1:3000".to_string())];
        v.extend(rules.map(|r| ("AUDITGATE_RULES".to_string(), r.to_string())));
        v
    };
    let err = Config::load(None, vars(Some("/no/such/rules")), &Vec::new()).unwrap_err().to_string();
    assert!(err.contains("rules: `/no/such/rules` is not a directory"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let named = Config::load(None, vars(Some(dir.path().to_str().unwrap())), &Vec::new()).unwrap();
    assert!(named.rules_given);
    assert_eq!(named.rules, dir.path());
    let default = Config::load(None, vars(None), &Vec::new()).unwrap();
    assert!(!default.rules_given);
    assert_eq!(default.rules, Path::new(DEFAULT_RULES));
}
