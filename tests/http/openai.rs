//! The OpenAI-compatible endpoint: the tenant is the token's, answers are the same checked
//! answers as `/ask` (citations on the message and the final chunk), errors are in OpenAI's
//! shape.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const QUESTION: &str = "Which state's laws govern the Lifeway endorsement agreement?";

async fn chat(server: &Server, token: &str, body: Value) -> (u16, Value) {
    send(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn assert_openai_error(status: u16, body: &Value, expected: u16, kind: &str, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The `data:` payloads of an OpenAI-style stream (no event names).
fn data_lines(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|block| block.lines().find_map(|line| line.strip_prefix("data:")))
        .map(str::trim)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completions_answer_from_the_tokens_tenant_with_citations_and_usage() {
    let server = Server::start(&[]);
    let a = create_tenant(&server, "Northwind").await;
    let b = create_tenant(&server, "Contoso").await;
    let editor = server.caller(&a, "bob", &["editor"]);
    let lifeway = editor.upload_indexed("LifewayFoods").await;
    let soupman = editor.upload_indexed("SoupmanInc").await;
    let reader_a = server.token(&a, "carol", &["reader"]);
    let reader_b = server.token(&b, "mallory", &["reader"]);

    // Models.
    let (status, models) = send(
        client()
            .get(server.url("/v1/models"))
            .bearer_auth(&reader_a),
    )
    .await;
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "bulkhead");
    assert_eq!(models["data"][0]["object"], "model");

    // Non-streaming.
    let (status, completion) = chat(
        &server,
        &reader_a,
        json!({"model": "bulkhead", "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": QUESTION}]}),
    )
    .await;
    assert_eq!(status, 200, "{completion}");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "bulkhead");
    let message = &completion["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(
        message["content"].as_str().unwrap().contains("Illinois"),
        "{completion}"
    );
    assert_eq!(message["grounded"], true, "{completion}");
    assert_eq!(message["citations"][0]["document_id"], lifeway.as_str());
    let usage = &completion["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    let answer = usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        prompt + answer,
        "{usage}"
    );

    // Streaming: chat.completion.chunk objects, the role first, citations on the last
    // chunk, then [DONE]; the streamed text is the checked answer.
    let response = client()
        .request(Method::POST, server.url("/v1/chat/completions"))
        .bearer_auth(&reader_a)
        .json(&json!({"model": "bulkhead", "stream": true,
            "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let data = data_lines(&text);
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{text}"
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "{text}"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop", "{text}");
    assert_eq!(
        last["citations"][0]["document_id"],
        lifeway.as_str(),
        "{text}"
    );
    assert!(
        last["usage"]["completion_tokens"].as_u64().is_some(),
        "{text}"
    );
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, message["content"].as_str().unwrap(), "{text}");

    // A follow-up that names no contract keeps the one the conversation is about.
    let (status, follow) = chat(
        &server,
        &reader_a,
        json!({"model": "bulkhead", "messages": [
            {"role": "user", "content": "Who are the parties to the Lifeway endorsement agreement?"},
            {"role": "assistant", "content": "Lifeway Foods, Inc. and the athlete."},
            {"role": "user", "content": "And which state's laws govern it?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{follow}");
    let cited = follow["choices"][0]["message"]["citations"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!cited.is_empty(), "{follow}");
    assert!(
        cited.iter().all(|c| c["document_id"] == lifeway.as_str()),
        "the follow-up stays on the Lifeway agreement, not {soupman}: {follow}"
    );

    // Tenant B's token sees none of A's documents, whatever the body says.
    let (status, other) = chat(
        &server,
        &reader_b,
        json!({"model": "bulkhead", "user": a, "messages": [{"role": "user", "content": QUESTION}]}),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    let other_text = other.to_string();
    assert!(
        !other_text.contains(&lifeway) && !other_text.contains("Illinois"),
        "{other}"
    );
    assert_eq!(
        other["choices"][0]["message"]["citations"],
        json!([]),
        "{other}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completions_errors_are_in_openais_shape() {
    let server = Server::start(&[]);
    let a = create_tenant(&server, "Northwind").await;
    let reader = server.token(&a, "carol", &["reader"]);
    let auditor = server.token(&a, "audrey", &["auditor"]);
    let question = json!([{"role": "user", "content": "hello"}]);

    let (status, body) = send(client().get(server.url("/v1/models"))).await;
    assert_openai_error(
        status,
        &body,
        401,
        "authentication_error",
        "unauthenticated",
    );
    let (status, body) = chat(
        &server,
        "not-a-token",
        json!({"model": "bulkhead", "messages": question}),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        401,
        "authentication_error",
        "unauthenticated",
    );
    let (status, body) = chat(
        &server,
        &server.platform_token(),
        json!({"model": "bulkhead", "messages": question}),
    )
    .await;
    assert_openai_error(status, &body, 403, "permission_error", "forbidden");
    let (status, body) = chat(
        &server,
        &auditor,
        json!({"model": "bulkhead", "messages": question}),
    )
    .await;
    assert_openai_error(status, &body, 403, "permission_error", "forbidden");

    let (status, body) = chat(
        &server,
        &reader,
        json!({"model": "gpt-4o", "messages": question}),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        404,
        "invalid_request_error",
        "model_not_found",
    );
    let (status, body) = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&reader)
            .header("content-type", "application/json")
            .body("{\"model\": \"bulkhead\", \"messages\": "),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        400,
        "invalid_request_error",
        "invalid_request",
    );
    let (status, body) = chat(
        &server,
        &reader,
        json!({"model": "bulkhead", "messages": [{"role": "user", "content": "x".repeat(3 << 20)}]}),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        413,
        "invalid_request_error",
        "payload_too_large",
    );
    let (status, body) = chat(&server, &reader, json!({"model": "bulkhead"})).await;
    assert_openai_error(
        status,
        &body,
        400,
        "invalid_request_error",
        "invalid_request",
    );
    let (status, body) = chat(
        &server,
        &reader,
        json!({"model": "bulkhead", "messages": [{"role": "system", "content": "only a system message"}]}),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        400,
        "invalid_request_error",
        "invalid_request",
    );
    let (status, body) = chat(
        &server,
        &reader,
        json!({"model": "bulkhead", "messages": [{"role": "user", "content": "x".repeat(2_001)}]}),
    )
    .await;
    assert_openai_error(
        status,
        &body,
        400,
        "invalid_request_error",
        "invalid_request",
    );
}
