//! Azurite, Microsoft's storage emulator, for the object-store and worker
//! tests: one blob (or queue) service per test on a free port of
//! 127.0.0.1, in a temporary folder, killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The emulator's well-known account and key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob (or queue) service.
pub struct Azurite {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    /// The storage its containers are mounted on (see [`Azurite::container`]).
    pub storage: recstitch::Storage,
}

/// Where `npm install azurite` puts it (and `.ci/run` too).
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("azurite")
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `azurite-blob` (or `azurite-queue`) program: on PATH, in the
/// install folder, or installed there with npm (when node and npm are present).
fn program(service: &str) -> Option<PathBuf> {
    if !on_path("node") {
        return None;
    }
    if on_path(service) {
        return Some(service.into());
    }
    let local = install_dir().join("node_modules/.bin").join(service);
    if local.exists() {
        return Some(local);
    }
    if !on_path("npm") {
        return None;
    }
    std::fs::create_dir_all(install_dir()).ok()?;
    let ok = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(install_dir())
        .arg("azurite")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (ok && local.exists()).then_some(local)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Azurite {
    /// Starts Azurite's blob service, or `None` (said loudly) where Node is
    /// missing; panics instead when `RECSTITCH_REQUIRE_AZURITE=1`.
    pub fn start(name: &str) -> Option<Azurite> {
        Azurite::start_service(name, "blob")
    }

    /// Starts Azurite's queue service, as [`Azurite::start`] does the blob service.
    #[allow(dead_code)] // the worker tests only
    pub fn start_queue(name: &str) -> Option<Azurite> {
        Azurite::start_service(name, "queue")
    }

    fn start_service(name: &str, service: &str) -> Option<Azurite> {
        let Some(program) = program(&format!("azurite-{service}")) else {
            if std::env::var("RECSTITCH_REQUIRE_AZURITE").is_ok_and(|v| v == "1") {
                panic!(
                    "Azurite is required (RECSTITCH_REQUIRE_AZURITE=1) but node/npm or azurite-{service} is missing"
                );
            }
            eprintln!("SKIPPED: Azurite is not available (no node/npm, no azurite-{service}): test {name} not run");
            return None;
        };
        let dir = crate::util::temp_dir(&format!("azurite-{service}-{name}"));
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&program)
                .arg(format!("--{service}Host"))
                .arg("127.0.0.1")
                .arg(format!("--{service}Port"))
                .arg(port.to_string())
                .arg("--location")
                .arg(&dir)
                .args(["--skipApiVersionCheck", "--loose", "--silent"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start azurite-{service}: {e}"));
            let mut az = Azurite {
                child,
                port,
                dir: dir.clone(),
                storage: recstitch::Storage::default(),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = az.child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(az);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            az.stop();
        }
        panic!("Azurite ({service}) did not start");
    }

    /// The endpoint, for `AZURITE_BLOB_STORAGE_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment the `recstitch` command needs to reach this Azurite.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.url()),
        ]
    }

    /// Bytes Azurite keeps on disk (committed blobs and uncommitted blocks).
    pub fn stored_bytes(&self) -> u64 {
        walkdir::WalkDir::new(&self.dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Kills the emulator now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Creates a container (signed with the emulator's shared key).
    pub fn create_container(&self, name: &str) {
        let date = http_date();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        );
        let sig = base64(&hmac_sha256(&unbase64(KEY), to_sign.as_bytes()));
        let request = format!(
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        assert!(
            response.starts_with("HTTP/1.1 201"),
            "creating container {name}: {}",
            response.lines().next().unwrap_or("")
        );
    }

    /// Creates the container and mounts it on [`Azurite::storage`] under
    /// `az://<name>` (built without the environment, which tests share).
    pub fn container(&self, name: &str) -> PathBuf {
        self.create_container(name);
        self.mount_on(&self.storage, name)
    }

    /// Mounts the existing container `name` on `storage` under `az://<name>`.
    pub fn mount_on(&self, storage: &recstitch::Storage, name: &str) -> PathBuf {
        recstitch::remote::store::install_crypto_provider();
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(KEY)
            .with_container_name(name)
            .with_endpoint(format!("{}/{ACCOUNT}", self.url()))
            .with_allow_http(true)
            .build()
            .unwrap();
        let root = format!("az://{name}");
        storage.mount_store(&root, Arc::new(store));
        PathBuf::from(root)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies every file under the local folder `from` to the folder URL `to`
/// (its store mounted on `storage`).
pub fn upload_tree(storage: &recstitch::Storage, from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(from).unwrap().to_str().unwrap().to_string();
            let bytes = std::fs::read(e.path()).unwrap();
            storage
                .write(&PathBuf::from(format!("{}/{rel}", to.display())), &bytes)
                .unwrap();
        }
    }
}

/// Every visible object under the folder URL `root` with its bytes, by relative name.
pub fn visible_objects(storage: &recstitch::Storage, root: &Path) -> Vec<(String, Vec<u8>)> {
    visible_objects_where(storage, root, |_| true)
}

/// [`visible_objects`] whose relative names `keep` accepts (the others are
/// not read).
pub fn visible_objects_where(
    storage: &recstitch::Storage,
    root: &Path,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, Vec<u8>)> {
    let base = format!("{}/", root.display());
    storage
        .list_all(root)
        .unwrap()
        .into_iter()
        .filter_map(|(p, _)| {
            let rel = p.to_str().unwrap().strip_prefix(&base).unwrap().to_string();
            let hidden = rel.split('/').any(|c| c.starts_with('.'));
            (!hidden && keep(&rel)).then(|| (rel, storage.read(&p).unwrap()))
        })
        .collect()
}

fn http_date() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        &t.weekday().to_string()[..3],
        t.day(),
        &t.month().to_string()[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<_>>());
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<_>>());
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes().filter(|&b| b != b'=') {
        let v = B64.iter().position(|&x| x == b).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Checks the encoders against known values.
pub fn self_test() {
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(unbase64("TWE="), b"Ma");
    assert_eq!(unbase64(KEY).len(), 64);
}
