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

/// The values of every `name="..."` attribute in `html`.
fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=\"");
    html.match_indices(&key)
        .filter_map(|(at, _)| {
            let rest = &html[at + key.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// A reference a page or stylesheet would load from the server that sent it: a path, not
/// `scheme:...` and not `//host/...` (`data:` URLs load nothing).
fn same_origin(reference: &str) -> bool {
    let scheme = reference
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && !s.contains(['/', '?', '#']));
    !reference.starts_with("//") && !reference.starts_with("\\\\") && !scheme
}

/// The value of `"key": value` in the Swagger UI initializer's config object, as JSON.
fn init_setting(init: &str, key: &str) -> Option<Value> {
    let at = init.find(&format!("\"{key}\":"))?;
    let rest = init[at + key.len() + 3..].trim_start();
    let end = rest.find([',', '\n']).unwrap_or(rest.len());
    Some(
        serde_json::from_str(rest[..end].trim()).unwrap_or_else(|e| {
            panic!("{key} is not a JSON value in the initializer ({e}): {init}")
        }),
    )
}

/// What a browser loads for `/docs` all comes from the server itself (issue: the bundled
/// Swagger UI fetched a validator badge from validator.swagger.io, sending it the spec's URL,
/// whenever the page was not served from localhost). No headless browser here: a static check
/// of everything the page and its scripts would fetch, as the real server serves it.
#[test]
fn docs_loads_nothing_from_another_host() {
    let s = shared();
    let get = |path: &str| {
        let resp = s.client().get(s.url(path)).send().expect("GET");
        assert_eq!(resp.status().as_u16(), 200, "GET {path}");
        resp.text().expect("body")
    };
    let html = get("/docs/");
    // Every asset of the page: same origin, and served.
    let assets: Vec<&str> = attributes(&html, "src")
        .into_iter()
        .chain(attributes(&html, "href"))
        .collect();
    assert!(
        assets.len() >= 5,
        "too few assets found: {assets:?} in {html}"
    );
    assert!(
        !html.contains("@import") && !html.contains("url("),
        "{html}"
    );
    let mut files = std::collections::BTreeMap::new();
    for a in &assets {
        assert!(same_origin(a), "/docs/ loads {a} from another host");
        let path = format!("/docs/{}", a.trim_start_matches("./"));
        files.insert(path.clone(), get(&path));
    }
    // Stylesheets: every url(...) is a data: URL or a path here; no @import.
    for (path, text) in files.iter().filter(|(p, _)| p.ends_with(".css")) {
        assert!(!text.contains("@import"), "{path} imports a stylesheet");
        for (at, _) in text.match_indices("url(") {
            let value = text[at + 4..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with("data:") || same_origin(value.split(')').next().unwrap_or("")),
                "{path} loads {} from another host",
                &value[..value.len().min(80)]
            );
        }
    }
    // Source maps a browser's developer tools would fetch: paths here.
    for (path, text) in &files {
        for (at, m) in text.match_indices("sourceMappingURL=") {
            let value = text[at + m.len()..].split_whitespace().next().unwrap_or("");
            assert!(same_origin(value), "{path}: source map {value}");
        }
    }
    // The initializer: the spec comes from here, the page's query string cannot point it
    // elsewhere, no config is fetched, and no string in it names another host.
    let init = &files["/docs/swagger-initializer.js"];
    assert!(init.contains("SwaggerUIBundle("), "{init}");
    assert!(!init.contains("://") && !init.contains("\"//"), "{init}");
    assert_eq!(
        init_setting(init, "url"),
        Some(json!("/openapi.json")),
        "{init}"
    );
    assert_eq!(
        init_setting(init, "queryConfigEnabled"),
        Some(json!(false)),
        "{init}"
    );
    for key in ["configUrl", "urls", "oauth2RedirectUrl"] {
        assert_eq!(init_setting(init, key), None, "{key} in {init}");
    }
    // The validator is off: the bundle the page loads treats the initializer's value as "no
    // validation" (its default is swagger.io's online validator).
    let bundle = &files["/docs/swagger-ui-bundle.js"];
    assert!(bundle.contains("https://validator.swagger.io/validator"));
    let check = bundle
        .find("function requiresValidationURL(")
        .map(|at| &bundle[at..at + bundle[at..].find('}').unwrap_or(0)])
        .expect("the bundle's requiresValidationURL");
    match init_setting(init, "validatorUrl") {
        // null: the check begins by refusing any falsy URL.
        Some(Value::Null) => assert!(check.contains("return!(!"), "{check}"),
        Some(Value::String(v)) => assert!(check.contains(&format!("\"{v}\"===")), "{v}: {check}"),
        other => panic!("validatorUrl is {other:?}: the validator badge loads from swagger.io"),
    }
    // The spec: "Try it out" calls its servers, and the UI fetches any $ref outside it.
    let spec = spec();
    for server in spec["servers"].as_array().into_iter().flatten() {
        let url = server["url"].as_str().unwrap_or("");
        assert!(same_origin(url), "the spec lists server {url}");
    }
    let text = spec.to_string();
    for (at, m) in text.match_indices("\"$ref\":\"") {
        let target = &text[at + m.len()..];
        assert!(
            target.starts_with('#'),
            "external $ref: {}",
            &target[..target.len().min(80)]
        );
    }
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
    let s = Server::start_with(
        &format!("[auth]\nkey_sha256 = [\"{}\"]\n", hash_key(KEY)),
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

// ---------------------------------------------------------------------------------------
// The spec against the server's real answers: every status each route can give is
// documented with a typed schema, every `$ref` resolves, and real bodies validate.
// ---------------------------------------------------------------------------------------

/// The statuses each route can answer: the guard's (401 wherever a key can be required, 429
/// wherever the rate limit applies, which is there too since failed key attempts are
/// limited, 504 everywhere) and the route's own.
fn answerable_statuses(path: &str) -> Vec<&'static str> {
    let own: &[&str] = match path {
        "/" | "/languages" | "/openapi.json" => &["200"],
        "/health" => &["200", "503"],
        "/livez" => &["200"],
        "/metrics" => &["200"],
        "/execute" => &["200", "400", "413", "422", "500", "503"],
        "/docs" => &["303"],
        "/docs/" => &["200", "500"],
        "/docs/{file}" => &["200", "404", "500"],
        other => panic!("no expectations for {other}; add them here"),
    };
    let mut all: Vec<&str> = own.to_vec();
    if path != "/livez" {
        all.push("401");
        all.push("429");
    }
    all.push("504");
    all.sort();
    all
}

/// The documented response of `method path` for `status`.
#[track_caller]
fn documented<'a>(spec: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let resp = &spec["paths"][path][method]["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path} answered {status}, which is not documented: {:#}",
        spec["paths"][path][method]["responses"]
    );
    resp
}

/// Does the documented media type (or range, `*/*`, `text/*`) cover `actual`?
fn media_matches(documented: &str, actual: &str) -> bool {
    let essence = |t: &str| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let (doc, act) = (essence(documented), essence(actual));
    doc == act
        || doc == "*/*"
        || doc
            .strip_suffix("/*")
            .is_some_and(|main| act.split('/').next() == Some(main))
}

/// The schema documented for a `status` answer of `method path` with content type `ctype`.
#[track_caller]
fn documented_schema<'a>(
    spec: &'a Value,
    path: &str,
    method: &str,
    status: u16,
    ctype: &str,
) -> &'a Value {
    let content = documented(spec, path, method, status)["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no content documented"));
    content
        .iter()
        .find(|(media, _)| media_matches(media, ctype))
        .map(|(_, m)| &m["schema"])
        .unwrap_or_else(|| {
            panic!(
                "{method} {path} {status}: {ctype} is not a documented content type: {:?}",
                content.keys()
            )
        })
}

