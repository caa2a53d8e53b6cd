//! A small blocking client for Azure Queue Storage's REST API: the storage
//! account (from a connection string or the environment), Shared Key
//! signatures, and the six operations a worker needs — Create Queue, Get
//! Queue Metadata (`x-ms-approximate-messages-count`), Put Message, Get
//! Messages, Update Message (the lease's visibility) and Delete Message.
//!
//! It uses the same HTTP stack as `fetch` (ureq with rustls, no async
//! runtime). The account key never appears in an error, a `Debug` or a log
//! line; errors name the queue and the host.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::remote::fetch::auth::http_date;

/// The environment variable with the queue account's connection string
/// (the one KEDA's `azure-queue` scaler and Azure Functions read).
pub const CONNECTION_STRING_VAR: &str = "AZURE_STORAGE_CONNECTION_STRING";

/// The storage emulator's (Azurite's) published development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The REST API version sent with every request.
const API_VERSION: &str = "2020-10-02";
/// The largest response body read (a message is at most 64 KiB).
const MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// The longest visibility timeout the service accepts (7 days).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(7 * 24 * 3600);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a storage account cannot be used as given. The messages never
/// repeat the key or the connection string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// A part of the connection string that is not `Key=Value`.
    #[error("not a connection string (expected Key=Value;…)")]
    NotConnectionString,
    /// A shared access signature without an account key.
    #[error("a shared access signature is not supported here: use a connection string with AccountKey")]
    SharedAccessSignature,
    /// No `AccountName`.
    #[error("no AccountName")]
    NoAccountName,
    /// No `AccountKey`.
    #[error("no AccountKey")]
    NoAccountKey,
    /// The account name is not letters and digits.
    #[error("the account name must be letters and digits")]
    Name,
    /// The account key is not base64.
    #[error("the account key is not base64")]
    KeyNotBase64,
    /// The queue endpoint is not a URL.
    #[error("the endpoint {endpoint} is not a URL")]
    EndpointNotUrl {
        /// The endpoint.
        endpoint: String,
    },
    /// The queue endpoint is not `http` or `https`.
    #[error("the endpoint {endpoint} is not http(s)")]
    EndpointNotHttp {
        /// The endpoint.
        endpoint: String,
    },
}

/// A storage account: its name, its key and its endpoints. `Debug` never
/// shows the key.
#[derive(Clone)]
pub struct StorageAccount {
    name: String,
    key: Vec<u8>,
    queue_endpoint: String,
    blob_endpoint: Option<String>,
}

