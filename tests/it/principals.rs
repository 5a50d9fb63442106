//! Principals: JWT subjects, isolation between them on every endpoint, admins.

use crate::support::fleet::free_port;
use crate::support::{jwt, jwt_config, jwt_signed, TestDb, TestServer, ADMIN_TOKEN, JWT_SECRET};
use serde_json::{json, Value};

#[tokio::test]
async fn another_principal_sees_nothing_not_even_existence() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let alice = server.api.with_token(&jwt("alice", json!({})));
    let bob = server.api.with_token(&jwt("bob", json!({})));
    let token = &server.api; // the static token: principal "token"
    let id = alice.create("read_allow").await;
    let mut stream = alice.stream(&id, None).await.unwrap();
    alice.say(&id, "go").await;
    stream.until("permission_request").await;
    let missing = uuid::Uuid::new_v4().to_string();

    for other in [&bob, token] {
        // Someone else's session answers exactly like a session that does not exist.
        for sid in [&id, &missing] {
            let (status, body) = other.get_json(&format!("/sessions/{sid}")).await;
            assert_eq!(
                (status.as_u16(), &body["code"]),
                (404, &json!("session_not_found"))
            );
            let (status, body) = other.get_json(&format!("/sessions/{sid}/events")).await;
            assert_eq!(
                (status.as_u16(), &body["code"]),
                (404, &json!("session_not_found"))
            );
            let (status, body) = other.stream(sid, None).await.err().unwrap();
            assert_eq!(
                (status.as_u16(), &body["code"]),
                (404, &json!("session_not_found"))
            );
            let (status, _, body) = other.input_raw(sid, r#"{"type":"interrupt"}"#).await;
            assert_eq!(
                (status.as_u16(), &body["code"]),
                (404, &json!("session_not_found"))
            );
            assert_eq!(other.delete(sid).await, 404);
        }
        let (status, list) = other.get_json("/sessions").await;
        assert_eq!(status, 200);
        assert_eq!(list["sessions"], json!([]));
        // Asking for alice's sessions by name does not widen the view.
        let (_, list) = other.get_json("/sessions?principal=alice").await;
        assert_eq!(list["sessions"], json!([]));
    }

    // The owner still has it all, and the session was not disturbed.
    let (status, me) = alice.get_json(&format!("/sessions/{id}")).await;
    assert_eq!(
        (status.as_u16(), me["principal"].as_str()),
        (200, Some("alice"))
    );
    let (_, list) = alice.get_json("/sessions").await;
    assert_eq!(list["sessions"][0]["id"], json!(id));
    let allow = json!({"type":"permission_response","correlation_id":"tu_1","behavior":"allow"});
    assert_eq!(alice.input(&id, allow).await, 204);
    stream.until("result").await;

    // Admins read every session (history only; live interaction stays with the owner).
    for admin in [
        server.api.with_token(ADMIN_TOKEN),
        server
            .api
            .with_token(&jwt("root", json!({"role": "admin"}))),
    ] {
        let (status, row) = admin.get_json(&format!("/sessions/{id}")).await;
        assert_eq!(
            (status.as_u16(), row["principal"].as_str()),
            (200, Some("alice"))
        );
        let (_, list) = admin.get_json("/sessions?principal=alice").await;
        assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
        let (_, events) = admin.get_json(&format!("/sessions/{id}/events")).await;
        assert_eq!(events["events"][0]["event"], "session_ready");
        assert_eq!(admin.stream(&id, None).await.err().unwrap().0, 404);
    }

    // Every recorded input carries its principal.
    let admin = server.api.with_token(ADMIN_TOKEN);
    let (_, inputs) = admin
        .get_json(&format!("/audit/inputs?session_id={id}"))
        .await;
    let principals: Vec<&Value> = inputs["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["principal"])
        .collect();
    assert_eq!(principals, [&json!("alice"), &json!("alice")]);
    server.stop().await;
}

#[tokio::test]
async fn expired_forged_and_misaddressed_jwts_are_401() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let now = jsonwebtoken::get_current_timestamp();
    let good = json!({"sub":"alice","iss":crate::support::JWT_ISSUER,"aud":crate::support::JWT_AUDIENCE,"exp":now + 600});
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        jwt_signed(&c, JWT_SECRET)
    };
    let cases = [
        ("expired", with("exp", json!(now - 3600)), "token expired"),
        (
            "wrong signature",
            jwt_signed(&good, "not-the-secret"),
            "token signature is invalid",
        ),
        (
            "wrong audience",
            with("aud", json!("someone-else")),
            "token has the wrong audience",
        ),
        (
            "wrong issuer",
            with("iss", json!("mallory")),
            "token has the wrong issuer",
        ),
        (
            "reserved subject",
            with("sub", json!("admin")),
            "token subject \"admin\" is reserved",
        ),
        ("garbage", "not-a-jwt".to_owned(), ""),
    ];
    assert_eq!(
        server
            .api
            .with_token(&jwt_signed(&good, JWT_SECRET))
            .create_raw("{}")
            .await
            .0,
        200
    );
    for (what, token, message) in cases {
        let api = server.api.with_token(&token);
        let (status, _, body) = api.create_raw("{}").await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["code"], "unauthorized", "{what}");
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{what}: {body}"
        );
        assert_eq!(api.get_json("/sessions").await.0, 401, "{what}");
        assert_eq!(api.get_json("/audit/events").await.0, 401, "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_for_admins_only() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let api = &server.api;
    let users = [
        api.clone(),
        api.with_token(&jwt("alice", json!({}))),
        api.with_token(&jwt("alice", json!({"role": "user"}))),
    ];
    for path in ["/audit/events", "/audit/inputs"] {
        for user in &users {
            let (status, body) = user.get_json(path).await;
            assert_eq!(
                (status.as_u16(), &body["code"]),
                (403, &json!("admin_required")),
                "{path}"
            );
        }
        for admin in [
            api.with_token(ADMIN_TOKEN),
            api.with_token(&jwt("root", json!({"role": ["ops", "admin"]}))),
        ] {
            assert_eq!(admin.get_json(path).await.0, 200, "{path}");
        }
        assert_eq!(api.with_token("").get_json(path).await.0, 401);
    }
    server.stop().await;
}

/// `/metrics` on the main listener answers admins only; on `--metrics-listen` it stays open.
#[tokio::test]
async fn metrics_on_the_main_listener_are_for_admins_only() {
    let db = TestDb::new().await;
    let mut config = jwt_config(&db);
    let port = free_port();
    config.http.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    for user in [
        api.clone(),
        api.with_token(&jwt("alice", json!({}))),
        api.with_token(&jwt("alice", json!({"role": "user"}))),
    ] {
        let (status, body) = user.get_json("/metrics").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "admin_required", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("/metrics"),
            "{body}"
        );
    }
    for admin in [
        api.with_token(ADMIN_TOKEN),
        api.with_token(&jwt("root", json!({"role": ["ops", "admin"]}))),
    ] {
        assert_eq!(admin.get_status("/metrics").await, Some(200));
    }
    assert_eq!(api.with_token("").get_status("/metrics").await, Some(401));
    let open = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    server.stop().await;
}