/// Checks a real answer against the spec: the status is documented, the content type is, and
/// a JSON body validates against the schema.
#[track_caller]
/// [`assert_answer_matches_spec`] on a whole response; returns its status.
fn response_matches_spec(
    spec: &Value,
    path: &str,
    method: &str,
    resp: reqwest::blocking::Response,
) -> u16 {
    let (status, ctype, body, _) = parts(resp);
    assert_answer_matches_spec(spec, path, method, status, &ctype, &body);
    status
}

fn assert_answer_matches_spec(
    spec: &Value,
    path: &str,
    method: &str,
    status: u16,
    ctype: &str,
    body: &str,
) {
    let schema = documented_schema(spec, path, method, status, ctype);
    let value = if ctype.starts_with("application/json") {
        serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"))
    } else {
        Value::String(body.to_string())
    };
    if let Err(errors) = validate(spec, schema, &value) {
        panic!(
            "{method} {path} {status} does not match its schema {schema}:\n  {}\nbody: {}",
            errors.join("\n  "),
            brief(&value)
        );
    }
}

/// Validates `value` against an OpenAPI 3.1 schema of this document: `$ref`, `type` (one or a
/// list), `enum`, `oneOf`/`anyOf`/`allOf`, `required`, `properties`, `additionalProperties`,
/// `items`, `minimum`. Stricter than JSON Schema in one way: an object schema with
/// `properties` and no `additionalProperties` refuses undocumented properties (a body field
/// missing from the spec is drift).
fn validate(spec: &Value, schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    check(spec, schema, value, "$", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        match r.strip_prefix('#').and_then(|p| spec.pointer(p)) {
            Some(target) => check(spec, target, value, at, errors),
            None => errors.push(format!("{at}: unresolvable $ref {r}")),
        }
        return;
    }
    let matches = |s: &Value| {
        let mut sub = Vec::new();
        check(spec, s, value, at, &mut sub);
        sub
    };
    if let Some(alts) = schema["oneOf"].as_array() {
        let results: Vec<Vec<String>> = alts.iter().map(matches).collect();
        let ok = results.iter().filter(|e| e.is_empty()).count();
        if ok != 1 {
            errors.push(format!(
                "{at}: matches {ok} of the oneOf alternatives, not exactly one ({})",
                results
                    .iter()
                    .map(|e| e.join("; "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }
    if let Some(alts) = schema["anyOf"].as_array() {
        let results: Vec<Vec<String>> = alts.iter().map(matches).collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(format!("{at}: matches none of anyOf ({results:?})"));
        }
    }
    for s in schema["allOf"].as_array().into_iter().flatten() {
        check(spec, s, value, at, errors);
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let is = |t: &str| match t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("{at}: unknown schema type {other}"),
        };
        if !types.iter().any(|t| is(t)) {
            errors.push(format!("{at}: {} is not of type {types:?}", brief(value)));
            return;
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64()) {
        if n < min {
            errors.push(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let Value::Object(obj) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                errors.push(format!("{at}: required property {name:?} is missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (name, v) in obj {
            let here = format!("{at}.{name}");
            match (
                props.and_then(|p| p.get(name)),
                &schema["additionalProperties"],
            ) {
                (Some(s), _) => check(spec, s, v, &here, errors),
                (None, Value::Bool(false)) => {
                    errors.push(format!("{here}: not allowed (additionalProperties: false)"))
                }
                (None, extra) if extra.is_object() => check(spec, extra, v, &here, errors),
                (None, Value::Null) if props.is_some() => {
                    errors.push(format!("{here}: not in the schema's properties"))
                }
                _ => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(spec, item_schema, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Is this schema a free-form value (`{}`, or an object with nothing said about its
/// contents)?
fn free_form(schema: &Value) -> bool {
    let typed = ["$ref", "oneOf", "anyOf", "allOf", "enum", "const"]
        .iter()
        .any(|k| schema.get(k).is_some());
    let object_or_untyped = match &schema["type"] {
        Value::Null => true,
        Value::String(t) => t == "object",
        Value::Array(ts) => ts.contains(&json!("object")),
        _ => false,
    };
    !typed
        && object_or_untyped
        && schema.get("properties").is_none()
        && schema.get("additionalProperties").is_none()
}

/// Every free-form schema reachable from `schema`, by location (each component once).
fn free_forms(
    spec: &Value,
    schema: &Value,
    at: String,
    seen: &mut std::collections::BTreeSet<String>,
    found: &mut Vec<String>,
) {
    if let Some(r) = schema["$ref"].as_str() {
        if seen.insert(r.to_string()) {
            if let Some(target) = r.strip_prefix('#').and_then(|p| spec.pointer(p)) {
                free_forms(spec, target, r.to_string(), seen, found);
            }
        }
        return;
    }
    if free_form(schema) {
        found.push(at.clone());
    }
    for (name, s) in schema["properties"].as_object().into_iter().flatten() {
        free_forms(spec, s, format!("{at}/properties/{name}"), seen, found);
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            free_forms(spec, &schema[key], format!("{at}/{key}"), seen, found);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, s) in schema[key].as_array().into_iter().flatten().enumerate() {
            free_forms(spec, s, format!("{at}/{key}/{i}"), seen, found);
        }
    }
}

/// Every `$ref` anywhere in `v`, with where it is.
fn refs(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push((at.clone(), r.clone())),
                    _ => refs(x, format!("{at}/{k}"), out),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The only free-form schemas allowed: the parts of the OpenAPI document whose schema is the
/// OpenAPI specification itself (no struct of ours describes them).
const FREE_FORM_ALLOWED: [&str; 2] = [
    "#/components/schemas/OpenApiDocument/properties/paths",
    "#/components/schemas/OpenApiDocument/properties/components",
];

#[test]
fn every_status_each_route_can_answer_is_documented_with_a_typed_schema() {
    let spec = spec();
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for (path, method) in ROUTES {
        let responses = spec["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        let mut documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        documented.sort();
        assert_eq!(
            documented,
            answerable_statuses(path),
            "{method} {path}: documented statuses differ from the ones it can answer"
        );
        for (code, resp) in responses {
            if code.starts_with('3') {
                // A redirect has no body; it must say where it goes.
                assert!(resp.get("content").is_none(), "{path} {code}: {resp:#}");
                assert!(
                    resp["headers"]["Location"].is_object(),
                    "{path} {code}: {resp:#}"
                );
                continue;
            }
            let content = resp["content"]
                .as_object()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| panic!("{method} {path} {code}: no content: {resp:#}"));
            for (media, m) in content {
                let schema = &m["schema"];
                assert!(
                    schema.is_object() && !free_form(schema),
                    "{method} {path} {code} {media}: untyped schema {schema}"
                );
                if code.starts_with('4') || code.starts_with('5') {
                    let is_error_body = schema["$ref"] == "#/components/schemas/ErrorBody";
                    // /health's 503 is a health body, not an error.
                    let is_health = path == "/health" && code == "503";
                    assert!(
                        is_error_body || is_health,
                        "{method} {path} {code}: not the error body: {schema}"
                    );
                    assert_eq!(media, "application/json", "{method} {path} {code}");
                }
                free_forms(
                    &spec,
                    schema,
                    format!("{path} {method} {code} {media}"),
                    &mut seen,
                    &mut found,
                );
            }
            if code == "401" {
                assert!(
                    resp["headers"]["WWW-Authenticate"].is_object(),
                    "{path}: {resp:#}"
                );
            }
            if code == "429" {
                assert!(
                    resp["headers"]["Retry-After"].is_object(),
                    "{path}: {resp:#}"
                );
            }
        }
    }
    let body =
        &spec["paths"]["/execute"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    free_forms(
        &spec,
        body,
        "POST /execute request".into(),
        &mut seen,
        &mut found,
    );
    found.retain(|f| !FREE_FORM_ALLOWED.contains(&f.as_str()));
    assert!(found.is_empty(), "free-form schemas: {found:#?}");
    // The service routes' bodies are the structs the handlers serialize.
    for (path, status, schema) in [
        ("/", "200", "ServiceInfo"),
        ("/livez", "200", "Liveness"),
        ("/languages", "200", "LanguageList"),
        ("/health", "200", "HealthReport"),
        ("/health", "503", "HealthBody"),
        ("/openapi.json", "200", "OpenApiDocument"),
    ] {
        assert_eq!(
            spec["paths"][path]["get"]["responses"][status]["content"]["application/json"]
                ["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "GET {path} {status}"
        );
    }
    // 503 from /health is either variant, told apart by `status`.
    let body = &spec["components"]["schemas"]["HealthBody"];
    let variants: Vec<&Value> = body["oneOf"].as_array().unwrap().iter().collect();
    assert_eq!(
        variants,
        [
            &json!({"$ref": "#/components/schemas/HealthReport"}),
            &json!({"$ref": "#/components/schemas/HealthNotReady"})
        ],
        "{body:#}"
    );
}

#[test]
fn every_ref_in_the_spec_resolves() {
    let spec = spec();
    let mut all = Vec::new();
    refs(&spec, "#".into(), &mut all);
    assert!(all.len() > 20, "suspiciously few $refs: {all:?}");
    for (at, r) in &all {
        let target = r.strip_prefix('#').and_then(|p| spec.pointer(p));
        assert!(
            target.is_some_and(Value::is_object),
            "{at}: $ref {r} does not resolve"
        );
    }
    // And every schema in components is used somewhere.
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        let r = format!("#/components/schemas/{name}");
        assert!(
            all.iter().any(|(_, x)| *x == r),
            "{name} is never referenced"
        );
    }
}

/// A client that does not follow redirects (to see the 303 itself).
fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

/// GET `url_path`, returning (status, content type, body text, headers).
fn fetch(
    client: &reqwest::blocking::Client,
    s: &Server,
    url_path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String, reqwest::header::HeaderMap) {
    let mut req = client.get(s.url(url_path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    parts(req.send().expect("GET"))
}

/// A response as (status, content type, body text, headers).
fn parts(resp: reqwest::blocking::Response) -> (u16, String, String, reqwest::header::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let ctype = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, resp.text().expect("body"), headers)
}

#[test]
fn real_answers_of_every_get_route_match_the_spec() {
    let spec = spec();
    let s = shared();
    let client = no_redirects();
    for (path, method) in ROUTES.iter().filter(|(_, m)| *m == "get") {
        let url_path = path.replace("{file}", "swagger-ui.css");
        let (status, ctype, body, headers) = fetch(&client, s, &url_path, &[]);
        assert!(
            [200, 303].contains(&status),
            "GET {url_path}: {status} {body}"
        );
        if status == 303 {
            documented(&spec, path, method, status);
            assert_eq!(headers["location"], "/docs/", "GET {path}");
            continue;
        }
        assert_answer_matches_spec(&spec, path, method, status, &ctype, &body);
        assert!(!body.is_empty(), "GET {url_path}: empty body");
    }
    // The documented errors a plain server gives for GETs and POSTs.
    let (status, ctype, body, _) = fetch(&client, s, "/docs/no-such-file.js", &[]);
    assert_eq!(status, 404);
    assert_answer_matches_spec(&spec, "/docs/{file}", "get", status, &ctype, &body);
    for (body, want) in [
        (
            br#"{"language": "python", "code": "print(1)"}"#.to_vec(),
            200,
        ),
        (b"{}".to_vec(), 422),
        (br#"{"language": "cobol", "code": "x"}"#.to_vec(), 422),
        (b"{not json".to_vec(), 400),
        (vec![b' '; 5 << 20], 413),
    ] {
        // On the wire: the server may answer 413 before the whole body is sent.
        let a = crate::post_on_the_wire(s, "/execute", &body);
        assert_eq!(a.status, want, "{}", a.body);
        assert_answer_matches_spec(
            &spec,
            "/execute",
            "post",
            a.status,
            &a.content_type,
            &a.body,
        );
    }
}

/// The checker itself: bodies that break the schema in each way are refused (so the test
/// above can fail).
#[test]
fn the_schema_checker_refuses_bodies_that_break_the_schema() {
    let spec = spec();
    let (status, health) = shared().get("/health");
    assert_eq!(status, 200, "{health}");
    let report = json!({"$ref": "#/components/schemas/HealthReport"});
    let any_health = json!({"$ref": "#/components/schemas/HealthBody"});
    assert_eq!(validate(&spec, &report, &health), Ok(()));
    assert_eq!(validate(&spec, &any_health, &health), Ok(()));
    let not_ready = json!({"status": "draining", "backend": "linux", "running": 0, "queued": 0});
    assert_eq!(validate(&spec, &any_health, &not_ready), Ok(()));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut h = health.clone();
        f(&mut h);
        h
    };
    for (what, body) in [
        (
            "missing required",
            broken(&|h| {
                h.as_object_mut().unwrap().remove("backend");
            }),
        ),
        ("wrong type", broken(&|h| h["running"] = json!("0"))),
        ("negative count", broken(&|h| h["queued"] = json!(-1))),
        (
            "float for integer",
            broken(&|h| h["checked_at"] = json!(1.5)),
        ),
        ("not in enum", broken(&|h| h["status"] = json!("fine"))),
        (
            "null not allowed",
            broken(&|h| h["sandbox"]["ok"] = Value::Null),
        ),
        (
            "nested required",
            broken(&|h| {
                h["sandbox"].as_object_mut().unwrap().remove("error");
            }),
        ),
        (
            "bad array item",
            broken(&|h| h["languages"][0]["aliases"] = json!([1])),
        ),
        (
            "bad map value",
            broken(&|h| h["pools"] = json!({"python/run": "two"})),
        ),
        ("undocumented field", broken(&|h| h["extra"] = json!(1))),
        ("not an object", json!([health.clone()])),
    ] {
        assert!(
            validate(&spec, &report, &body).is_err(),
            "{what}: accepted {}",
            brief(&body)
        );
        assert!(
            validate(&spec, &any_health, &body).is_err(),
            "{what}: accepted by oneOf"
        );
    }
    // oneOf: the not-ready variant with a report's status matches neither.
    let confused = json!({"status": "healthy", "backend": "linux", "running": 0, "queued": 0});
    assert!(validate(&spec, &any_health, &confused).is_err());
    assert!(validate(
        &spec,
        &json!({"$ref": "#/components/schemas/Nope"}),
        &json!({})
    )
    .is_err());
    // And the free-form detector.
    assert!(free_form(&json!({})));
    assert!(free_form(&json!({"type": "object", "description": "x"})));
    assert!(!free_form(
        &json!({"type": "object", "additionalProperties": {"type": "string"}})
    ));
    assert!(!free_form(
        &json!({"$ref": "#/components/schemas/ErrorBody"})
    ));
    assert!(!free_form(&json!({"type": "string"})));
}

/// A server with keys, a rate limit of one request a second and a 1 s deadline: every route
/// answers 401 without a key exactly where the spec documents 401, 429 past the budget (of
/// the key, or of a client without a valid key) exactly where it documents 429 (with a
/// positive Retry-After), and the 401, 429 and 504 bodies match their schemas. The keyless
/// requests name a fresh client per route through `X-Forwarded-For` (the test is the trusted
/// proxy), so each route's first one is within its budget.
#[test]
fn guard_answers_match_the_spec_route_by_route() {
    const LIMITED: &str = "openapi-limited-key-0123456789";
    const SLOW: &str = "openapi-slow-key-0123456789";
    let s = Server::start_with(
        &format!(
            "[auth]\nkey_sha256 = [\"{}\", \"{}\"]\nprotect_health = true\nprotect_metrics = true\n\
             [rate_limit]\nenabled = true\nper_second = 1\nburst = 1\n\
             trusted_proxies = [\"127.0.0.1\"]\n\
             [server]\nrequest_deadline_s = 1\n",
            hash_key(LIMITED),
            hash_key(SLOW)
        ),
        &[],
    );
    let spec = spec();
    let client = no_redirects();
    let send = |path: &str, method: &str, key: Option<&str>, from: Option<&str>| {
        let url = s.url(&path.replace("{file}", "swagger-ui.css"));
        let mut req = match method {
            "get" => client.get(url),
            "post" => client.post(url).body("{}"),
            m => panic!("{m}"),
        };
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(ip) = from {
            req = req.header("x-forwarded-for", ip);
        }
        parts(req.send().expect("send"))
    };
    for (i, (path, method)) in ROUTES.into_iter().enumerate() {
        let documents = |code: &str| spec["paths"][path][method]["responses"][code].is_object();
        let who = format!("198.51.100.{}", i + 1);
        let (status, ctype, body, headers) = send(path, method, None, Some(&who));
        if documents("401") {
            assert_eq!(status, 401, "{method} {path} without a key: {body}");
            assert_eq!(headers["www-authenticate"], "Bearer");
            assert_answer_matches_spec(&spec, path, method, status, &ctype, &body);
        } else {
            assert_ne!(status, 401, "{method} {path} answered an undocumented 401");
        }
        // One request a second: a few in a row must hit the limit where it applies, with
        // the key or (the same client again) without one.
        let mut answers = vec![send(path, method, None, Some(&who))];
        answers.extend((0..4).map(|_| send(path, method, Some(LIMITED), None)));
        let limited = answers.iter().find(|a| a.0 == 429);
        match (documents("429"), limited) {
            (true, Some((status, ctype, body, headers))) => {
                assert_answer_matches_spec(&spec, path, method, *status, ctype, body);
                let wait = headers["retry-after"].to_str().unwrap();
                assert!(
                    wait.parse::<u64>().is_ok_and(|w| w >= 1),
                    "{path}: Retry-After {wait:?}"
                );
            }
            (true, None) => panic!("{method} {path}: never rate limited"),
            (false, Some(a)) => panic!("{method} {path}: undocumented 429: {}", a.2),
            (false, None) => {}
        }
    }
    let resp = client
        .post(s.url("/execute"))
        .header("x-api-key", SLOW)
        .json(&json!({"language": "python", "code": "import time\ntime.sleep(3)", "timeout": 5}))
        .send()
        .expect("POST");
    assert_eq!(response_matches_spec(&spec, "/execute", "post", resp), 504);
}

/// While a server drains, /health's 503 (the not-ready variant) and /execute's 503 match the
/// spec.
#[test]
fn draining_answers_match_the_spec() {
    let s = Server::start_with("[server]\nshutdown_grace_s = 30\n", &[]);
    let spec = spec();
    let (done, _) = sigterm_during_a_run(&s, || {
        let (status, ctype, body, _) = fetch(s.client(), &s, "/health", &[]);
        assert_eq!(status, 503, "{body}");
        assert_answer_matches_spec(&spec, "/health", "get", status, &ctype, &body);
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "draining", "{health}");
        let not_ready = json!({"$ref": "#/components/schemas/HealthNotReady"});
        assert_eq!(validate(&spec, &not_ready, &health), Ok(()));
        let resp = s
            .client()
            .post(s.url("/execute"))
            .json(&json!({"language": "python", "code": "print(1)"}))
            .send()
            .expect("POST during drain");
        assert_eq!(response_matches_spec(&spec, "/execute", "post", resp), 503);
    });
    assert_eq!(done["status"], "ok");
}