impl fmt::Debug for StorageAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageAccount")
            .field("name", &self.name)
            .field("queue_endpoint", &self.queue_endpoint)
            .field("blob_endpoint", &self.blob_endpoint)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl StorageAccount {
    /// An account from its name, its key (base64) and its queue endpoint
    /// (`https://NAME.queue.core.windows.net`, or the emulator's
    /// `http://127.0.0.1:10001/devstoreaccount1`).
    pub fn new(name: &str, key_b64: &str, queue_endpoint: &str) -> Result<StorageAccount, AccountError> {
        let key = B64.decode(key_b64.trim()).map_err(|_| AccountError::KeyNotBase64)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AccountError::Name);
        }
        let queue_endpoint = queue_endpoint.trim().trim_end_matches('/').to_string();
        split_endpoint(&queue_endpoint)?;
        Ok(StorageAccount {
            name: name.to_string(),
            key,
            queue_endpoint,
            blob_endpoint: None,
        })
    }

    /// From [`CONNECTION_STRING_VAR`]; else from `AZURE_STORAGE_ACCOUNT_NAME`
    /// and `AZURE_STORAGE_ACCOUNT_KEY` (or `AZURE_STORAGE_ACCESS_KEY`), with
    /// `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_QUEUE_STORAGE_URL`
    /// (default `http://127.0.0.1:10001`) for the emulator. A usage error
    /// naming the variables (never their values) otherwise.
    pub fn from_env() -> crate::Result<StorageAccount> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        if let Some(cs) = var(CONNECTION_STRING_VAR) {
            return StorageAccount::from_connection_string(&cs)
                .map_err(|e| crate::Error::Usage(format!("{CONNECTION_STRING_VAR}: {e}")));
        }
        let emulator = var("AZURE_STORAGE_USE_EMULATOR").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        let name = var("AZURE_STORAGE_ACCOUNT_NAME").or_else(|| emulator.then(|| DEV_ACCOUNT.to_string()));
        let key = var("AZURE_STORAGE_ACCOUNT_KEY")
            .or_else(|| var("AZURE_STORAGE_ACCESS_KEY"))
            .or_else(|| emulator.then(|| DEV_KEY.to_string()));
        let (Some(name), Some(key)) = (name, key) else {
            return Err(crate::Error::Usage(format!(
                "no queue account: set {CONNECTION_STRING_VAR}, or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY"
            )));
        };
        let endpoint = if emulator {
            let base = var("AZURITE_QUEUE_STORAGE_URL").unwrap_or_else(|| "http://127.0.0.1:10001".into());
            format!("{}/{name}", base.trim_end_matches('/'))
        } else {
            format!("https://{name}.queue.core.windows.net")
        };
        StorageAccount::new(&name, &key, &endpoint)
            .map_err(|e| crate::Error::Usage(format!("AZURE_STORAGE_ACCOUNT_NAME/KEY: {e}")))
    }

    /// From a connection string: `AccountName=…;AccountKey=…` with
    /// `DefaultEndpointsProtocol`, `EndpointSuffix`, `QueueEndpoint`,
    /// `BlobEndpoint`, or `UseDevelopmentStorage=true`. The error never
    /// repeats the string.
    pub fn from_connection_string(s: &str) -> Result<StorageAccount, AccountError> {
        let mut fields = std::collections::HashMap::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or(AccountError::NotConnectionString)?;
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let get = |k: &str| fields.get(k).map(String::as_str);
        if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let mut a = StorageAccount::new(DEV_ACCOUNT, DEV_KEY, "http://127.0.0.1:10001/devstoreaccount1")?;
            a.blob_endpoint = Some("http://127.0.0.1:10000/devstoreaccount1".into());
            return Ok(a);
        }
        if get("sharedaccesssignature").is_some() && get("accountkey").is_none() {
            return Err(AccountError::SharedAccessSignature);
        }
        let name = get("accountname").ok_or(AccountError::NoAccountName)?;
        let key = get("accountkey").ok_or(AccountError::NoAccountKey)?;
        let protocol = get("defaultendpointsprotocol").unwrap_or("https");
        let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
        let queue = get("queueendpoint")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{protocol}://{name}.queue.{suffix}"));
        let mut account = StorageAccount::new(name, key, &queue)?;
        account.blob_endpoint = Some(
            get("blobendpoint")
                .map(|b| b.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("{protocol}://{name}.blob.{suffix}")),
        );
        Ok(account)
    }

    /// The account's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue service's endpoint.
    pub fn queue_endpoint(&self) -> &str {
        &self.queue_endpoint
    }

    /// The blob service's endpoint, when a connection string gave the account.
    pub fn blob_endpoint(&self) -> Option<&str> {
        self.blob_endpoint.as_deref()
    }

    /// Mounts the container of `url` (`az://container/prefix`) on this
    /// account's blob endpoint with its key, on `storage`
    /// ([`Storage::mount_store`](crate::Storage::mount_store)), so that
    /// outputs there use the same account as the queue. Nothing is done
    /// when the account has no blob endpoint (it came from the environment
    /// variables, which [`Storage::mount`](crate::Storage::mount) reads itself).
    #[cfg(feature = "object-store")]
    pub fn mount_container(&self, storage: &crate::Storage, url: &str) -> crate::Result<()> {
        use object_store::azure::MicrosoftAzureBuilder;
        let Some(endpoint) = &self.blob_endpoint else {
            return Ok(());
        };
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let container = rest.split('/').next().unwrap_or_default();
        if container.is_empty() {
            return Err(crate::Error::Usage(format!("{url}: names no container")));
        }
        crate::remote::store::install_crypto_provider();
        let store = MicrosoftAzureBuilder::new()
            .with_account(&self.name)
            .with_access_key(B64.encode(&self.key))
            .with_container_name(container)
            .with_endpoint(endpoint.clone())
            .with_allow_http(endpoint.starts_with("http://"))
            .build()
            .map_err(|e| crate::Error::Usage(format!("az://{container}: cannot open the container: {e}")))?;
        storage.mount_store(&format!("az://{container}"), std::sync::Arc::new(store));
        Ok(())
    }
}

/// `(scheme://authority, path)` of an endpoint URL.
fn split_endpoint(endpoint: &str) -> Result<(&str, &str), AccountError> {
    let (scheme, rest) = endpoint.split_once("://").ok_or_else(|| AccountError::EndpointNotUrl {
        endpoint: endpoint.to_string(),
    })?;
    if scheme != "http" && scheme != "https" {
        return Err(AccountError::EndpointNotHttp {
            endpoint: endpoint.to_string(),
        });
    }
    let cut = rest.find('/').map_or(endpoint.len(), |i| scheme.len() + 3 + i);
    Ok((&endpoint[..cut], &endpoint[cut..]))
}

