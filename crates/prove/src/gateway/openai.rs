//! The `openai` backend: any server that speaks OpenAI's chat completions
//! (`POST {base_url}/chat/completions`, non-streaming), such as vLLM,
//! SGLang, llama.cpp's server or a hosted API. Tokens come from the reply's
//! `usage`; a reply without it is counted by an estimate from the text.

use super::{backoff, estimate_tokens, Gateway, GatewayError, ModelCall, ModelReply, RouteConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [super::ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    temperature: f64,
    n: u32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One chunk of a streamed reply.
#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<ReplyUsage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: StreamDelta,
}

#[derive(Deserialize, Default)]
struct StreamDelta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatReply {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ReplyUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
}

#[derive(Deserialize)]
struct ReplyMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ReplyUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// How one HTTP call failed.
enum CallFailure {
    /// Worth another try (429, 5xx, timeout, connection).
    Transient {
        class: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    Refused(String),
    BadReply(String),
}

/// Largest reply body read, in bytes.
const MAX_REPLY_BYTES: usize = 4 << 20;

pub(super) async fn complete(
    gateway: &Gateway,
    route: &str,
    config: &RouteConfig,
    api_key: Option<&str>,
    call: &ModelCall,
) -> Result<ModelReply, GatewayError> {
    let base_url = config.base_url.as_deref().unwrap_or_default();
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let body = ChatRequest {
        model: &config.model,
        messages: &call.messages,
        max_tokens: call.max_tokens,
        temperature: config.temperature,
        n: 1,
        stream: config.stream,
        stream_options: config.stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let mut calls = 0u32;
    loop {
        calls += 1;
        gateway.count(route, |counters| counters.calls += 1);
        let failure = match one_call(gateway, &url, config, api_key, &body).await {
            Ok(reply) => return Ok(into_reply(reply, config, &call.messages, calls)),
            Err(failure) => failure,
        };
        let class = match &failure {
            CallFailure::Transient { class, .. } => *class,
            CallFailure::Refused(_) => "refused",
            CallFailure::BadReply(_) => "bad_reply",
        };
        gateway.count(route, |counters| {
            *counters.errors.entry(class.to_string()).or_default() += 1
        });
        match failure {
            CallFailure::Refused(message) => {
                return Err(GatewayError::Refused {
                    route: route.to_string(),
                    message,
                })
            }
            CallFailure::BadReply(message) => {
                return Err(GatewayError::BadReply {
                    route: route.to_string(),
                    message,
                })
            }
            CallFailure::Transient {
                message,
                retry_after,
                ..
            } => {
                if calls > config.retries {
                    return Err(GatewayError::Unavailable {
                        route: route.to_string(),
                        calls,
                        last: message,
                    });
                }
                let wait = backoff(config, calls, retry_after);
                tracing::info!(route, calls, %message, wait_ms = wait.as_millis() as u64, "model call failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn one_call(
    gateway: &Gateway,
    url: &str,
    config: &RouteConfig,
    api_key: Option<&str>,
    body: &ChatRequest<'_>,
) -> Result<ChatReply, CallFailure> {
    let timeout = Duration::from_secs_f64(config.timeout);
    let mut request = gateway.client.post(url).json(body).timeout(timeout);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let transient = |class: &'static str, message: String| CallFailure::Transient {
        class,
        message,
        retry_after: None,
    };
    let response = request.send().await.map_err(|error| {
        if error.is_timeout() {
            transient("timeout", format!("no answer within {} s", config.timeout))
        } else {
            transient(
                "connect",
                format!("cannot reach {url}: {}", describe(&error)),
            )
        }
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64);
    let bytes = tokio::time::timeout(timeout, read_capped(response))
        .await
        .map_err(|_| {
            transient(
                "timeout",
                format!("the reply did not arrive within {} s", config.timeout),
            )
        })?
        .map_err(|message| transient("connect", message))?;
    let excerpt = excerpt(&bytes);
    if status.as_u16() == 429 {
        return Err(CallFailure::Transient {
            class: "rate_limited",
            message: format!("429 rate limited: {excerpt}"),
            retry_after,
        });
    }
    if status.is_server_error() {
        return Err(CallFailure::Transient {
            class: "server_error",
            message: format!("{status}: {excerpt}"),
            retry_after,
        });
    }
    if !status.is_success() {
        return Err(CallFailure::Refused(format!("{status}: {excerpt}")));
    }
    if body.stream {
        return assemble_stream(&bytes).map_err(CallFailure::BadReply);
    }
    serde_json::from_slice::<ChatReply>(&bytes)
        .map_err(|error| CallFailure::BadReply(format!("{error}: {excerpt}")))
}

/// A streamed reply (`data: CHUNK` lines, then `data: [DONE]`) as one reply.
fn assemble_stream(bytes: &[u8]) -> Result<ChatReply, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut content = String::new();
    let mut model = None;
    let mut usage = None;
    let mut done = false;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            done = true;
            break;
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|error| {
            format!(
                "a streamed chunk is not JSON: {error}: {}",
                excerpt(data.as_bytes())
            )
        })?;
        if let Some(piece) = chunk
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.delta.content)
        {
            content.push_str(&piece);
        }
        model = chunk.model.or(model);
        usage = chunk.usage.or(usage);
    }
    if !done {
        return Err("the stream ended without `data: [DONE]`".to_string());
    }
    Ok(ChatReply {
        model,
        choices: vec![Choice {
            message: ReplyMessage {
                content: Some(content),
            },
        }],
        usage,
    })
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("the reply exceeds {MAX_REPLY_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn into_reply(
    reply: ChatReply,
    config: &RouteConfig,
    messages: &[super::ChatMessage],
    calls: u32,
) -> ModelReply {
    let text = reply
        .choices
        .into_iter()
        .next()
        .and_then(|choice| choice.message.content)
        .unwrap_or_default();
    let (prompt_tokens, completion_tokens) = match reply.usage {
        Some(usage) => (usage.prompt_tokens, usage.completion_tokens),
        None => {
            let prompt: String = messages
                .iter()
                .map(|message| message.content.as_str())
                .collect();
            (estimate_tokens(&prompt), estimate_tokens(&text))
        }
    };
    ModelReply {
        text,
        model: reply.model.unwrap_or_else(|| config.model.clone()),
        prompt_tokens,
        completion_tokens,
        cost: 0.0,
        calls,
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text: String = text.chars().take(200).collect();
    text.replace(['\n', '\r'], " ")
}
