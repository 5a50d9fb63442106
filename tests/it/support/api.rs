//! A thin HTTP client for the server's endpoints, asserting nothing: tests assert.

use super::sse::SseStream;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, token: &str) -> Api {
        Api {
            base,
            token: token.into(),
            http: reqwest::Client::new(),
        }
    }

    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.into(),
            ..self.clone()
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    pub async fn get_status(&self, path: &str) -> Option<u16> {
        let r = self.req(reqwest::Method::GET, path).send().await.ok()?;
        Some(r.status().as_u16())
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /sessions` with a raw body; returns status, headers and JSON body.
    pub async fn create_raw(&self, body: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .req(reqwest::Method::POST, "/sessions")
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a session playing `fixture`; panics unless `200`.
    pub async fn create(&self, fixture: &str) -> String {
        let (status, _, body) = self
            .create_raw(&json!({"fixture": fixture}).to_string())
            .await;
        assert_eq!(status, 200, "create: {body}");
        body["session_id"].as_str().unwrap().to_owned()
    }

    pub async fn input_raw(
        &self,
        id: &str,
        body: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = self
            .req(reqwest::Method::POST, &format!("/sessions/{id}/input"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn input(&self, id: &str, body: Value) -> StatusCode {
        self.input_raw(id, &body.to_string()).await.0
    }

    /// Sends an input; `Err` on a connection failure (no status).
    pub async fn try_input(&self, id: &str, body: &Value) -> Result<StatusCode, reqwest::Error> {
        let r = self
            .req(reqwest::Method::POST, &format!("/sessions/{id}/input"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        Ok(r.status())
    }

    pub async fn try_delete(&self, id: &str) -> Result<StatusCode, reqwest::Error> {
        let r = self
            .req(reqwest::Method::DELETE, &format!("/sessions/{id}"))
            .send()
            .await?;
        Ok(r.status())
    }

    pub async fn say(&self, id: &str, text: &str) {
        let status = self
            .input(id, json!({"type": "user_message", "content": text}))
            .await;
        assert_eq!(status, 204);
    }

    pub async fn delete(&self, id: &str) -> StatusCode {
        self.req(reqwest::Method::DELETE, &format!("/sessions/{id}"))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Opens the SSE stream; `Err` carries the status and JSON body of a non-200 answer.
    pub async fn stream(
        &self,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream, (StatusCode, Value)> {
        let mut req = self.req(reqwest::Method::GET, &format!("/sessions/{id}/stream"));
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last);
        }
        // A connection failure reads as a 502, which clients retry like any 5xx.
        let r = match req.send().await {
            Ok(r) => r,
            Err(_) => return Err((StatusCode::BAD_GATEWAY, Value::Null)),
        };
        if r.status() != 200 {
            let status = r.status();
            return Err((status, r.json().await.unwrap_or(Value::Null)));
        }
        Ok(SseStream::new(r))
    }
}