/// What kind of failure a queue request met: the worker retries
/// `Transient` ones and stops on the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueErrorKind {
    /// 401/403: the key or the account is wrong.
    Auth,
    /// 404: the queue, or the message (someone else's lease now, or gone).
    NotFound,
    /// Connection errors, timeouts, 408, 429, 5xx.
    Transient,
    /// Anything else (400, a response that cannot be read).
    Other,
}

/// A failed queue request, naming the queue, the host and the operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("queue {queue} on {host}: {operation}: {message}")]
pub struct QueueError {
    /// The queue.
    pub queue: String,
    /// The queue service's host.
    pub host: String,
    /// The operation (`receiving a message`, …).
    pub operation: &'static str,
    /// What kind of failure.
    pub kind: QueueErrorKind,
    /// What happened.
    pub message: String,
}

/// One message received: its id, the pop receipt that proves the lease,
/// how many times it was delivered, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The message id.
    pub id: String,
    /// The current pop receipt (changes with every visibility update).
    pub pop_receipt: String,
    /// Deliveries so far, this one included.
    pub dequeue_count: u32,
    /// The message text as stored.
    pub text: String,
}

/// A client for one queue of a [`StorageAccount`].
#[derive(Clone)]
pub struct QueueClient {
    agent: ureq::Agent,
    account: StorageAccount,
    queue: String,
}

impl fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueClient")
            .field("queue", &self.queue)
            .field("account", &self.account)
            .finish()
    }
}

