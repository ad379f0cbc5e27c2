//! The OpenAPI description at `/openapi.json` and the Swagger UI at `/docs`.

use crate::common::*;

/// Every route the router serves, with its methods.
const ROUTES: [(&str, &str); 10] = [
    ("/", "get"),
    ("/health", "get"),
    ("/livez", "get"),
    ("/metrics", "get"),
    ("/languages", "get"),
    ("/execute", "post"),
    ("/openapi.json", "get"),
    ("/docs", "get"),
    ("/docs/", "get"),
    ("/docs/{file}", "get"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn spec() -> Value {
    let (status, spec) = shared().get("/openapi.json");
    assert_eq!(status, 200, "{spec:#}");
    assert!(spec.is_object(), "not JSON: {spec}");
    spec
}

/// Follows a `{"$ref": "#/components/schemas/X"}` in `spec`.
#[track_caller]
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            let s = &spec["components"]["schemas"][name];
            assert!(s.is_object(), "{r} not in components: {spec:#}");
            s
        }
        None => schema,
    }
}

#[track_caller]
fn properties<'a>(spec: &'a Value, schema: &'a Value) -> &'a serde_json::Map<String, Value> {
    resolve(spec, schema)["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties: {schema:#}"))
}

#[test]
fn openapi_json_is_an_openapi_3_document_of_every_route() {
    let spec = spec();
    assert!(
        spec["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "coderun");
    let paths = spec["paths"].as_object().expect("paths");
    for (path, method) in ROUTES {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} not documented: {:?}", paths.keys()));
        assert!(item[method].is_object(), "{method} {path} not documented");
        for other in METHODS.iter().filter(|m| **m != method) {
            assert!(item.get(*other).is_none(), "{other} {path} documented");
        }
        let op = &item[method];
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        // Every response carries the request id.
        for (code, resp) in op["responses"].as_object().unwrap() {
            assert!(
                resp["headers"]["X-Request-Id"].is_object(),
                "{method} {path} {code} lacks X-Request-Id: {resp:#}"
            );
        }
    }
    assert_eq!(paths.len(), ROUTES.len(), "{:?}", paths.keys());
    assert!(paths["/metrics"]["get"]["responses"]["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with("text/plain")));
    assert!(paths["/docs/"]["get"]["responses"]["200"]["content"]["text/html"].is_object());
}

#[test]
fn openapi_describes_execute_request_responses_and_errors() {
    let spec = spec();
    let op = &spec["paths"]["/execute"]["post"];
    let body = &op["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/ExecuteBody", "{op:#}");
    let props = properties(&spec, body);
    for field in [
        "code",
        "language",
        "timeout",
        "stdin",
        "args",
        "files",
        "memory_mb",
        "max_processes",
        "max_output_bytes",
        "typecheck",
    ] {
        assert!(props.contains_key(field), "{field} missing: {props:#?}");
    }
    let required = resolve(&spec, body)["required"].as_array().unwrap();
    assert!(required.contains(&json!("code")) && required.contains(&json!("language")));
    let file = properties(&spec, &props["files"]["items"]);
    assert!(file.contains_key("name") && file.contains_key("content"));

    let responses = op["responses"].as_object().unwrap();
    for code in [
        "200", "400", "401", "413", "422", "429", "500", "503", "504",
    ] {
        assert!(responses.contains_key(code), "{code} missing: {op:#}");
    }
    let ok = &responses["200"]["content"]["application/json"]["schema"];
    let props = properties(&spec, ok);
    for field in [
        "output",
        "error",
        "execution_time",
        "success",
        "status",
        "stdout",
        "stderr",
        "exit_code",
    ] {
        assert!(props.contains_key(field), "{field} missing: {props:#?}");
    }
    let status = resolve(&spec, &props["status"]);
    for s in ["ok", "compile_error", "runtime_error", "timeout"] {
        assert!(
            status["enum"].as_array().unwrap().contains(&json!(s)),
            "{status:#}"
        );
    }
    // Errors are `{detail, code}`; the waits are in Retry-After.
    for code in ["400", "413", "422", "500", "503"] {
        let err = &responses[code]["content"]["application/json"]["schema"];
        let props = properties(&spec, err);
        assert!(props.contains_key("detail") && props.contains_key("code"));
    }
    for code in ["429", "503"] {
        assert!(
            responses[code]["headers"]["Retry-After"].is_object(),
            "{code}: {:#}",
            responses[code]
        );
    }
}

#[test]
fn every_documented_path_is_served() {
    let spec = spec();
    let s = shared();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let url_path = path.replace("{file}", "swagger-ui.css");
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let status = match *method {
                "get" => s
                    .client()
                    .get(s.url(&url_path))
                    .send()
                    .expect("GET")
                    .status()
                    .as_u16(),
                // An empty object: served (422), without running anything.
                "post" => s.post_raw(&url_path, b"{}").0,
                m => panic!("{m} {path}: unexpected method"),
            };
            assert!(
                status != 404 && status != 405,
                "{method} {path} answered {status}"
            );
            if *method == "get" {
                assert_eq!(status, 200, "{method} {path}");
            }
        }
    }
}

#[test]
fn docs_is_an_offline_swagger_ui_page_for_the_spec() {
    let s = shared();
    let resp = s.client().get(s.url("/docs")).send().expect("GET /docs");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = resp.text().unwrap();
    assert!(html.contains("swagger"), "{html}");
    // Only local assets: nothing from a CDN.
    assert!(!html.contains("://"), "external asset in {html}");
    let (status, init) = s.get("/docs/swagger-initializer.js");
    assert_eq!(status, 200);
    assert!(init.as_str().unwrap().contains("/openapi.json"), "{init}");
    let (status, missing) = s.get("/docs/no-such-file.js");
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["code"], "not_found", "{missing}");
}

#[test]
fn index_lists_the_api_description_and_docs() {
    let (status, i) = shared().get("/");
    assert_eq!(status, 200, "{i:#}");
    let endpoints = i["endpoints"].as_object().unwrap();
    for e in ["GET /openapi.json", "GET /docs"] {
        assert!(endpoints.contains_key(e), "{e} missing: {i:#}");
    }
}

/// With API keys configured, the description and the docs page need a key like every
/// non-probe route (and the spec says so with a 401).
#[test]
fn openapi_and_docs_need_a_key_when_keys_are_configured() {
    const KEY: &str = "openapi-test-key-0123456789";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coderun"))
        .args(["config", "hash-key", KEY])
        .output()
        .expect("coderun config hash-key");
    let hash = String::from_utf8(out.stdout).expect("utf8");
    let s = Server::start_with(
        &format!("[auth]\nkey_sha256 = [\"{}\"]\n", hash.trim()),
        &[],
    );
    for path in ["/openapi.json", "/docs", "/docs/", "/docs/swagger-ui.css"] {
        let (status, body) = s.get(path);
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["code"], "unauthorized", "{path}: {body}");
        let resp = s
            .client()
            .get(s.url(path))
            .header("x-api-key", KEY)
            .send()
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let (status, spec) = spec_of(&s);
    assert_eq!(status, 200);
    for path in ["/openapi.json", "/docs", "/execute", "/languages", "/"] {
        let op = spec["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        assert!(op["responses"]["401"].is_object(), "{path}: {op:#}");
    }
}

fn spec_of(s: &Server) -> (u16, Value) {
    let resp = s
        .client()
        .get(s.url("/openapi.json"))
        .header("x-api-key", "openapi-test-key-0123456789")
        .send()
        .expect("GET");
    (resp.status().as_u16(), resp.json().expect("json"))
}
