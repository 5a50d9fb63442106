//! What `utoipa` 5 cannot say through its attributes, corrected on the built document.

use serde_json::Value;
use utoipa::openapi::{OpenApi, Required};

/// `POST /sessions` takes an optional body (empty is the default config). `Option<T>` as the
/// body would make the body's schema nullable, but a JSON `null` body is `400`, so the body is
/// declared as the object and marked not required here.
pub fn optional_create_body(doc: &mut OpenApi) {
    let body = doc
        .paths
        .paths
        .get_mut("/sessions")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut());
    if let Some(body) = body {
        body.required = Some(Required::False);
    }
}

/// utoipa 5 serializes a Link Object's fields in snake_case (`operation_id`); OpenAPI names
/// them in camelCase (`operationId`), and tools (schemathesis' stateful phase, generators)
/// read only those.
pub fn link_field_names(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(Value::as_object_mut) else {
            continue;
        };
        for link in links.values_mut().filter_map(Value::as_object_mut) {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(from) {
                    link.insert(to.to_owned(), v);
                }
            }
        }
    }
}

/// An SSE frame's `data` is text: JSON, as `contentMediaType` and `contentSchema` say
/// (JSON Schema 2020-12, what OpenAPI 3.1 uses, and what schemathesis validates each event's
/// data against). utoipa 5 has no attribute for either, so `events::SseEvent`'s `data: $ref`
/// becomes that here, and the frame's `id` (its seq, as text) is added.
pub fn sse_data_as_json_text(doc: &mut Value) {
    let frames = doc
        .pointer_mut("/components/schemas/SseEvent/oneOf")
        .and_then(Value::as_array_mut);
    for frame in frames.into_iter().flatten() {
        let Some(properties) = frame.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(data) = properties.remove("data") {
            properties.insert(
                "data".into(),
                serde_json::json!({
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": data,
                }),
            );
        }
        properties.insert(
            "id".into(),
            serde_json::json!({
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The event's seq: resume after it with `Last-Event-ID`.",
            }),
        );
        if let Some(required) = frame.get_mut("required").and_then(Value::as_array_mut) {
            required.push("id".into());
        }
    }
}
