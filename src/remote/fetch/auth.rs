//! Where the service is and how requests to it are signed.
//!
//! Credentials come from the environment only (never a command-line
//! argument, which other users of the machine can read), and never leave
//! this module: the access key is not printed, not in an error, not in
//! `Debug` output.
//!
//! The access-key scheme is the service's documented HMAC-SHA256 one:
//!
//! ```text
//! x-ms-date:            Tue, 14 May 2024 09:30:00 GMT          (RFC 1123, GMT)
//! x-ms-content-sha256:  base64(SHA-256(body))                  (the empty body for GET and DELETE)
//! string to sign:       "<METHOD>\n<path and query>\n<x-ms-date>;<host>;<x-ms-content-sha256>"
//! Authorization:        HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64(HMAC-SHA256(key, string to sign))>
//! ```
//!
//! `key` is the base64-decoded access key. `host` is the authority of the
//! URL (`host`, or `host:port` when the port is not the scheme's default,
//! as browsers' `URL.host` and .NET's `Uri.Authority` give it). A location on
//! another host than the endpoint (the storage host of a `contentLocation`)
//! is signed with the endpoint's host, which is also sent as `x-ms-host`, as
//! the service's own SDKs do; the path and query are the location's.

use std::fmt;
use std::time::SystemTime;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The environment variable holding the connection string
/// (`endpoint=https://<resource>.communication.azure.com/;accesskey=<base64>`).
pub const CONNECTION_STRING_VAR: &str = "RECSTITCH_CONNECTION_STRING";
/// The environment variable holding a bearer token (instead of a connection string).
pub const ACCESS_TOKEN_VAR: &str = "RECSTITCH_ACCESS_TOKEN";
/// The environment variable holding the endpoint when a bearer token is used.
pub const ENDPOINT_VAR: &str = "RECSTITCH_ENDPOINT";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The scheme of a [`Location`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` (a local test server, a proxy inside a trusted network).
    Http,
    /// `https://`.
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Why a URL is not a [`Location`]. The messages never repeat the URL (its
/// query may hold a signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Another scheme than `http://` or `https://`.
    #[error("not an http:// or https:// URL")]
    NotHttp,
    /// Spaces or control characters in the URL.
    #[error("the URL holds spaces or control characters")]
    Whitespace,
    /// `user:password@` before the host.
    #[error("user information in a URL is not accepted")]
    UserInfo,
    /// `[` without its `]`.
    #[error("an IPv6 host without its closing bracket")]
    UnclosedIpv6,
    /// Something other than `:port` after `[v6]`.
    #[error("junk after an IPv6 host")]
    AfterIpv6,
    /// An empty host, or one with characters a host name cannot hold.
    #[error("no valid host name")]
    Host,
    /// A port that is not a number from 0 to 65535.
    #[error("the port is not a number from 0 to 65535")]
    Port,
}

/// Why a connection string does not give [`Credentials`]. The messages
/// never repeat the string or the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// A part that is not `name=value`.
    #[error("expected name=value pairs separated by `;`")]
    NotPairs,
    /// No `endpoint=`.
    #[error("no `endpoint=` in the connection string")]
    NoEndpoint,
    /// No `accesskey=`.
    #[error("no `accesskey=` in the connection string")]
    NoAccessKey,
    /// The endpoint is not a usable URL.
    #[error("the endpoint: {0}")]
    Endpoint(#[source] UrlError),
    /// The access key is not base64.
    #[error("the access key is not valid base64")]
    KeyNotBase64,
    /// The access key decodes to nothing.
    #[error("the access key is empty")]
    EmptyKey,
}

/// An `http(s)` URL, split into what signing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    scheme: Scheme,
    /// The host, lower case (an IPv6 address keeps its brackets).
    host: String,
    /// The port written in the URL, if any.
    port: Option<u16>,
    /// The path and query (`/a/b?c=d`), never empty; no fragment.
    path_and_query: String,
}

