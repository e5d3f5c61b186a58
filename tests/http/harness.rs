//! Starts servers and talks to them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bulkhead"))
}

pub fn models_dir() -> PathBuf {
    bulkhead::config::default_models_dir()
}

pub fn sample(prefix: &str) -> (String, Vec<u8>) {
    let (name, path) = crate::common::sample_file(prefix);
    (name, std::fs::read(&path).unwrap())
}

/// Runs a CLI command on a data directory and returns stdout (panics on failure).
pub fn cli(data: &Path, args: &[&str]) -> String {
    let output = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .arg("--models-dir")
        .arg(models_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `bulkhead serve --listen 127.0.0.1:0` on a fresh data directory, plus `extra` flags.
    pub fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        cli(data.path(), &["init"]);
        Server::start_on(data, extra)
    }

    pub fn start_on(data: tempfile::TempDir, extra: &[&str]) -> Server {
        let (child, base) = crate::common::spawn_server(data.path(), extra, &[], Stdio::inherit());
        Server { child, base, data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn platform_token(&self) -> String {
        cli(self.data.path(), &["token", "--platform-admin"])
    }

    pub fn token(&self, tenant: &str, user: &str, roles: &[&str]) -> String {
        let mut args = vec!["token", "--tenant", tenant, "--user", user];
        for role in roles {
            args.extend(["--role", role]);
        }
        cli(self.data.path(), &args)
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Sends a request and returns (status, JSON body or Null).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn create_tenant(server: &Server, name: &str) -> String {
    let (status, body) = send(
        client()
            .post(server.url("/v1/tenants"))
            .bearer_auth(server.platform_token())
            .json(&serde_json::json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["tenant_id"].as_str().unwrap().to_owned()
}

/// A tenant of the given tier (`POST /v1/tenants` with `tier`).
pub async fn create_tenant_with_tier(server: &Server, name: &str, tier: &str) -> String {
    let (status, body) = send(
        client()
            .post(server.url("/v1/tenants"))
            .bearer_auth(server.platform_token())
            .json(&serde_json::json!({"name": name, "tier": tier})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tier"], tier, "{body}");
    body["tenant_id"].as_str().unwrap().to_owned()
}

/// The value of an unlabelled line of `/metrics`.
pub fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
        .parse()
        .unwrap()
}

pub async fn upload(
    server: &Server,
    tenant: &str,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    wait: bool,
) -> (u16, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    send(
        client()
            .post(server.url(&format!(
                "/v1/tenants/{tenant}/documents{}",
                if wait { "?wait=true" } else { "" }
            )))
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

pub fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Someone holding a token for one tenant. Paths are relative to `/v1/tenants/{tenant}`,
/// so a test reads `reader.get("/documents")`.
pub struct Caller<'a> {
    pub server: &'a Server,
    pub tenant: String,
    pub token: String,
}

impl Server {
    /// A caller with a token minted by the CLI for `user` with `roles`.
    pub fn caller(&self, tenant: &str, user: &str, roles: &[&str]) -> Caller<'_> {
        self.caller_with(tenant, self.token(tenant, user, roles))
    }

    /// A caller with a token obtained elsewhere (the tokens endpoint, a platform token).
    pub fn caller_with(&self, tenant: &str, token: String) -> Caller<'_> {
        Caller {
            server: self,
            tenant: tenant.to_owned(),
            token,
        }
    }
}

impl Caller<'_> {
    /// A request with the caller's token, to read the raw response (bytes, text, SSE).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = self
            .server
            .url(&format!("/v1/tenants/{}{path}", self.tenant));
        client().request(method, url).bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// The response body as text, after checking the status is 200.
    pub async fn get_text(&self, path: &str) -> String {
        send_text(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn upload(&self, name: &str, bytes: Vec<u8>, wait: bool) -> (u16, Value) {
        upload(self.server, &self.tenant, &self.token, name, bytes, wait).await
    }

    /// Uploads the sample contract starting with `prefix` with `wait=true` (201, indexed);
    /// returns its document id.
    pub async fn upload_indexed(&self, prefix: &str) -> String {
        let (name, bytes) = sample(prefix);
        let (status, body) = self.upload(&name, bytes, true).await;
        assert_eq!(status, 201, "{body}");
        body["document_id"].as_str().unwrap().to_owned()
    }

    /// Polls a document until the background indexer has indexed it; returns its record.
    pub async fn wait_until_indexed(&self, document: &str) -> Value {
        let mut record = Value::Null;
        for _ in 0..240 {
            record = self.get(&format!("/documents/{document}")).await.1;
            if record["status"] == "indexed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(record["status"], "indexed", "{record}");
        record
    }
}

/// Sends a request, checks the status is 200 and returns the body as text.
pub async fn send_text(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}
