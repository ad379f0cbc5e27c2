//! The service routes' bodies in process, for the states a real server rarely shows: /health
//! before the first self-check (`starting`) and while draining, /languages before any
//! self-check. Each body has exactly the properties its schema in the served OpenAPI document
//! lists (the API suite validates the bodies of a real server in full).

mod support;

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use coderun_api::guard::{AuthConfig, CorsConfig, RateLimitConfig};
use serde_json::{json, Value};
use support::*;

const PEER: &str = "203.0.113.10:40000";

fn spec() -> Value {
    serde_json::from_str(coderun_api::openapi::spec_json()).expect("spec is JSON")
}

/// Asserts that `body` has exactly the properties of component schema `name`, all the
/// required ones among them, and that `status` is one of the values its `status` allows.
#[track_caller]
fn assert_shape(spec: &Value, name: &str, body: &Value) {
    let schema = &spec["components"]["schemas"][name];
    let mut documented: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has no properties"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut actual: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort();
    actual.sort();
    assert_eq!(actual, documented, "{name}: {body}");
    for r in schema["required"].as_array().into_iter().flatten() {
        assert!(
            body.get(r.as_str().unwrap()).is_some(),
            "{name}: {r} missing"
        );
    }
    if let Some(r) = schema["properties"]["status"]["$ref"].as_str() {
        let allowed = &spec["components"]["schemas"][r.rsplit('/').next().unwrap()]["enum"];
        assert!(
            allowed.as_array().unwrap().contains(&body["status"]),
            "{name}: status {} not in {allowed}",
            body["status"]
        );
    }
}

#[tokio::test]
async fn health_is_starting_before_the_first_self_check_and_draining_while_draining() {
    let spec = spec();
    let state = support::state(
        &AuthConfig::default(),
        &RateLimitConfig::default(),
        &CorsConfig::default(),
    );
    let app = coderun_api::app(state.clone());
    let a = get(&app, "/health", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"status": "starting", "backend": "test", "running": 0, "queued": 0})
    );
    assert_shape(&spec, "HealthNotReady", &a.body);

    state.draining.store(true, Ordering::SeqCst);
    let a = get(&app, "/health", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"status": "draining", "backend": "test", "running": 0, "queued": 0})
    );
    assert_shape(&spec, "HealthNotReady", &a.body);
}

#[tokio::test]
async fn languages_livez_and_index_have_their_documented_shapes() {
    let spec = spec();
    let app = app(
        &AuthConfig::default(),
        &RateLimitConfig::default(),
        &CorsConfig::default(),
    );
    let a = get(&app, "/languages", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"languages": []}), "no self-check yet");
    assert_shape(&spec, "LanguageList", &a.body);

    let a = get(&app, "/livez", PEER, &[]).await;
    assert_eq!(a.body, json!({"status": "alive"}));
    assert_shape(&spec, "Liveness", &a.body);

    let a = get(&app, "/", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_shape(&spec, "ServiceInfo", &a.body);
    assert_eq!(a.body["name"], "coderun");
    assert_eq!(a.body["backend"], "test");
    assert_eq!(a.body["languages"], json!([]));
    // Every endpoint the index lists is an operation of the spec.
    let endpoints = a.body["endpoints"].as_object().expect("endpoints");
    assert!(endpoints.len() >= 8, "{endpoints:?}");
    for e in endpoints.keys() {
        let (method, path) = e.split_once(' ').expect("METHOD /path");
        assert!(
            spec["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{e} is not in the spec"
        );
    }
}

/// A `/docs/` asset name that is not UTF-8 gets the usual JSON 404, not axum's plain-text
/// path rejection.
#[tokio::test]
async fn a_docs_asset_name_that_is_not_utf8_gets_a_json_404() {
    let app = app(
        &AuthConfig::default(),
        &RateLimitConfig::default(),
        &CorsConfig::default(),
    );
    let a = get(&app, "/docs/%FF", PEER, &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["code"], "not_found", "{}", a.body);
}
