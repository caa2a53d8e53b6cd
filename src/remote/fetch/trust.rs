//! Where credentials may go.
//!
//! Download locations come from completion events, and events come from
//! outside: a location on any other host would receive the signed request
//! (a signature the endpoint accepts for that path within the date window)
//! or the bearer token itself. So every request is checked against
//! [`TrustedHosts`] before anything is sent, and a redirect is followed
//! only to a trusted host, signed again for it:
//!
//! - the endpoint's own host (host and port);
//! - with an access key, the service's storage hosts: by default the
//!   domains the service's SDKs accept for recording URLs
//!   ([`SERVICE_STORAGE_HOSTS`]);
//! - hosts the operator names in [`TRUSTED_HOSTS_VAR`] (comma-separated
//!   `host`, `host:port` or `*.suffix`): the only hosts besides the
//!   endpoint's that a bearer token goes to;
//!
//! and only over `https`, except plain `http` to a loopback address
//! (`127.0.0.0/8`, `[::1]`, `localhost`: a test server on the same machine).

use std::fmt;

use super::auth::{Location, Scheme};
use crate::error::{Error, Result};

/// The environment variable naming further trusted hosts
/// (`host`, `host:port` or `*.suffix`, comma-separated).
pub const TRUSTED_HOSTS_VAR: &str = "RECSTITCH_TRUSTED_HOSTS";

/// The storage domains the service's SDKs accept for recording locations.
pub const SERVICE_STORAGE_HOSTS: [&str; 3] = [
    "*.asm.skype.com",
    "*.asyncgw.teams.microsoft.com",
    "*.ams.gov.teams.microsoft.us",
];

/// Why an entry of a host list is not a [`HostPattern`]; `pattern` is the
/// entry, trimmed and in lower case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostPatternError {
    /// `*.` not followed by a domain of two labels or more, or with a port.
    #[error("`{pattern}`: a wildcard is `*.` and a domain of at least two labels (`*.example.com`), without a port")]
    Wildcard {
        /// The entry.
        pattern: String,
    },
    /// `[` without its `]`.
    #[error("`{pattern}`: an IPv6 host without `]`")]
    UnclosedIpv6 {
        /// The entry.
        pattern: String,
    },
    /// Not a host name.
    #[error("`{pattern}` is not a host name, host:port or *.suffix")]
    NotAHost {
        /// The entry.
        pattern: String,
    },
    /// A port that is not a number from 0 to 65535.
    #[error("`{pattern}`: the port is not a number from 0 to 65535")]
    Port {
        /// The entry.
        pattern: String,
    },
}

/// Why credentials may not go to a location ([`TrustedHosts::check`]):
/// nothing was sent. The messages name the host and what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// Plain `http` to a host that is not a loopback address.
    #[error("refused to send credentials to {authority} over plain http (only https, or http to a loopback address): nothing was sent")]
    PlainHttp {
        /// The location's `host[:port]`.
        authority: String,
    },
    /// A host that is neither the endpoint's, nor the operator's, nor
    /// (with an access key) one of the service's storage hosts.
    #[error(
        "host {authority} is not trusted: {}; nothing was sent there. If {authority} is yours, add it to {TRUSTED_HOSTS_VAR} (comma-separated host, host:port or *.suffix)",
        allowed(.endpoint.as_deref(), .storage.as_deref())
    )]
    Host {
        /// The location's `host[:port]`.
        authority: String,
        /// The endpoint's `host[:port]`, when known.
        endpoint: Option<String>,
        /// The service's storage hosts an access key may go to; `None` for
        /// a bearer token, which goes to none of them.
        storage: Option<Vec<HostPattern>>,
    },
}

/// Where credentials may go, as [`Untrusted::Host`] says it.
fn allowed(endpoint: Option<&str>, storage: Option<&[HostPattern]>) -> String {
    let endpoint = endpoint.unwrap_or("none known");
    match storage {
        None => format!("a bearer token goes only to the endpoint's host ({endpoint})"),
        Some(storage) => {
            let storage: Vec<String> = storage.iter().map(ToString::to_string).collect();
            format!(
                "credentials go only to the endpoint's host ({endpoint}) and the service's storage hosts ({})",
                storage.join(", ")
            )
        }
    }
}

