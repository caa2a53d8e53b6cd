//! A stand-in for the recording service, for the fetch tests and the
//! `fake_service` example (which includes this file): a small
//! HTTP/1.1 server on 127.0.0.1 (random ports) with the documented
//! download endpoints on one listener ("the endpoint") and storage-style
//! locations on another ("the storage host"). It verifies every request's
//! HMAC-SHA256 signature on its own (the hmac crate, not recstitch's code)
//! and answers 401 with a JSON body when it does not match, honours
//! `Range`, logs every request, and injects faults per document id.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The access key the service accepts (base64 of `test-access-key-0123456789`).
pub const KEY_B64: &str = "dGVzdC1hY2Nlc3Mta2V5LTAxMjM0NTY3ODk=";

/// A media object's bytes.
#[derive(Clone)]
pub enum Media {
    /// These bytes.
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes: an `ftyp` box, then a pattern ([`synthetic_byte`]).
    Synthetic(u64),
}

impl Media {
    pub fn len(&self) -> u64 {
        match self {
            Media::Bytes(b) => b.len() as u64,
            Media::Synthetic(n) => *n,
        }
    }

    /// Fills `buf` with the bytes from `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Media::Bytes(b) => {
                let start = offset as usize;
                buf.copy_from_slice(&b[start..start + buf.len()]);
            }
            Media::Synthetic(_) => synthetic(offset, buf),
        }
    }
}

const FTYP: &[u8; 32] = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
/// The pattern's period: not a divisor of any power of two, so that bytes
/// written at a wrong offset are noticed.
const PERIOD: usize = (1 << 20) + 17;

fn pattern() -> &'static [u8] {
    static P: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// The synthetic media's bytes from `offset`.
pub fn synthetic(offset: u64, buf: &mut [u8]) {
    let p = pattern();
    let mut filled = 0;
    let mut pos = offset;
    while filled < buf.len() {
        if pos < FTYP.len() as u64 {
            buf[filled] = FTYP[pos as usize];
            filled += 1;
            pos += 1;
            continue;
        }
        let at = (pos % PERIOD as u64) as usize;
        let n = (PERIOD - at).min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&p[at..at + n]);
        filled += n;
        pos += n as u64;
    }
}

/// Whether the file at `path` holds exactly the synthetic media of `len` bytes.
pub fn is_synthetic(path: &std::path::Path, len: u64) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.metadata().map(|m| m.len()).unwrap_or(0) != len {
        return false;
    }
    let mut got = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = ((len - pos) as usize).min(got.len());
        if f.read_exact(&mut got[..n]).is_err() {
            return false;
        }
        synthetic(pos, &mut want[..n]);
        if got[..n] != want[..n] {
            return false;
        }
        pos += n as u64;
    }
    true
}

/// What the service does wrong for a document, for its first `times` media requests.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Sends the headers and `after` bytes of the body, then drops the connection.
    Drop { after: u64 },
    /// 503 with `Retry-After: secs`.
    Unavailable { retry_after: u64 },
    /// 429 without `Retry-After`.
    TooMany,
    /// 200 with an HTML sign-in page.
    Html,
    /// 200 with a JSON error body.
    JsonError,
    /// 200 with 0 bytes.
    Empty,
    /// Sends `after` bytes, then nothing for `secs` seconds.
    Stall { after: u64, secs: u64 },
    /// Announces the whole range in `Content-Range` but a `Content-Length`
    /// `short` bytes shorter, and sends that much: a body that is complete
    /// by its own length and still short.
    WrongLength { short: u64 },
    /// 403 with a JSON body.
    Forbidden,
    /// 307 to this URL (`Location`), nothing else.
    Redirect { to: String },
}

/// One request as the service saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The document id the path names.
    pub document_id: String,
    /// `media`, `metadata` or `delete`.
    pub what: &'static str,
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes written to the socket.
    pub body_bytes: u64,
    /// When the request arrived (since the service started).
    pub at: Duration,
    /// When its response was complete.
    pub finished: Option<Duration>,
    /// Which listener: `endpoint` or `storage`.
    pub listener: &'static str,
    pub x_ms_host: Option<String>,
    /// Every header received, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Logged {
    /// Whether the request carried a credential (a signature or a token).
    pub fn signed(&self) -> bool {
        self.headers.iter().any(|(n, _)| {
            matches!(
                n.as_str(),
                "authorization" | "x-ms-content-sha256" | "x-ms-date" | "x-ms-host"
            )
        })
    }
}