/// Whether `name` is a valid queue name: 3 to 63 lower-case letters,
/// digits and single hyphens, starting and ending with a letter or digit.
pub fn valid_queue_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// How a request's response ended.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl QueueClient {
    /// A client for `queue` (a usage error for an invalid name).
    pub fn new(account: StorageAccount, queue: &str) -> crate::Result<QueueClient> {
        if !valid_queue_name(queue) {
            return Err(crate::Error::Usage(format!(
                "queue {queue:?}: not a valid queue name (3-63 lower-case letters, digits and single hyphens)"
            )));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(60)))
            .max_redirects(0)
            .user_agent(concat!("recstitch/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(QueueClient {
            agent: ureq::Agent::new_with_config(config),
            account,
            queue: queue.to_string(),
        })
    }

    /// A client for another queue of the same account (`NAME-poison`).
    pub fn sibling(&self, queue: &str) -> crate::Result<QueueClient> {
        let mut other = QueueClient::new(self.account.clone(), queue)?;
        other.agent = self.agent.clone();
        Ok(other)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.queue
    }

    /// The queue service's host (`host:port`), for messages.
    pub fn host(&self) -> String {
        let (base, _) = split_endpoint(&self.account.queue_endpoint).unwrap_or(("", ""));
        base.split_once("://").map_or(base, |(_, a)| a).to_string()
    }

    /// Creates the queue; `Ok(true)` when it was created, `Ok(false)` when
    /// it was already there.
    pub fn create(&self) -> Result<bool, QueueError> {
        let what = "creating the queue";
        let a = self.request("PUT", "", &[], None, what)?;
        match a.status {
            201 => Ok(true),
            204 | 409 => Ok(false),
            _ => Err(self.status_error(&a, what)),
        }
    }

    /// The approximate number of messages in the queue, visible or leased.
    pub fn approximate_count(&self) -> Result<u64, QueueError> {
        let what = "reading the message count";
        let a = self.request("GET", "", &[("comp", "metadata".into())], None, what)?;
        if a.status != 200 {
            return Err(self.status_error(&a, what));
        }
        a.headers
            .iter()
            .find(|(n, _)| n == "x-ms-approximate-messages-count")
            .and_then(|(_, v)| v.trim().parse().ok())
            .ok_or_else(|| self.error(what, QueueErrorKind::Other, "no x-ms-approximate-messages-count".into()))
    }

    /// Adds a message with `text` (XML-escaped here), kept for `ttl`
    /// (`None`: never expires).
    pub fn put(&self, text: &str, ttl: Option<Duration>) -> Result<(), QueueError> {
        let what = "adding a message";
        let ttl = ttl.map_or_else(|| "-1".to_string(), |t| t.as_secs().max(1).to_string());
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            xml_escape(text)
        );
        let a = self.request("POST", "/messages", &[("messagettl", ttl)], Some(&body), what)?;
        match a.status {
            201 => Ok(()),
            _ => Err(self.status_error(&a, what)),
        }
    }

    /// Receives one message, invisible to others for `visibility`; `None`
    /// when no message is visible.
    pub fn receive(&self, visibility: Duration) -> Result<Option<QueueMessage>, QueueError> {
        let what = "receiving a message";
        let query = [
            ("numofmessages", "1".to_string()),
            ("visibilitytimeout", visibility_secs(visibility)),
        ];
        let a = self.request("GET", "/messages", &query, None, what)?;
        if a.status != 200 {
            return Err(self.status_error(&a, what));
        }
        let Some(block) = xml_element(&a.body, "QueueMessage") else {
            return Ok(None);
        };
        let field = |tag: &str| {
            xml_element(block, tag)
                .map(xml_unescape)
                .ok_or_else(|| self.error(what, QueueErrorKind::Other, format!("a message without {tag}")))
        };
        Ok(Some(QueueMessage {
            id: field("MessageId")?,
            pop_receipt: field("PopReceipt")?,
            dequeue_count: field("DequeueCount")?.trim().parse().unwrap_or(1),
            text: field("MessageText").unwrap_or_default(),
        }))
    }

    /// Makes a leased message invisible for `visibility` from now (0: visible
    /// at once); the new pop receipt.
    pub fn set_visibility(&self, id: &str, pop_receipt: &str, visibility: Duration) -> Result<String, QueueError> {
        let what = "extending a message's lease";
        let query = [
            ("popreceipt", pop_receipt.to_string()),
            ("visibilitytimeout", visibility_secs(visibility)),
        ];
        let a = self.request("PUT", &format!("/messages/{}", encode(id)), &query, None, what)?;
        if a.status != 204 {
            return Err(self.status_error(&a, what));
        }
        a.headers
            .iter()
            .find(|(n, _)| n == "x-ms-popreceipt")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.error(what, QueueErrorKind::Other, "no x-ms-popreceipt".into()))
    }

    /// Deletes a leased message.
    pub fn delete(&self, id: &str, pop_receipt: &str) -> Result<(), QueueError> {
        let what = "deleting a message";
        let query = [("popreceipt", pop_receipt.to_string())];
        let a = self.request("DELETE", &format!("/messages/{}", encode(id)), &query, None, what)?;
        match a.status {
            204 => Ok(()),
            _ => Err(self.status_error(&a, what)),
        }
    }

    fn error(&self, operation: &'static str, kind: QueueErrorKind, message: String) -> QueueError {
        QueueError {
            queue: self.queue.clone(),
            host: self.host(),
            operation,
            kind,
            message,
        }
    }

    fn status_error(&self, a: &Answer, operation: &'static str) -> QueueError {
        let kind = match a.status {
            401 | 403 => QueueErrorKind::Auth,
            404 => QueueErrorKind::NotFound,
            408 | 429 | 500..=599 => QueueErrorKind::Transient,
            _ => QueueErrorKind::Other,
        };
        // The service's error code only: never the body as a whole.
        let code = xml_element(&a.body, "Code").map(xml_unescape).unwrap_or_default();
        let code: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).take(64).collect();
        let mut message = format!("HTTP {}", a.status);
        if !code.is_empty() {
            message.push_str(&format!(" ({code})"));
        }
        if a.status == 404 && operation != "receiving a message" && operation != "reading the message count" {
            message.push_str(": the message is gone or leased by another worker");
        } else if a.status == 404 {
            message.push_str(": the queue does not exist");
        }
        self.error(operation, kind, message)
    }

    /// One signed request to `/{queue}{suffix}?{query}`.
    fn request(
        &self,
        method: &str,
        suffix: &str,
        query: &[(&str, String)],
        body: Option<&str>,
        what: &'static str,
    ) -> Result<Answer, QueueError> {
        let (base, prefix) = split_endpoint(&self.account.queue_endpoint)
            .map_err(|e| self.error(what, QueueErrorKind::Other, e.to_string()))?;
        let path = format!("{prefix}/{}{suffix}", self.queue);
        let mut url = format!("{base}{path}");
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{k}={}", encode(v)));
        }
        let date = http_date(SystemTime::now());
        let content_type = "application/xml; charset=utf-8";
        let length = body.map_or(0, str::len);
        let signature = self.sign(method, &path, query, length, body.map(|_| content_type), &date);
        let authorization = format!("SharedKey {}:{signature}", self.account.name);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("authorization", authorization);
        let result = match body {
            Some(b) => {
                let r = request
                    .header("content-type", content_type)
                    .body(b.to_string())
                    .map_err(|e| self.error(what, QueueErrorKind::Other, e.to_string()))?;
                self.agent.run(r)
            }
            None => {
                let r = request
                    .header("content-length", "0")
                    .body(())
                    .map_err(|e| self.error(what, QueueErrorKind::Other, e.to_string()))?;
                self.agent.run(r)
            }
        };
        let mut response = result.map_err(|e| self.error(what, QueueErrorKind::Transient, e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| self.error(what, QueueErrorKind::Transient, format!("reading the response: {e}")))?;
        Ok(Answer { status, headers, body })
    }

    /// The Shared Key signature of a request (the Queue service's
    /// string-to-sign: verb, standard headers, `x-ms-` headers, canonical
    /// resource with the decoded query parameters, sorted).
    fn sign(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        length: usize,
        content_type: Option<&str>,
        date: &str,
    ) -> String {
        let length = if length == 0 { String::new() } else { length.to_string() };
        let mut resource = format!("/{}{path}", self.account.name);
        let mut sorted: Vec<&(&str, String)> = query.iter().collect();
        sorted.sort_by_key(|(k, _)| k.to_ascii_lowercase());
        for (k, v) in sorted {
            resource.push_str(&format!("\n{}:{v}", k.to_ascii_lowercase()));
        }
        let to_sign = format!(
            "{method}\n\n\n{length}\n\n{}\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n{resource}",
            content_type.unwrap_or_default()
        );
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.account.key).expect("HMAC takes a key of any length");
        mac.update(to_sign.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }
}

