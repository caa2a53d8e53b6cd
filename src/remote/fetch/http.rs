//! One signed request at a time, and what its answer means: the status
//! classes, `Retry-After`, `Content-Range`, and the waits between attempts.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use super::auth::{parse_http_date, Credentials, Location, UrlError};
use super::download::ObjectChanged;
use super::trust::{TrustedHosts, Untrusted};
use super::FetchOptions;
use crate::io::Cancel;

/// An HTTP response with its body still to be read.
pub(crate) type Response = ureq::http::Response<ureq::Body>;

/// Why an attempt did not give what was asked for.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Worth another attempt: a connection error, a timeout, 408, 429, 5xx,
    /// a body cut short, a bad body (the service raced its own write).
    Transient {
        /// What happened.
        why: String,
        /// The server's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// 401 or 403: the credentials do not open this recording.
    Auth(String),
    /// The location (or a redirect) is on a host credentials may not go
    /// to ([`TrustedHosts`]): nothing was sent.
    Untrusted(String),
    /// 416: the range asked for lies outside the object (its size, when the
    /// server said it).
    RangeNotSatisfiable(Option<u64>),
    /// The object changed under a partial download: not worth another
    /// attempt, and the partial download is of no use.
    Changed(ObjectChanged),
    /// Not worth another attempt (404, another 4xx, a TLS failure, a body
    /// that contradicts what was asked).
    Fatal(String),
}

impl Failure {
    pub(crate) fn transient(why: impl Into<String>) -> Self {
        Failure::Transient {
            why: why.into(),
            retry_after: None,
        }
    }

    /// The message, for a report.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Transient { why, .. } | Failure::Auth(why) | Failure::Untrusted(why) | Failure::Fatal(why) => {
                why.clone()
            }
            Failure::Changed(change) => change.to_string(),
            Failure::RangeNotSatisfiable(size) => format!(
                "the server refused the range asked for (416){}",
                size.map(|s| format!("; the object has {s} bytes")).unwrap_or_default()
            ),
        }
    }
}

/// The HTTP client: one agent (connection pool) shared by every transfer.
pub(crate) struct Client {
    agent: ureq::Agent,
    credentials: Credentials,
    trusted: TrustedHosts,
}

/// Redirects followed for one request (each to a trusted host, signed again).
const MAX_REDIRECTS: usize = 5;

impl Client {
    pub(crate) fn new(credentials: Credentials, options: &FetchOptions) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_send_request(Some(options.response_timeout))
            .timeout_recv_response(Some(options.response_timeout))
            .timeout_per_read(Some(options.stall_timeout))
            // Redirects are followed here, not by ureq: each target is checked
            // against the trusted hosts and the request signed for it again.
            .max_redirects(0)
            .user_agent(concat!("recstitch/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: ureq::Agent::new_with_config(config),
            credentials,
            trusted: options.trusted_hosts.clone(),
        }
    }