/// One trusted host: `host` (on the scheme's default port), `host:port`, or
/// `*.suffix` (any host under the suffix, on the default port; not the
/// suffix itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host (lower case); on this port, else the default one.
    Exact {
        /// The host.
        host: String,
        /// The port, when given.
        port: Option<u16>,
    },
    /// Any host ending in `.suffix` (kept with its leading dot, lower case).
    Suffix(String),
}

impl HostPattern {
    /// Parses `host`, `host:port`, `[v6]:port` or `*.suffix`.
    pub fn parse(s: &str) -> std::result::Result<HostPattern, HostPatternError> {
        let s = s.trim().to_ascii_lowercase();
        let valid = |h: &str| {
            !h.is_empty()
                && !h.starts_with('.')
                && !h.ends_with('.')
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
        };
        if let Some(suffix) = s.strip_prefix("*.") {
            if !valid(suffix) || suffix.contains(':') || !suffix.contains('.') {
                return Err(HostPatternError::Wildcard { pattern: s });
            }
            return Ok(HostPattern::Suffix(format!(".{suffix}")));
        }
        let (host, port) = match s.strip_prefix('[') {
            Some(v6) => {
                let close = v6
                    .find(']')
                    .ok_or_else(|| HostPatternError::UnclosedIpv6 { pattern: s.clone() })?;
                let port = v6[close + 1..].strip_prefix(':');
                (format!("[{}]", &v6[..close]), port.map(str::to_owned))
            }
            None => match s.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.to_string())),
                None => (s.clone(), None),
            },
        };
        if !valid(&host) || host.contains('*') {
            return Err(HostPatternError::NotAHost { pattern: s });
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| HostPatternError::Port { pattern: s.clone() })
            })
            .transpose()?;
        Ok(HostPattern::Exact { host, port })
    }

    /// Whether `location` is on a host this pattern names.
    pub fn matches(&self, location: &Location) -> bool {
        let default_port = location.port() == default_port(location.scheme());
        match self {
            HostPattern::Exact { host, port } => {
                host == location.host() && port.map_or(default_port, |p| p == location.port())
            }
            HostPattern::Suffix(suffix) => default_port && location.host().ends_with(suffix.as_str()),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact { host, port: Some(p) } => write!(f, "{host}:{p}"),
            HostPattern::Exact { host, port: None } => f.write_str(host),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

fn default_port(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    }
}

/// Parses a comma-separated list of [`HostPattern`]s (empty items ignored).
pub fn parse_host_list(s: &str) -> std::result::Result<Vec<HostPattern>, HostPatternError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(HostPattern::parse)
        .collect()
}

/// The hosts credentials may be sent to, besides the endpoint's own.
/// `Default`: the service's storage hosts, nothing from the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedHosts {
    /// The service's storage hosts: an access-key signature may go there
    /// (never a bearer token). Default [`SERVICE_STORAGE_HOSTS`].
    pub storage: Vec<HostPattern>,
    /// Hosts the operator trusts ([`TRUSTED_HOSTS_VAR`]): the signature and
    /// a bearer token may go there. Default none.
    pub operator: Vec<HostPattern>,
}

impl Default for TrustedHosts {
    fn default() -> Self {
        TrustedHosts {
            storage: SERVICE_STORAGE_HOSTS
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .collect(),
            operator: Vec::new(),
        }
    }
}

impl TrustedHosts {
    /// The defaults plus the hosts in [`TRUSTED_HOSTS_VAR`]; a usage error
    /// naming the variable when an entry does not parse.
    pub fn from_env() -> Result<TrustedHosts> {
        let mut trusted = TrustedHosts::default();
        if let Ok(list) = std::env::var(TRUSTED_HOSTS_VAR) {
            trusted.operator = parse_host_list(&list).map_err(|e| Error::Usage(format!("{TRUSTED_HOSTS_VAR}: {e}")))?;
        }
        Ok(trusted)
    }

