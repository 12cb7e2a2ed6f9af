//! The model gateway: named routes, each a backend (`dummy` or `openai`)
//! with a model, a per-call timeout, retries with backoff on 429, 5xx and
//! timeouts, a cap on concurrent calls, and token and cost accounting from
//! the backend's `usage`.
//!
//! A route that cannot answer gives `GatewayError::Unavailable` after its
//! retries: a bounded time, never a hang. The gateway counts calls, tokens
//! and errors per route for the farm's metrics (`Gateway::counters`).

mod dummy;
mod openai;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub use dummy::DummyRule;

/// One route of the farm's configuration (`[prove.routes.NAME]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub backend: BackendKind,
    /// `openai`: the server's base URL, e.g. `http://127.0.0.1:8001/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default = "default_model")]
    pub model: String,
    /// `openai`: the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `openai`: a file holding the API key.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Seconds one call may take.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Calls after the first on 429, 5xx, a timeout or a refused connection.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff, in seconds; it doubles at each retry (a
    /// `Retry-After` header, when shorter than a minute, wins).
    #[serde(default = "default_backoff")]
    pub backoff: f64,
    /// Calls in flight at once on this route.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Price per 1,000 prompt tokens.
    #[serde(default)]
    pub price_in_per_1k: f64,
    /// Price per 1,000 completion tokens.
    #[serde(default)]
    pub price_out_per_1k: f64,
    /// `openai`: sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// `openai`: ask for a streamed reply (server-sent chunks, with
    /// `stream_options.include_usage` so the last chunk carries `usage`).
    #[serde(default)]
    pub stream: bool,
    /// `dummy`: which candidate is the right one.
    #[serde(default)]
    pub dummy: DummyRule,
}

fn default_model() -> String {
    "dummy".to_string()
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> f64 {
    0.5
}
fn default_concurrency() -> usize {
    8
}
fn default_temperature() -> f64 {
    0.7
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Dummy,
    Openai,
}

impl RouteConfig {
    /// The built-in `dummy` route: its first candidate is right.
    pub fn builtin_dummy() -> RouteConfig {
        RouteConfig {
            backend: BackendKind::Dummy,
            base_url: None,
            model: default_model(),
            api_key_env: None,
            api_key_file: None,
            timeout: default_timeout(),
            retries: default_retries(),
            backoff: default_backoff(),
            concurrency: 64,
            price_in_per_1k: 0.0,
            price_out_per_1k: 0.0,
            temperature: default_temperature(),
            stream: false,
            dummy: DummyRule::default(),
        }
    }

    /// Refuse a route that could never answer, naming the route.
    fn validate(&self, name: &str) -> Result<(), GatewayError> {
        let bad = |problem: String| GatewayError::Config {
            route: name.to_string(),
            problem,
        };
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(bad("`timeout` must be a positive number of seconds".into()));
        }
        if !(self.backoff.is_finite() && self.backoff >= 0.0 && self.backoff <= 60.0) {
            return Err(bad("`backoff` must be between 0 and 60 seconds".into()));
        }
        if self.retries > 20 {
            return Err(bad("`retries` must be at most 20".into()));
        }
        if self.concurrency == 0 {
            return Err(bad("`concurrency` must be at least 1".into()));
        }
        for (field, price) in [
            ("price_in_per_1k", self.price_in_per_1k),
            ("price_out_per_1k", self.price_out_per_1k),
        ] {
            if !(price.is_finite() && price >= 0.0) {
                return Err(bad(format!("`{field}` must be zero or more")));
            }
        }
        if self.backend == BackendKind::Openai {
            let Some(base_url) = &self.base_url else {
                return Err(bad("an `openai` route needs `base_url`".into()));
            };
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(bad("`base_url` must be an http:// or https:// URL".into()));
            }
            if self.api_key_env.is_some() && self.api_key_file.is_some() {
                return Err(bad("give `api_key_env` or `api_key_file`, not both".into()));
            }
        }
        if self.backend == BackendKind::Dummy {
            self.dummy.validate().map_err(bad)?;
        }
        Ok(())
    }

    fn api_key(&self, name: &str) -> Result<Option<String>, GatewayError> {
        if let Some(variable) = &self.api_key_env {
            return std::env::var(variable)
                .map(|key| Some(key.trim().to_string()))
                .map_err(|_| GatewayError::Config {
                    route: name.to_string(),
                    problem: format!("the environment variable `{variable}` is not set"),
                });
        }
        if let Some(path) = &self.api_key_file {
            return std::fs::read_to_string(path)
                .map(|key| Some(key.trim().to_string()))
                .map_err(|error| GatewayError::Config {
                    route: name.to_string(),
                    problem: format!("cannot read the key file {}: {error}", path.display()),
                });
        }
        Ok(None)
    }
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// One call to a model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelCall {
    pub messages: Vec<ChatMessage>,
    /// The most completion tokens the call may use.
    pub max_tokens: Option<u64>,
    /// The candidate's number in its job, from 1 (the dummy backend's clock).
    pub attempt_number: u64,
}

/// A model's answer and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelReply {
    pub text: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    /// HTTP calls it took, retries included.
    pub calls: u32,
}

