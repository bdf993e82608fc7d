//! How the CLI reaches an engine: the admin API, either in this process on a file it opened,
//! or over HTTP on a running process. Both answer the same JSON, so every command is written
//! once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use jobfile::admin::AdminOptions;
use jobfile::{Engine, Error};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::failure::Failure;
use crate::sse::{SseEvent, SseParser};

/// The largest JSON answer read (a page of jobs with inputs, a job with its whole history).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// An engine reached through its admin API.
pub enum Client {
    /// A file this process opened, its admin router called in place.
    Local { engine: Engine, router: Router },
    /// A running process's admin API over HTTP.
    Remote {
        agent: ureq::Agent,
        base: String,
        token: Option<String>,
    },
}

impl Client {
    /// Opens the file at `path`, which must exist and be held by no process.
    pub async fn open(path: &Path) -> Result<Client, Failure> {
        if !path.exists() {
            return Err(Failure::failed(format!(
                "no file at {}: give the path of the jobfile your app opens (the CLI creates none)",
                path.display()
            )));
        }
        let engine = Engine::open(path)
            .await
            .map_err(|e| open_failure(path, e))?;
        let router = jobfile::admin::router(engine.clone(), AdminOptions::without_auth());
        Ok(Client::Local { engine, router })
    }

    /// A client of the admin API at `url`.
    pub fn connect(url: &str, token: Option<String>) -> Result<Client, Failure> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "--connect takes the admin API's URL, such as http://127.0.0.1:9090; got {url:?}"
            )));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build();
        Ok(Client::Remote {
            agent: config.into(),
            base: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Closes a file this process opened; nothing for a remote engine.
    pub async fn close(self) {
        if let Client::Local { engine, router } = self {
            drop(router);
            if let Err(e) = engine.shutdown(Duration::from_secs(5)).await {
                eprintln!("jobfile: closing {}: {e}", engine.path().display());
            }
        }
    }

    /// Where the answers come from, for messages.
    pub fn place(&self) -> String {
        match self {
            Client::Local { engine, .. } => engine.path().display().to_string(),
            Client::Remote { base, .. } => base.clone(),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with an optional JSON body.
    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        self.call(Method::POST, path, body).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let body = body.map(|b| b.to_string());
        let (status, text) = match self {
            Client::Local { router, .. } => {
                let response = router
                    .clone()
                    .oneshot(request(method, path, body))
                    .await
                    .map_err(|e| Failure::failed(format!("admin router: {e}")))?;
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
                    .await
                    .map_err(|e| Failure::failed(format!("reading the answer: {e}")))?;
                (status, String::from_utf8_lossy(&bytes).into_owned())
            }
            Client::Remote { agent, base, token } => {
                let (agent, url, token) = (agent.clone(), format!("{base}{path}"), token.clone());
                let place = base.clone();
                tokio::task::spawn_blocking(move || {
                    let mut response = agent
                        .run(remote_request(method, &url, token.as_deref(), body))
                        .map_err(|e| unreachable(&place, e))?;
                    let status = response.status().as_u16();
                    let text = response
                        .body_mut()
                        .with_config()
                        .limit(MAX_ANSWER as u64)
                        .read_to_string()
                        .map_err(|e| {
                            Failure::failed(format!("reading the answer of {place}: {e}"))
                        })?;
                    Ok::<_, Failure>((status, text))
                })
                .await
                .map_err(|e| Failure::failed(format!("request task: {e}")))??
            }
        };
        answer(status, &text, self)
    }

    /// Server-Sent Events from `path`, parsed, until the stream ends.
    pub async fn stream(&self, path: &str) -> Result<mpsc::Receiver<SseEvent>, Failure> {
        let (tx, rx) = mpsc::channel(64);
        match self {
            Client::Local { router, .. } => {
                let response = router
                    .clone()
                    .oneshot(request(Method::GET, path, None))
                    .await
                    .map_err(|e| Failure::failed(format!("admin router: {e}")))?;
                if !response.status().is_success() {
                    let status = response.status().as_u16();
                    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
                        .await
                        .unwrap_or_default();
                    answer(status, &String::from_utf8_lossy(&bytes), self)?;
                    return Err(Failure::failed(format!(
                        "{} answered {status}",
                        self.place()
                    )));
                }
                let mut chunks = response.into_body().into_data_stream();
                tokio::spawn(async move {
                    let mut parser = SseParser::default();
                    while let Some(Ok(chunk)) = std::future::poll_fn(|cx| {
                        futures_core::Stream::poll_next(Pin::new(&mut chunks), cx)
                    })
                    .await
                    {
                        for event in parser.push(&String::from_utf8_lossy(&chunk)) {
                            if tx.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
            Client::Remote { agent, base, token } => {
                let (agent, url, token) = (agent.clone(), format!("{base}{path}"), token.clone());
                let place = base.clone();
                let mut response = tokio::task::spawn_blocking(move || {
                    agent
                        .run(remote_request(Method::GET, &url, token.as_deref(), None))
                        .map_err(|e| unreachable(&place, e))
                })
                .await
                .map_err(|e| Failure::failed(format!("request task: {e}")))??;
                let status = response.status().as_u16();
                if !(200..300).contains(&status) {
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    answer(status, &text, self)?;
                }
                std::thread::spawn(move || {
                    let mut parser = SseParser::default();
                    let reader = BufReader::new(response.into_body().into_reader());
                    for line in reader.lines() {
                        let Ok(line) = line else { return };
                        for event in parser.push(&format!("{line}\n")) {
                            if tx.blocking_send(event).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        }
        Ok(rx)
    }
}

fn request(method: Method, path: &str, body: Option<String>) -> Request<Body> {
    let builder = Request::builder().method(method).uri(path);
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body)),
        None => builder.body(Body::empty()),
    }
    .expect("a request from a path the CLI built")
}

fn remote_request(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> ureq::http::Request<String> {
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(url);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(body.unwrap_or_default())
        .expect("a request from a URL the CLI checked")
}

/// The JSON of a successful answer, or the failure the admin API reported.
fn answer(status: u16, text: &str, client: &Client) -> Result<Value, Failure> {
    let json: Option<Value> = serde_json::from_str(text).ok();
    if (200..300).contains(&status) {
        return json.ok_or_else(|| {
            Failure::failed(format!(
                "{} answered something that is not JSON",
                client.place()
            ))
        });
    }
    let code = json
        .as_ref()
        .and_then(|j| j["error"]["code"].as_str())
        .unwrap_or("")
        .to_string();
    let message = json
        .as_ref()
        .and_then(|j| j["error"]["message"].as_str())
        .map_or_else(|| text.trim().to_string(), str::to_string);
    Err(match (status, code.as_str()) {
        (401, _) => Failure::failed(format!(
            "{} refused the request without the right token: pass the token the app set \
             (AdminOptions::with_token) with --token or JOBFILE_TOKEN",
            client.place()
        )),
        (404, "") => Failure::failed(format!(
            "{} has no such endpoint: is that the admin API's address (and this CLI as new as the app's jobfile)?",
            client.place()
        )),
        _ => Failure::api(code, message),
    })
}

fn unreachable(place: &str, e: ureq::Error) -> Failure {
    Failure::failed(format!(
        "nothing answers at {place} ({e}): is the app running and serving its admin API there?"
    ))
}

/// One line that says what went wrong opening a file, and what to do.
fn open_failure(path: &Path, e: Error) -> Failure {
    let shown = path.display();
    match e {
        Error::Locked { holder, .. } => Failure::held(match holder {
            Some(h) => match &h.admin_url {
                Some(url) => format!(
                    "{shown} is held by {h}; connect to it instead: jobfile --connect {url} --token <its admin token> <command>"
                ),
                None => format!(
                    "{shown} is held by {h}, which serves no admin API: serve one in the app \
                     (Engine::serve_admin) and use jobfile --connect URL, or stop it to open the file"
                ),
            },
            None => format!(
                "{shown} is held by another process: connect to its admin API with jobfile --connect URL, or stop it to open the file"
            ),
        }),
        Error::NotAJobfile { reason, .. } => Failure::failed(format!(
            "{shown} is not a jobfile file ({reason}); give the path of the file your app opens"
        )),
        Error::NewerFormat {
            found, supported, ..
        } => Failure::failed(format!(
            "{shown} has format version {found}, newer than this jobfile CLI reads ({supported}): install a newer one (cargo install jobfile --features cli)"
        )),
        other => Failure::failed(other.to_string()),
    }
}