struct Object {
    media: Media,
    metadata: Vec<u8>,
}

struct State {
    key: Vec<u8>,
    endpoint_authority: String,
    started: Instant,
    objects: Mutex<HashMap<String, Object>>,
    faults: Mutex<HashMap<String, (Fault, u32)>>,
    /// Bytes per second per connection, per document.
    throttle: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<Logged>>,
    stop: AtomicBool,
    /// A bearer token accepted instead of a signature.
    bearer: Mutex<Option<String>>,
}

/// The running service; stops when dropped.
pub struct Service {
    /// `http://127.0.0.1:PORT` of the endpoint.
    pub endpoint: String,
    /// `http://127.0.0.1:PORT` of the storage host.
    pub storage: String,
    state: Arc<State>,
    addrs: Vec<std::net::SocketAddr>,
}

impl Service {
    pub fn start() -> Service {
        let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
        let storage = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ea, sa) = (endpoint.local_addr().unwrap(), storage.local_addr().unwrap());
        let state = Arc::new(State {
            key: B64.decode(KEY_B64).unwrap(),
            endpoint_authority: ea.to_string(),
            started: Instant::now(),
            objects: Mutex::new(HashMap::new()),
            faults: Mutex::new(HashMap::new()),
            throttle: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            bearer: Mutex::new(None),
        });
        for (listener, name) in [(endpoint, "endpoint"), (storage, "storage")] {
            let state = state.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if state.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(&state, conn, name);
                    });
                }
            });
        }
        Service {
            endpoint: format!("http://{ea}"),
            storage: format!("http://{sa}"),
            state,
            addrs: vec![ea, sa],
        }
    }

    /// The storage host's `host:port`: trusted only when the operator says
    /// so (`RECSTITCH_TRUSTED_HOSTS`, `FetchOptions::trusted_hosts`).
    pub fn storage_authority(&self) -> String {
        self.storage.trim_start_matches("http://").to_string()
    }

    /// The connection string for this service, with `key` (base64).
    pub fn connection_string(&self, key_b64: &str) -> String {
        format!("endpoint={}/;accesskey={key_b64}", self.endpoint)
    }

    pub fn add(&self, document_id: &str, media: Media, metadata: Vec<u8>) {
        self.state
            .objects
            .lock()
            .unwrap()
            .insert(document_id.to_string(), Object { media, metadata });
    }

    /// Injects `fault` into the first `times` media requests for `document_id`.
    pub fn fault(&self, document_id: &str, fault: Fault, times: u32) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(document_id.to_string(), (fault, times));
    }

    /// Accepts `Authorization: Bearer <token>` as well as a signature.
    pub fn accept_bearer(&self, token: &str) {
        *self.state.bearer.lock().unwrap() = Some(token.to_string());
    }

    /// Limits each connection serving `document_id` to `bytes_per_sec`
    /// (a trickle: never more than that in one write).
    pub fn throttle(&self, document_id: &str, bytes_per_sec: u64) {
        self.state
            .throttle
            .lock()
            .unwrap()
            .insert(document_id.to_string(), bytes_per_sec);
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Body bytes of media sent for `document_id` so far (requests under way included).
    pub fn media_bytes_sent(&self, document_id: &str) -> u64 {
        self.log()
            .iter()
            .filter(|l| l.document_id == document_id && l.what == "media")
            .map(|l| l.body_bytes)
            .sum()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        for a in &self.addrs {
            let _ = TcpStream::connect(a);
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    /// Every header as received, in order.
    all: Vec<(String, String)>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    let mut all = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        all.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(Request {
        method,
        path,
        headers,
        all,
    })
}

/// Checks the request's signature as the service does; `Err` says why not.
fn verify(state: &State, req: &Request, listener: &str) -> Result<(), String> {
    let h = |n: &str| req.headers.get(n).map(String::as_str);
    if let (Some(token), Some(auth)) = (state.bearer.lock().unwrap().as_deref(), h("authorization")) {
        if auth == format!("Bearer {token}") {
            return Ok(());
        }
    }
    let date = h("x-ms-date").ok_or("no x-ms-date")?;
    let hash = h("x-ms-content-sha256").ok_or("no x-ms-content-sha256")?;
    if hash != B64.encode(Sha256::digest(b"")) {
        return Err("x-ms-content-sha256 is not the hash of the empty body".into());
    }
    let auth = h("authorization").ok_or("no Authorization")?;
    let sig = auth
        .strip_prefix("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=")
        .ok_or("Authorization is not the HMAC-SHA256 scheme")?;
    let host = match (listener, h("x-ms-host")) {
        ("storage", Some(x)) => x,
        ("storage", None) => return Err("a storage request without x-ms-host".into()),
        (_, Some(_)) => return Err("x-ms-host on a request to the endpoint itself".into()),
        (_, None) => h("host").ok_or("no Host")?,
    };
    if host != state.endpoint_authority {
        return Err(format!("signed for host {host}, not {}", state.endpoint_authority));
    }
    let to_sign = format!("{}\n{}\n{date};{host};{hash}", req.method, req.path);
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.key).unwrap();
    mac.update(to_sign.as_bytes());
    if B64.encode(mac.finalize().into_bytes()) != sig {
        return Err("the signature does not match".into());
    }
    Ok(())
}

fn route(listener: &str, method: &str, path: &str) -> Option<(String, &'static str)> {
    let p: Vec<&str> = path.split('?').next()?.trim_start_matches('/').split('/').collect();
    match (listener, method, p.as_slice()) {
        ("endpoint", "GET", ["recording", "download", doc]) => Some((doc.to_string(), "media")),
        ("endpoint", "GET", ["recording", "download", doc, "metadata"]) => Some((doc.to_string(), "metadata")),
        ("storage", "GET", ["v1", "objects", doc, "content", "video" | "audio"]) => Some((doc.to_string(), "media")),
        ("storage", "GET", ["v1", "objects", doc, "content", "acsmetadata"]) => Some((doc.to_string(), "metadata")),
        ("storage", "DELETE", ["v1", "objects", doc]) => Some((doc.to_string(), "delete")),
        _ => None,
    }
}

fn serve(state: &State, conn: TcpStream, listener: &'static str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some(req) = read_request(&mut reader) else {
        return Ok(());
    };
    let mut out = conn;
    let (doc, what) = route(listener, &req.method, &req.path).unwrap_or_default();
    let idx = {
        let mut log = state.log.lock().unwrap();
        log.push(Logged {
            method: req.method.clone(),
            path: req.path.clone(),
            document_id: doc.clone(),
            what: if what.is_empty() { "unknown" } else { what },
            range: req.headers.get("range").cloned(),
            status: 0,
            body_bytes: 0,
            at: state.started.elapsed(),
            finished: None,
            listener,
            x_ms_host: req.headers.get("x-ms-host").cloned(),
            headers: req.all.clone(),
        });
        log.len() - 1
    };
    let set = |status: u16, bytes: Option<u64>| {
        let mut log = state.log.lock().unwrap();
        if status != 0 {
            log[idx].status = status;
        }
        if let Some(b) = bytes {
            log[idx].body_bytes += b;
        }
    };
    if let Err(why) = verify(state, &req, listener) {
        set(401, None);
        let body = format!("{{\"error\":{{\"code\":\"Unauthorized\",\"message\":\"{why}\"}}}}");
        return respond(&mut out, 401, &[("content-type", "application/json")], body.as_bytes());
    }
    let object = {
        let objects = state.objects.lock().unwrap();
        objects.get(&doc).map(|o| (o.media.clone(), o.metadata.clone()))
    };
    let Some((media, metadata)) = object.filter(|_| !what.is_empty()) else {
        set(404, None);
        return respond(
            &mut out,
            404,
            &[("content-type", "application/json")],
            br#"{"error":{"code":"NotFound"}}"#,
        );
    };
    match what {
        "delete" => {
            state.objects.lock().unwrap().remove(&doc);
            set(200, None);
            return respond(&mut out, 200, &[], b"");
        }
        "metadata" => {
            set(200, Some(metadata.len() as u64));
            return respond(&mut out, 200, &[("content-type", "application/json")], &metadata);
        }
        _ => {}
    }
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        match faults.get_mut(&doc) {
            Some((f, n)) if *n > 0 => {
                *n -= 1;
                Some(f.clone())
            }
            _ => None,
        }
    };
    let len = media.len();
    match &fault {
        Some(Fault::Unavailable { retry_after }) => {
            set(503, None);
            let ra = retry_after.to_string();
            return respond(
                &mut out,
                503,
                &[("retry-after", ra.as_str()), ("content-type", "application/json")],
                br#"{"error":{"code":"ServiceUnavailable"}}"#,
            );
        }
        Some(Fault::TooMany) => {
            set(429, None);
            return respond(
                &mut out,
                429,
                &[("content-type", "application/json")],
                br#"{"error":{"code":"TooManyRequests"}}"#,
            );
        }
        Some(Fault::Forbidden) => {
            set(403, None);
            return respond(
                &mut out,
                403,
                &[("content-type", "application/json")],
                br#"{"error":{"code":"Forbidden"}}"#,
            );
        }
        Some(Fault::Html) => {
            let page = b"<!DOCTYPE html>\n<html><head><title>Sign in to your account</title></head><body>Sign in</body></html>";
            set(200, Some(page.len() as u64));
            return respond(&mut out, 200, &[("content-type", "text/html; charset=utf-8")], page);
        }
        Some(Fault::JsonError) => {
            let body = br#"{"error":{"code":"InternalError","message":"The recording is not available."}}"#;
            set(200, Some(body.len() as u64));
            return respond(&mut out, 200, &[("content-type", "application/json")], body);
        }
        Some(Fault::Empty) => {
            set(200, None);
            return respond(&mut out, 200, &[("content-type", "video/mp4")], b"");
        }
        Some(Fault::Redirect { to }) => {
            set(307, None);
            return respond(&mut out, 307, &[("location", to.as_str())], b"");
        }
        _ => {}
    }
    // The range asked for.
    let (status, start, end) = match req.headers.get("range").and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
            let a: u64 = a.parse().unwrap_or(u64::MAX);
            let b: u64 = b.parse().unwrap_or(len.saturating_sub(1)).min(len.saturating_sub(1));
            if a >= len || b < a {
                set(416, None);
                let cr = format!("bytes */{len}");
                return respond(&mut out, 416, &[("content-range", cr.as_str())], b"");
            }
            (206, a, b + 1)
        }
        None => (200, 0, len),
    };
    let count = end - start;
    let (send, advertised, stall) = match &fault {
        Some(Fault::Drop { after }) => ((*after).min(count), count, None),
        Some(Fault::Stall { after, secs }) => ((*after).min(count), count, Some(*secs)),
        Some(Fault::WrongLength { short }) => {
            let n = count.saturating_sub(*short);
            (n, n, None)
        }
        _ => (count, count, None),
    };
    let mut head = format!("HTTP/1.1 {status} {}\r\ncontent-type: video/mp4\r\ncontent-length: {advertised}\r\naccept-ranges: bytes\r\netag: \"v1-{doc}\"\r\nconnection: close\r\n", reason(status));
    if status == 206 {
        head.push_str(&format!("content-range: bytes {start}-{}/{len}\r\n", end - 1));
    }
    head.push_str("\r\n");
    set(status, None);
    out.write_all(head.as_bytes())?;
    let throttle = state.throttle.lock().unwrap().get(&doc).copied();
    let began = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < send {
        if state.stop.load(Ordering::SeqCst) {
            break;
        }
        let most = throttle.map_or(buf.len(), |rate| (rate.max(1) as usize).min(buf.len()));
        let n = ((send - sent) as usize).min(most);
        media.read_at(start + sent, &mut buf[..n]);
        if out.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        set(0, Some(n as u64));
        if let Some(rate) = throttle {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = out.flush();
    state.log.lock().unwrap()[idx].finished = Some(state.started.elapsed());
    if let Some(secs) = stall {
        std::thread::sleep(Duration::from_secs(secs));
    }
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        307 => "Temporary Redirect",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn respond(out: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

/// A request the [`Recorder`] received: its request line and its headers.
pub type Recorded = (String, Vec<(String, String)>);

/// A server that records every request it receives, every header, and
/// answers each with 404: where a location or a redirect on an untrusted
/// host points, to prove that nothing (signed or not) reaches it.
pub struct Recorder {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Recorder {
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let Ok(clone) = conn.try_clone() else { continue };
                let mut reader = BufReader::new(clone);
                if let Some(req) = read_request(&mut reader) {
                    r.lock()
                        .unwrap()
                        .push((format!("{} {}", req.method, req.path), req.all));
                    let mut out = conn;
                    let _ = respond(&mut out, 404, &[], b"");
                }
            }
        });
        Recorder {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
        }
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received: its request line and its headers.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A chunk as the tests serve it.
pub struct ServedChunk {
    pub document_id: String,
    pub index: u32,
    pub end_reason: &'static str,
}

impl ServedChunk {
    /// Chunk `index` of a recording of `count` chunks: the last one ends
    /// the session, the others reached the size limit.
    pub fn nth(document_id: String, index: usize, count: usize) -> ServedChunk {
        ServedChunk {
            document_id,
            index: index as u32,
            end_reason: if index + 1 == count {
                "SessionEnded"
            } else {
                "ChunkMaximumSizeExceeded"
            },
        }
    }
}

/// A completion event (Event Grid schema) for `chunks` of a recording.
/// `locations`: `Some(storage base)` to give each chunk's locations on the
/// storage host, `None` for the earliest schema (the endpoint's paths).
pub fn event(
    id: &str,
    call: &str,
    recording: &str,
    chunks: &[ServedChunk],
    locations: Option<&str>,
    event_time: &str,
) -> serde_json::Value {
    let list: Vec<serde_json::Value> = chunks
        .iter()
        .map(|c| {
            let mut v = serde_json::json!({
                "documentId": c.document_id,
                "index": c.index,
                "endReason": c.end_reason,
            });
            if let Some(base) = locations {
                v["contentLocation"] = format!("{base}/v1/objects/{}/content/video", c.document_id).into();
                v["metadataLocation"] = format!("{base}/v1/objects/{}/content/acsmetadata", c.document_id).into();
                v["deleteLocation"] = format!("{base}/v1/objects/{}", c.document_id).into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "id": id,
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.communication/communicationservices/test",
        "subject": format!("/recording/call/{call}/serverCallId/c2VydmVy/recordingId/{recording}"),
        "data": {
            "recordingStorageInfo": { "recordingChunks": list },
            "recordingStartTime": "2024-05-14T09:30:00.1234567Z",
            "recordingDurationMs": 9300,
            "sessionEndReason": "CallEnded"
        },
        "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": event_time
    })
}

/// A minimal chunk metadata document.
pub fn metadata(call: &str, document_id: &str, index: u32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "resourceId": "29bd5ea9-e0fc-4d00-8f6f-339b1f0ee2e2",
        "callId": call,
        "chunkDocumentId": document_id,
        "chunkIndex": index,
        "chunkStartTime": "2024-05-14T09:30:00.1234567Z",
        "chunkDuration": 3000.0,
        "recordingInfo": {
            "contentType": "mixed", "channelType": "audioVideo", "format": "mp4",
            "audioConfiguration": { "sampleRate": "16000", "bitRate": 128000, "channels": 1 },
            "videoConfiguration": { "longerSideLength": 1920, "shorterSideLength": 1080, "framerate": 8, "bitRate": 1000000 }
        },
        "participants": []
    }))
    .unwrap()
}

/// Now as an event time (RFC 3339).
pub fn now_rfc3339() -> String {
    time_rfc3339(std::time::SystemTime::now())
}

/// `t` as an event time (RFC 3339).
pub fn time_rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    recstitch::WallClock(d.as_nanos() as i64).to_rfc3339()
}

/// Reads a whole test file (for comparisons).
pub fn read(path: &std::path::Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}