impl ModelReply {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GatewayError {
    #[error("no model route `{0}` (configure it under [prove.routes.{0}])")]
    UnknownRoute(String),
    #[error("model route `{route}` is misconfigured: {problem}")]
    Config { route: String, problem: String },
    /// Down, rate-limited or timing out through every retry.
    #[error("model route `{route}` is unavailable after {calls} calls: {last}")]
    Unavailable {
        route: String,
        calls: u32,
        last: String,
    },
    /// The backend refused the call (a 4xx other than 429): retrying would not help.
    #[error("model route `{route}` refused the call: {message}")]
    Refused { route: String, message: String },
    #[error("model route `{route}` answered something that is not a chat completion: {message}")]
    BadReply { route: String, message: String },
}

impl GatewayError {
    /// A short class for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            GatewayError::UnknownRoute(_) => "unknown_route",
            GatewayError::Config { .. } => "config",
            GatewayError::Unavailable { .. } => "unavailable",
            GatewayError::Refused { .. } => "refused",
            GatewayError::BadReply { .. } => "bad_reply",
        }
    }
}

/// Calls, tokens and errors of one route since the process started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteCounters {
    /// HTTP calls (or dummy answers), retries included.
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Failed calls by class (`rate_limited`, `server_error`, `timeout`,
    /// `connect`, `refused`, `bad_reply`).
    pub errors: BTreeMap<String, u64>,
}

struct Route {
    config: RouteConfig,
    permits: Arc<Semaphore>,
    api_key: Option<String>,
}

/// Every configured route, plus the built-in `dummy`.
#[derive(Clone)]
pub struct Gateway {
    routes: Arc<BTreeMap<String, Route>>,
    client: reqwest::Client,
    counters: Arc<Mutex<BTreeMap<String, RouteCounters>>>,
}

impl Gateway {
    /// Build from the configured routes (a route named `dummy` replaces the
    /// built-in one). Keys are read now, so a missing key fails at start.
    pub fn new(configs: &BTreeMap<String, RouteConfig>) -> Result<Gateway, GatewayError> {
        let mut routes = BTreeMap::new();
        routes.insert(
            "dummy".to_string(),
            Route {
                permits: Arc::new(Semaphore::new(64)),
                config: RouteConfig::builtin_dummy(),
                api_key: None,
            },
        );
        for (name, config) in configs {
            config.validate(name)?;
            routes.insert(
                name.clone(),
                Route {
                    permits: Arc::new(Semaphore::new(config.concurrency)),
                    api_key: config.api_key(name)?,
                    config: config.clone(),
                },
            );
        }
        let client = reqwest::Client::builder()
            .build()
            .map_err(|error| GatewayError::Config {
                route: "*".into(),
                problem: error.to_string(),
            })?;
        Ok(Gateway {
            routes: Arc::new(routes),
            client,
            counters: Arc::default(),
        })
    }

    /// Whether a route of this name exists.
    pub fn has_route(&self, route: &str) -> bool {
        self.routes.contains_key(route)
    }

    /// The model a route names.
    pub fn model(&self, route: &str) -> Option<String> {
        self.routes
            .get(route)
            .map(|route| route.config.model.clone())
    }

    /// The higher of a route's two prices per 1,000 tokens (0 for an unknown route).
    pub fn highest_price_per_1k(&self, route: &str) -> f64 {
        self.routes.get(route).map_or(0.0, |route| {
            route
                .config
                .price_in_per_1k
                .max(route.config.price_out_per_1k)
        })
    }

    /// Per-route counters, for metrics.
    pub fn counters(&self) -> BTreeMap<String, RouteCounters> {
        self.counters.lock().expect("gateway counters").clone()
    }

    fn count(&self, route: &str, update: impl FnOnce(&mut RouteCounters)) {
        let mut counters = self.counters.lock().expect("gateway counters");
        update(counters.entry(route.to_string()).or_default());
    }

    /// Ask the route's model, within its concurrency cap, timeout and retries.
    pub async fn complete(
        &self,
        route_name: &str,
        call: &ModelCall,
    ) -> Result<ModelReply, GatewayError> {
        let route = self
            .routes
            .get(route_name)
            .ok_or_else(|| GatewayError::UnknownRoute(route_name.to_string()))?;
        let _permit = route
            .permits
            .acquire()
            .await
            .map_err(|_| GatewayError::Unavailable {
                route: route_name.to_string(),
                calls: 0,
                last: "the route is closed".into(),
            })?;
        let config = &route.config;
        let mut reply = match config.backend {
            BackendKind::Dummy => {
                self.count(route_name, |counters| counters.calls += 1);
                dummy::answer(config, call)
            }
            BackendKind::Openai => {
                openai::complete(self, route_name, config, route.api_key.as_deref(), call).await?
            }
        };
        reply.cost = (reply.prompt_tokens as f64 * config.price_in_per_1k
            + reply.completion_tokens as f64 * config.price_out_per_1k)
            / 1000.0;
        self.count(route_name, |counters| {
            counters.prompt_tokens += reply.prompt_tokens;
            counters.completion_tokens += reply.completion_tokens;
        });
        Ok(reply)
    }
}

/// Rough token count of a text for backends that report none.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The wait before retry number `retry` (from 1).
pub(crate) fn backoff(config: &RouteConfig, retry: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = config.backoff * 2f64.powi(retry.saturating_sub(1).min(16) as i32);
    let exponential = Duration::from_secs_f64(exponential.min(60.0));
    match retry_after {
        Some(wait) if wait <= Duration::from_secs(60) => wait,
        _ => exponential,
    }
}