fn visibility_secs(d: Duration) -> String {
    d.min(MAX_VISIBILITY).as_secs().to_string()
}

/// Percent-encodes everything but the unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text between the first `<tag>` and its `</tag>` in `xml`.
fn xml_element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find(&close)?;
    xml.get(start..end)
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes the five named entities and numeric character references; an
/// entity that is not one is kept as it is.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let a = StorageAccount::from_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:2/devstoreaccount1;",
        )
        .unwrap();
        assert_eq!(a.queue_endpoint(), "http://127.0.0.1:2/devstoreaccount1");
        assert_eq!(a.blob_endpoint(), Some("http://127.0.0.1:1/devstoreaccount1"));
        let b = StorageAccount::from_connection_string("AccountName=acct;AccountKey=a2V5").unwrap();
        assert_eq!(b.queue_endpoint(), "https://acct.queue.core.windows.net");
        let dev = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.name(), DEV_ACCOUNT);
        let e = StorageAccount::from_connection_string("AccountName=acct;AccountKey=!!secret!!").unwrap_err();
        assert_eq!(e, AccountError::KeyNotBase64);
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(!format!("{b:?}").contains("a2V5"));
        assert!(StorageAccount::from_connection_string("garbage").is_err());
    }

    #[test]
    fn queue_names() {
        assert!(valid_queue_name("recordings"));
        assert!(valid_queue_name("recordings-poison"));
        for bad in ["ab", "Recordings", "-a-b", "a--b", "a-", "a_b", &"a".repeat(64)] {
            assert!(!valid_queue_name(bad), "{bad}");
        }
    }

    #[test]
    fn xml_round_trip() {
        let text = "<a & 'b'> \"c\" ünï";
        assert_eq!(xml_unescape(&xml_escape(text)), text);
        assert_eq!(xml_unescape("&#65;&#x42;&bogus;&"), "AB&bogus;&");
        assert_eq!(xml_unescape("&#xFFFFFFFF;"), "&#xFFFFFFFF;");
        let xml = "<QueueMessagesList><QueueMessage><MessageId>1</MessageId></QueueMessage></QueueMessagesList>";
        assert_eq!(xml_element(xml, "MessageId"), Some("1"));
        assert_eq!(xml_element("<a>", "a"), None);
    }

    #[test]
    fn signs_like_the_documented_example() {
        // The canonical resource lists the query parameters sorted and decoded.
        let a = StorageAccount::new("acct", "a2V5", "https://acct.queue.core.windows.net").unwrap();
        let c = QueueClient::new(a, "q-one").unwrap();
        let one = c.sign(
            "GET",
            "/q-one/messages",
            &[("b", "2".into()), ("a", "1".into())],
            0,
            None,
            "d",
        );
        let two = c.sign(
            "GET",
            "/q-one/messages",
            &[("a", "1".into()), ("b", "2".into())],
            0,
            None,
            "d",
        );
        assert_eq!(one, two);
        assert_eq!(c.host(), "acct.queue.core.windows.net");
    }
}