    /// Whether credentials may go to `location` ([`TrustedHosts::check`]).
    pub(crate) fn check_trusted(&self, location: &Location) -> Result<(), Untrusted> {
        self.trusted.check(
            location,
            self.credentials.endpoint(),
            self.credentials.is_bearer_token(),
        )
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Sends a signed `GET` (with `Range: bytes=start-[end]` when given) or
    /// `DELETE`, only to a trusted host ([`Failure::Untrusted`] otherwise,
    /// nothing sent). A `GET` follows up to [`MAX_REDIRECTS`] redirects, each
    /// to a trusted host and signed for it; a `DELETE` follows none. A
    /// response of another class than 2xx becomes a [`Failure`].
    pub(crate) fn send(
        &self,
        method: Method,
        location: &Location,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Response, Failure> {
        let mut target = location.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.check_trusted(&target)
                .map_err(|e| Failure::Untrusted(e.to_string()))?;
            let response = self.send_once(method, &target, range)?;
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return check_status(response).map_err(|f| f.at(method, &target));
            }
            if method == Method::Delete {
                return Err(Failure::Fatal(format!(
                    "the service answered the DELETE with a redirect (HTTP {status}); not followed"
                )));
            }
            let next = header(&response, "location")
                .ok_or_else(|| Failure::Fatal(format!("a redirect (HTTP {status}) without a Location")))?;
            target = redirect_target(&target, &next)
                .map_err(|e| Failure::Fatal(format!("a redirect to `{}`: {e}", excerpt(next.trim().as_bytes()))))?;
            self.check_trusted(&target)
                .map_err(|e| Failure::Untrusted(format!("the service redirected to {}: {e}", target.authority())))?;
        }
        Err(Failure::Fatal(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// One request, signed for `location`, without following redirects.
    fn send_once(
        &self,
        method: Method,
        location: &Location,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<Response, Failure> {
        let url = location.url();
        let headers = self.credentials.headers(method.as_str(), location, SystemTime::now());
        let result = match method {
            Method::Get => {
                let mut r = self.agent.get(&url);
                for (name, value) in &headers {
                    r = r.header(*name, value);
                }
                if let Some((start, end)) = range {
                    let end = end.map(|e| e.to_string()).unwrap_or_default();
                    r = r.header("range", format!("bytes={start}-{end}"));
                }
                r.call()
            }
            Method::Delete => {
                let mut r = self.agent.delete(&url);
                for (name, value) in &headers {
                    r = r.header(*name, value);
                }
                r.call()
            }
        };
        result.map_err(|e| classify_error(&e).at(method, location))
    }
}

impl Failure {
    /// The failure, its message naming where the request went: the method,
    /// `host:port` and path, never the query (it may hold a secret).
    fn at(self, method: Method, location: &Location) -> Failure {
        let authority = location.authority();
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let port = match (has_port, location.scheme()) {
            (true, _) => String::new(),
            (false, super::auth::Scheme::Https) => ":443".into(),
            (false, super::auth::Scheme::Http) => ":80".into(),
        };
        let path = location.path_and_query().split('?').next().unwrap_or("/");
        let place = |why: String| format!("{why} ({} {authority}{port}{path})", method.as_str());
        match self {
            Failure::Transient { why, retry_after } => Failure::Transient {
                why: place(why),
                retry_after,
            },
            Failure::Auth(why) => Failure::Auth(place(why)),
            Failure::Fatal(why) => Failure::Fatal(place(why)),
            range @ Failure::RangeNotSatisfiable(_) => range,
            changed @ Failure::Changed(_) => changed,
            // Names its host already.
            untrusted @ Failure::Untrusted(_) => untrusted,
        }
    }
}

/// Where a redirect's `Location` points from `from`: an absolute `http(s)`
/// URL, or an absolute path on the same host.
fn redirect_target(from: &Location, to: &str) -> Result<Location, UrlError> {
    let to = to.trim();
    if to.starts_with('/') && !to.starts_with("//") {
        let base = format!(
            "{}://{}",
            if from.scheme() == super::auth::Scheme::Https {
                "https"
            } else {
                "http"
            },
            from.authority()
        );
        return Location::parse(&format!("{base}{to}"));
    }
    Location::parse(to)
}

/// The methods used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Delete => "DELETE",
        }
    }
}

fn classify_error(e: &ureq::Error) -> Failure {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            Failure::Fatal(format!("request failed: {e}"))
        }
        ureq::Error::Timeout(t) => Failure::transient(format!("timed out ({t})")),
        other => Failure::transient(format!("request failed: {other}")),
    }
}

/// 2xx passes; every other status becomes its [`Failure`], with what the
/// body said (a short, printable excerpt).
fn check_status(mut response: Response) -> Result<Response, Failure> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let retry_after = header(&response, "retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
    let range = header(&response, "content-range");
    let said = excerpt_of(&mut response);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    Err(match status {
        401 | 403 => Failure::Auth(format!("authentication failed (HTTP {status}){said}")),
        408 | 429 | 500..=599 => Failure::Transient {
            why: format!("HTTP {status}{said}"),
            retry_after,
        },
        404 | 410 => Failure::Fatal(format!(
            "not found (HTTP {status}){said}: the service keeps recordings for a short time only (24 hours)"
        )),
        416 => Failure::RangeNotSatisfiable(range.as_deref().and_then(parse_content_range).and_then(|r| r.total)),
        _ => Failure::Fatal(format!("HTTP {status}{said}")),
    })
}

/// A response header as text.
pub(crate) fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads at most 4 KiB of the body and returns a printable excerpt of it.
pub(crate) fn excerpt_of(response: &mut Response) -> String {
    let mut buf = Vec::with_capacity(512);
    let _ = response.body_mut().as_reader().take(4096).read_to_end(&mut buf);
    excerpt(&buf)
}