    /// Whether credentials may go to `location`: `Err` says why not, names
    /// the host and the variable to set. `bearer`: the credentials are a
    /// bearer token (the storage hosts do not count). `endpoint`: the
    /// endpoint, when known.
    pub fn check(
        &self,
        location: &Location,
        endpoint: Option<&Location>,
        bearer: bool,
    ) -> std::result::Result<(), Untrusted> {
        let authority = location.authority();
        if location.scheme() == Scheme::Http && !is_loopback(location.host()) {
            return Err(Untrusted::PlainHttp { authority });
        }
        let is_endpoint = endpoint.is_some_and(|e| e.host() == location.host() && e.port() == location.port());
        let operator = self.operator.iter().any(|p| p.matches(location));
        let storage = !bearer && self.storage.iter().any(|p| p.matches(location));
        if is_endpoint || operator || storage {
            return Ok(());
        }
        Err(Untrusted::Host {
            authority,
            endpoint: endpoint.map(Location::authority),
            storage: (!bearer).then(|| self.storage.clone()),
        })
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(s: &str) -> Location {
        Location::parse(s).unwrap()
    }

    #[test]
    fn the_endpoint_and_the_service_storage_hosts_are_trusted_over_https_only() {
        let t = TrustedHosts::default();
        let ep = loc("https://acs.example.com/");
        for ok in [
            "https://acs.example.com/recording/download/x",
            "https://us-storage.asm.skype.com/v1/objects/x/content/video",
            "https://a.b.asyncgw.teams.microsoft.com/x",
            "https://x.ams.gov.teams.microsoft.us:443/x",
        ] {
            assert!(t.check(&loc(ok), Some(&ep), false).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("https://evil.example/v1/objects/x", "host evil.example is not trusted"),
            ("https://asm.skype.com/x", "host asm.skype.com is not trusted"),
            ("https://x.asm.skype.com.evil.example/x", "not trusted"),
            ("https://x.asm.skype.com:8443/x", "x.asm.skype.com:8443 is not trusted"),
            ("https://acs.example.com:444/x", "acs.example.com:444 is not trusted"),
            ("http://us-storage.asm.skype.com/x", "plain http"),
            ("http://acs.example.com/x", "plain http"),
        ] {
            let e = t.check(&loc(bad), Some(&ep), false).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("nothing was sent"), "{bad}: {e}");
        }
        assert_eq!(
            t.check(&loc("https://evil.example/x"), Some(&ep), false).unwrap_err().to_string(),
            "host evil.example is not trusted: credentials go only to the endpoint's host (acs.example.com) and \
             the service's storage hosts (*.asm.skype.com, *.asyncgw.teams.microsoft.com, *.ams.gov.teams.microsoft.us); \
             nothing was sent there. If evil.example is yours, add it to RECSTITCH_TRUSTED_HOSTS \
             (comma-separated host, host:port or *.suffix)"
        );
        // A bearer token: the endpoint only.
        assert!(t.check(&loc("https://acs.example.com/x"), Some(&ep), true).is_ok());
        let e = t
            .check(&loc("https://us-storage.asm.skype.com/x"), Some(&ep), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bearer token goes only to the endpoint's host (acs.example.com)"),
            "{e}"
        );
        let e = t
            .check(&loc("https://h.example/x"), None, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bearer token goes only to the endpoint's host (none known);"),
            "{e}"
        );
    }

    #[test]
    fn operator_hosts_parse_and_match_by_host_port_and_suffix() {
        let list =
            parse_host_list(" storage.example:8443, *.blob.core.windows.net ,127.0.0.1:9000,[::1]:80,plain.example")
                .unwrap();
        let t = TrustedHosts {
            operator: list,
            ..TrustedHosts::default()
        };
        for ok in [
            "https://storage.example:8443/x",
            "https://acct.blob.core.windows.net/x",
            "http://127.0.0.1:9000/x",
            "http://[::1]/x",
            "https://plain.example/x",
        ] {
            assert!(t.check(&loc(ok), None, true).is_ok(), "{ok}");
        }
        for bad in [
            "https://storage.example/x",
            "https://blob.core.windows.net/x",
            "http://127.0.0.1:9001/x",
            "https://plain.example:8443/x",
        ] {
            assert!(t.check(&loc(bad), None, true).is_err(), "{bad}");
        }
        for bad in ["*", "*.com", "a b", "h:x", "*.x.com:80", "https://x", "[::1"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("127.3.4.5") && !is_loopback("128.0.0.1") && !is_loopback("localhost.evil"));
    }
}
