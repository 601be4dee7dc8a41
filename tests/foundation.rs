//! End-to-end: the foundation — problem details for bad input, tenants, health, metrics,
//! OpenAPI. Each test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;

e2e!(bad_input_is_a_problem_and_changes_nothing, |app| {
    let token = app.platform_token();
    let t = Some(token.as_str());
    let count = |app: &common::TestApp| {
        app.get("/v1/tenants?limit=500", t).json()["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = count(&app);

    let r = app.post("/v1/tenants", t, &json!({"name": 5}));
    assert_eq!(r.problem(400), "invalid_body");
    let r = app.post("/v1/tenants", t, &json!({}));
    assert_eq!(r.problem(400), "invalid_body");
    let r = app.post("/v1/tenants", t, &json!({"name": "x", "extra": 1}));
    assert_eq!(r.problem(400), "invalid_body");
    let r = app.post("/v1/tenants", t, &json!({"name": "   "}));
    assert_eq!(r.problem(400), "invalid_name");

    let r = app.raw(
        app.client
            .post(app.url("/v1/tenants"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("not json"),
    );
    assert_eq!(r.problem(400), "malformed_json");

    let big = format!("{{\"name\": \"{}\"}}", "a".repeat(10 * 1024 * 1024));
    let r = app.raw(
        app.client
            .post(app.url("/v1/tenants"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big),
    );
    assert_eq!(r.problem(413), "payload_too_large");

    let r = app.raw(
        app.client
            .post(app.url("/v1/tenants"))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("{\"name\":\"x\"}"),
    );
    assert_eq!(r.problem(415), "unsupported_media_type");

    let r = app.request(reqwest::Method::DELETE, "/healthz", None, None);
    assert_eq!(r.problem(405), "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET"));

    let r = app.get("/no/such/route", None);
    assert_eq!(r.problem(404), "not_found");

    let r = app.get("/v1/tenants?limit=0", t);
    assert_eq!(r.problem(400), "invalid_limit");
    let r = app.get("/v1/tenants?cursor=garbage", t);
    assert_eq!(r.problem(400), "invalid_cursor");

    assert_eq!(count(&app), before, "bad input created something");
});

e2e!(tenants_create_get_list_paginate, |app| {
    let token = app.platform_token();
    let t = Some(token.as_str());
    let mut ids = vec![];
    for i in 0..5 {
        let r = app.post("/v1/tenants", t, &json!({"name": format!("Shop {i}")}));
        assert_eq!(r.status, 201, "{}", r.text);
        let t = r.json();
        assert!(t["id"].as_str().unwrap().starts_with("ten_"));
        assert_eq!(t["status"], "active");
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    let got = app.get(&format!("/v1/tenants/{}", ids[2]), t);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["name"], "Shop 2");

    let missing = app.get("/v1/tenants/ten_01aaaaaaaaaaaaaaaaaaaaaaaa", t);
    assert_eq!(missing.problem(404), "not_found");
    let malformed = app.get("/v1/tenants/not-an-id", t);
    assert_eq!(malformed.problem(404), "not_found");

    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants?limit=2&cursor={c}"),
            None => "/v1/tenants?limit=2".to_string(),
        };
        let page = app.get(&path, t).json();
        for t in page["items"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "pages cover every tenant once, in creation order"
    );
});

e2e!(request_ids_are_echoed_or_generated, |app| {
    let r = app.raw(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "abc-123"),
    );
    assert_eq!(r.header("x-request-id").as_deref(), Some("abc-123"));
    let r = app.raw(
        app.client
            .get(app.url("/healthz"))
            .header("x-request-id", "bad id!"),
    );
    let generated = r.header("x-request-id").unwrap();
    assert!(generated.starts_with("req_"), "{generated}");
});

e2e!(health_ready_metrics_openapi, |app| {
    assert_eq!(app.get("/healthz", None).status, 200);
    let ready = app.get("/readyz", None);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");

    app.post(
        "/v1/tenants",
        Some(&app.platform_token()),
        &json!({"name": "M"}),
    );
    let metrics = app.get("/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type().starts_with("text/plain"));
    // Route templates, never concrete ids.
    assert!(
        metrics.text.contains(
            r#"steward_http_requests_total{method="POST",route="/v1/tenants",status="201"} 1"#
        ),
        "{}",
        metrics.text
    );
    assert!(metrics
        .text
        .contains("steward_http_request_duration_seconds_bucket"));
    assert!(!metrics.text.contains("ten_"));
    // Every sample line parses as `name{labels} value`.
    for line in metrics
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
    }

    let doc = app.get("/openapi.json", None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/tenants",
        "/v1/tenants/{tid}",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
});