/// The first 160 characters of `bytes`, printable, on one line.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect();
    if text.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    parse_http_date(v).map(|t| t.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A parsed `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First and last byte, inclusive; `None` for `*`.
    pub range: Option<(u64, u64)>,
    /// The whole object's size; `None` for `*`.
    pub total: Option<u64>,
}

pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
            if b < a || total.is_some_and(|t| b >= t) {
                return None;
            }
            Some((a, b))
        }
    };
    Some(ContentRange { range, total })
}

/// A random number (for jitter) without a random-number crate: std's
/// hasher keys are random per instance.
fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// The attempts of one transfer and the waits between them: exponential
/// backoff with jitter, at least `Retry-After` (capped).
pub(crate) struct Attempts<'a> {
    options: &'a FetchOptions,
    /// Consecutive failed attempts since the last progress.
    failed: u32,
    /// Retries made in all (for the report).
    pub retries: u32,
}

impl<'a> Attempts<'a> {
    pub(crate) fn new(options: &'a FetchOptions) -> Self {
        Attempts {
            options,
            failed: 0,
            retries: 0,
        }
    }

    /// An attempt made progress: the failures before it no longer count
    /// against the retry budget.
    pub(crate) fn progressed(&mut self) {
        self.failed = 0;
    }

    /// After a transient failure: how long to wait before the next attempt,
    /// or `None` when the retries are used up.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.failed >= self.options.retries {
            return None;
        }
        let exp = self
            .options
            .backoff
            .saturating_mul(1u32.checked_shl(self.failed.min(20)).unwrap_or(u32::MAX))
            .min(self.options.max_backoff);
        // Equal jitter: half fixed, half random.
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(if nanos == 0 { 0 } else { random_u64() % nanos });
        let mut delay = half.saturating_add(jitter);
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(self.options.max_retry_after));
        }
        self.failed = self.failed.saturating_add(1);
        self.retries = self.retries.saturating_add(1);
        Some(delay)
    }
}

/// Sleeps for `d`, waking early when cancelled or `abort` says so.
pub(crate) fn sleep(d: Duration, cancel: &Cancel, abort: &dyn Fn() -> bool) {
    let until = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= until || cancel.is_cancelled() || abort() {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_names_where_it_went_without_the_query() {
        // A port nothing listens on: taken from the system, then freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let credentials = Credentials::from_token("t", Some(&format!("http://127.0.0.1:{port}/"))).unwrap();
        let client = Client::new(credentials, &FetchOptions::default());
        let location = Location::parse(&format!("http://127.0.0.1:{port}/recording/x?sig=secret")).unwrap();
        let why = client.send(Method::Get, &location, None).unwrap_err().message();
        assert!(why.ends_with(&format!("(GET 127.0.0.1:{port}/recording/x)")), "{why}");
        assert!(!why.contains("secret"), "{why}");
        let https = Location::parse("https://example.invalid/a?b=c").unwrap();
        let why = Failure::Fatal("HTTP 400".into()).at(Method::Delete, &https).message();
        assert_eq!(why, "HTTP 400 (DELETE example.invalid:443/a)");
    }

    #[test]
    fn content_ranges() {
        let r = parse_content_range("bytes 0-99/1000").unwrap();
        assert_eq!(r.range, Some((0, 99)));
        assert_eq!(r.total, Some(1000));
        assert_eq!(parse_content_range("bytes */1000").unwrap().total, Some(1000));
        assert_eq!(parse_content_range("bytes 5-9/*").unwrap().total, None);
        for bad in [
            "bytes 9-5/10",
            "bytes 0-10/10",
            "bytes 0-x/10",
            "items 0-1/2",
            "bytes 0-1",
            "bytes 0-1/99999999999999999999999",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_jitters_honours_retry_after_and_ends() {
        let options = FetchOptions {
            retries: 4,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(2),
            ..FetchOptions::default()
        };
        let mut a = Attempts::new(&options);
        let d: Vec<Duration> = (0..4).map(|_| a.next_delay(None).unwrap()).collect();
        for (d, full) in d.iter().zip([100u64, 200, 400, 400]) {
            assert!(
                *d >= Duration::from_millis(full / 2) && *d <= Duration::from_millis(full),
                "{d:?} for {full}"
            );
        }
        assert_eq!(a.next_delay(None), None, "the retries are used up");
        a.progressed();
        assert!(a.next_delay(Some(Duration::from_secs(1))).unwrap() >= Duration::from_secs(1));
        assert_eq!(
            a.next_delay(Some(Duration::from_secs(3600))).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(a.retries, 6);
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(
            excerpt(b"<html>\n  <body>\x07Sign in</body>"),
            "<html> <body>Sign in</body>"
        );
        assert_eq!(excerpt(&[b'a'; 500]).chars().count(), 161);
    }
}