impl Location {
    /// Parses an absolute `http://` or `https://` URL. User information
    /// (`user:password@`) is refused, as are spaces and control characters.
    pub fn parse(s: &str) -> std::result::Result<Location, UrlError> {
        let s = s.trim();
        let (scheme, rest) = if let Some(r) = strip_prefix_ignore_case(s, "https://") {
            (Scheme::Https, r)
        } else if let Some(r) = strip_prefix_ignore_case(s, "http://") {
            (Scheme::Http, r)
        } else {
            return Err(UrlError::NotHttp);
        };
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Whitespace);
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let close = v6.find(']').ok_or(UrlError::UnclosedIpv6)?;
            let after = &v6[close + 1..];
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::AfterIpv6)?),
            };
            (format!("[{}]", &v6[..close]), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'));
        if !host_ok {
            return Err(UrlError::Host);
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| UrlError::Port)?),
        };
        let tail = tail.split('#').next().unwrap_or_default();
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(Location {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `host`, or `host:port` when the port is not the scheme's default
    /// (`127.0.0.1:8080`; `https://h:443/` gives `h`): the host that is signed.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) if p != self.scheme.default_port() => format!("{}:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The host, lower case (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port the connection goes to: the URL's, else the scheme's default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The path and query, as sent and signed.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The whole URL.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.authority(), self.path_and_query)
    }

    /// This location (an endpoint) with `segments` appended to its path,
    /// each percent-encoded: `{endpoint}/recording/download/{documentId}`.
    pub fn join(&self, segments: &[&str]) -> Location {
        let base = self
            .path_and_query
            .split('?')
            .next()
            .unwrap_or("/")
            .trim_end_matches('/');
        let mut path = base.to_string();
        for s in segments {
            path.push('/');
            path.push_str(&percent_encode(s));
        }
        Location {
            path_and_query: path,
            ..self.clone()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Decodes `%XX` escapes (an invalid escape is kept as it is; bytes that
/// are not UTF-8 are replaced).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How requests are authorised. `Debug` shows the kind and the endpoint,
/// never the key or the token.
#[derive(Clone)]
pub struct Credentials {
    endpoint: Option<Location>,
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    /// The base64-decoded access key.
    AccessKey(Vec<u8>),
    /// A bearer token.
    Token(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.secret {
            Secret::AccessKey(_) => "access key",
            Secret::Token(_) => "bearer token",
        };
        f.debug_struct("Credentials")
            .field("kind", &kind)
            .field("endpoint", &self.endpoint.as_ref().map(Location::url))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// From the environment: [`CONNECTION_STRING_VAR`], else
    /// [`ACCESS_TOKEN_VAR`] (with [`ENDPOINT_VAR`] for events that carry
    /// no download locations). A usage error naming the variables when
    /// neither is set.
    pub fn from_env() -> Result<Credentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(cs) = var(CONNECTION_STRING_VAR) {
            return Credentials::from_connection_string(&cs)
                .map_err(|e| Error::Usage(format!("{CONNECTION_STRING_VAR}: {e}")));
        }
        if let Some(token) = var(ACCESS_TOKEN_VAR) {
            let endpoint = var(ENDPOINT_VAR);
            return Credentials::from_token(&token, endpoint.as_deref())
                .map_err(|e| Error::Usage(format!("{ENDPOINT_VAR}: {e}")));
        }
        Err(Error::Usage(format!(
            "no credentials: set {CONNECTION_STRING_VAR} (endpoint=https://…/;accesskey=…) or {ACCESS_TOKEN_VAR} (and {ENDPOINT_VAR}) in the environment"
        )))
    }

    /// From a connection string `endpoint=https://…/;accesskey=<base64>`
    /// (keys in any case, in any order). The error never repeats the string.
    pub fn from_connection_string(s: &str) -> std::result::Result<Credentials, CredentialsError> {
        let mut endpoint = None;
        let mut key = None;
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(CredentialsError::NotPairs);
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.trim()),
                "accesskey" => key = Some(value.trim()),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or(CredentialsError::NoEndpoint)?;
        let key = key.ok_or(CredentialsError::NoAccessKey)?;
        let endpoint = Location::parse(endpoint).map_err(CredentialsError::Endpoint)?;
        let key = B64.decode(key).map_err(|_| CredentialsError::KeyNotBase64)?;
        if key.is_empty() {
            return Err(CredentialsError::EmptyKey);
        }
        Ok(Credentials {
            endpoint: Some(endpoint),
            secret: Secret::AccessKey(key),
        })
    }

    /// A bearer token, with the endpoint for events without download
    /// locations; `Err` when the endpoint is not a usable URL.
    pub fn from_token(token: &str, endpoint: Option<&str>) -> std::result::Result<Credentials, UrlError> {
        let endpoint = endpoint.map(Location::parse).transpose()?;
        Ok(Credentials {
            endpoint,
            secret: Secret::Token(token.trim().to_string()),
        })
    }

    /// The endpoint, when known.
    pub fn endpoint(&self) -> Option<&Location> {
        self.endpoint.as_ref()
    }

    /// Whether these are a bearer token (sent as it is: it goes to the
    /// endpoint's host only, unless the operator trusts another host).
    pub fn is_bearer_token(&self) -> bool {
        matches!(self.secret, Secret::Token(_))
    }

    /// The headers that authorise `method` on `location` at `now` (for a
    /// request without a body).
    pub(crate) fn headers(&self, method: &str, location: &Location, now: SystemTime) -> Vec<(&'static str, String)> {
        match &self.secret {
            Secret::Token(token) => vec![("authorization", format!("Bearer {token}"))],
            Secret::AccessKey(key) => {
                let date = http_date(now);
                let content_hash = B64.encode(Sha256::digest(b""));
                let target = location.authority();
                let signed_host = self
                    .endpoint
                    .as_ref()
                    .map_or_else(|| target.clone(), Location::authority);
                let signature = sign(
                    key,
                    method,
                    location.path_and_query(),
                    &date,
                    &signed_host,
                    &content_hash,
                );
                let mut headers = vec![
                    ("x-ms-date", date),
                    ("x-ms-content-sha256", content_hash),
                    (
                        "authorization",
                        format!("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"),
                    ),
                ];
                if signed_host != target {
                    headers.push(("x-ms-host", signed_host));
                }
                headers
            }
        }
    }
}

/// The signature: base64 of HMAC-SHA256 with `key` over
/// `"METHOD\n<path and query>\n<date>;<host>;<content hash>"`.
pub fn sign(key: &[u8], method: &str, path_and_query: &str, date: &str, host: &str, content_hash: &str) -> String {
    let string_to_sign = format!("{method}\n{path_and_query}\n{date};{host};{content_hash}");
    // HMAC takes a key of any length; the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(string_to_sign.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// `Tue, 14 May 2024 09:30:00 GMT`.
fn rfc1123() -> &'static [time::format_description::BorrowedFormatItem<'static>] {
    static FORMAT: std::sync::OnceLock<Vec<time::format_description::BorrowedFormatItem<'static>>> =
        std::sync::OnceLock::new();
    FORMAT.get_or_init(|| {
        time::format_description::parse_borrowed::<2>(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
        )
        .unwrap_or_default()
    })
}

/// Formats `t` as an RFC 1123 date in GMT (`Tue, 14 May 2024 09:30:00 GMT`).
pub fn http_date(t: SystemTime) -> String {
    time::OffsetDateTime::from(t).format(rfc1123()).unwrap_or_default()
}

/// Parses an RFC 1123 date in GMT (the form `Retry-After` may take).
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = time::PrimitiveDateTime::parse(s.trim(), rfc1123()).ok()?;
    Some(t.assume_utc().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access key `secret-key-for-tests`, base64.
    const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";

    #[test]
    fn the_signature_matches_an_independent_computation() {
        // Computed with Python's hmac and hashlib over the documented string to sign.
        let content_hash = B64.encode(Sha256::digest(b""));
        assert_eq!(content_hash, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        let sig = sign(
            b"secret-key-for-tests",
            "GET",
            "/recording/download/0-abc?x=1",
            "Tue, 14 May 2024 09:30:00 GMT",
            "127.0.0.1:8080",
            &content_hash,
        );
        assert_eq!(sig, "Jlh59P37iuh0YcWxNIqJKgDVoEL60SA5p7rQ5jg3H50=");
    }

    #[test]
    fn headers_sign_the_endpoint_host_and_name_it_for_another_host() {
        let creds =
            Credentials::from_connection_string(&format!("endpoint=http://127.0.0.1:8080/;accesskey={KEY}")).unwrap();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_715_679_000);
        let here = Location::parse("http://127.0.0.1:8080/recording/download/0-abc?x=1").unwrap();
        let h = creds.headers("GET", &here, at);
        let get = |name: &str| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("x-ms-date"), Some("Tue, 14 May 2024 09:30:00 GMT"));
        assert_eq!(
            get("authorization"),
            Some("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=Jlh59P37iuh0YcWxNIqJKgDVoEL60SA5p7rQ5jg3H50=")
        );
        assert_eq!(get("x-ms-host"), None);
        // The storage host: same signature input but for the path, x-ms-host sent.
        let storage = Location::parse("http://127.0.0.1:9090/recording/download/0-abc?x=1").unwrap();
        let h2 = creds.headers("GET", &storage, at);
        assert!(h2.contains(&("x-ms-host", "127.0.0.1:8080".to_string())));
        assert!(h2.contains(&h[2]), "signed with the endpoint's host");
    }

    #[test]
    fn the_signed_host_carries_the_port_only_when_it_is_not_the_default() {
        let a = |s: &str| Location::parse(s).unwrap().authority();
        assert_eq!(a("https://acs.example.com/"), "acs.example.com");
        assert_eq!(a("https://ACS.example.com:443/x"), "acs.example.com");
        assert_eq!(a("https://acs.example.com:8443/x"), "acs.example.com:8443");
        assert_eq!(a("http://127.0.0.1:80/"), "127.0.0.1");
        assert_eq!(a("http://127.0.0.1:41234"), "127.0.0.1:41234");
        assert_eq!(a("http://[::1]:8080/a"), "[::1]:8080");
        let l = Location::parse("https://h.example/v1/objects/0-x/content/video?a=b#frag").unwrap();
        assert_eq!(l.path_and_query(), "/v1/objects/0-x/content/video?a=b");
        assert_eq!(Location::parse("https://h.example").unwrap().path_and_query(), "/");
        let e = Location::parse("https://acs.example.com/").unwrap();
        assert_eq!(
            e.join(&["recording", "download", "0-eus d/1", "metadata"]).url(),
            "https://acs.example.com/recording/download/0-eus%20d%2F1/metadata"
        );
        for bad in [
            "ftp://x/",
            "https://",
            "https://user:pw@h/",
            "https://h:99999/",
            "https://h x/",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_strings_parse_and_errors_never_repeat_the_secret() {
        let c = Credentials::from_connection_string(&format!("Endpoint=https://acs.example.com/;AccessKey={KEY};"))
            .unwrap();
        assert_eq!(c.endpoint().unwrap().authority(), "acs.example.com");
        let debug = format!("{c:?}");
        assert!(!debug.contains(KEY) && !debug.contains("secret-key"), "{debug}");
        assert!(debug.contains("<redacted>"));
        let token = Credentials::from_token("tok-SECRET", None).unwrap();
        assert!(!format!("{token:?}").contains("tok-SECRET"));
        for bad in [
            "endpoint=https://acs.example.com/".to_string(),
            format!("accesskey={KEY}"),
            "endpoint=https://acs.example.com/;accesskey=not*base64!SECRETPART".to_string(),
            format!("endpoint=nonsense;accesskey={KEY}"),
            "garbage-SECRETPART".to_string(),
        ] {
            let e = Credentials::from_connection_string(&bad).unwrap_err().to_string();
            assert!(!e.contains("SECRETPART") && !e.contains(KEY), "{e}");
        }
    }

    #[test]
    fn http_dates_round_trip() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_445_412_480);
        assert_eq!(http_date(t), "Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
