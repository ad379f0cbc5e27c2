//! The README against the code: its error table lists exactly the error codes the API can
//! send, each with its status; its request table names exactly the fields of `POST /execute`'s
//! body (from the served OpenAPI spec); its response table names exactly the fields of a real
//! response. Run alone with `cargo test -p coderun --test api docs::`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md is readable")
}

/// The rows of the README table whose header line is `header`, each split into its cells.
fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "README has no table `{header}`");
    lines
        .skip(1) // |---|---|
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The `backticked` names in a cell: "`stdout`, `stderr`" → stdout, stderr.
fn names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn status_number(name: &str) -> u16 {
    match name {
        "BAD_REQUEST" => 400,
        "UNAUTHORIZED" => 401,
        "NOT_FOUND" => 404,
        "METHOD_NOT_ALLOWED" => 405,
        "PAYLOAD_TOO_LARGE" => 413,
        "UNPROCESSABLE_ENTITY" => 422,
        "TOO_MANY_REQUESTS" => 429,
        "INTERNAL_SERVER_ERROR" => 500,
        "SERVICE_UNAVAILABLE" => 503,
        "GATEWAY_TIMEOUT" => 504,
        other => panic!("StatusCode::{other}: add it to this table"),
    }
}

/// Every (status, code) the API's source can send: each `StatusCode::NAME, "code"` in
/// crates/api/src, the shape of every `ApiError::new` call.
fn source_codes() -> BTreeSet<(u16, String)> {
    let dir = repo().join("crates/api/src");
    let mut codes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("crates/api/src is readable") {
        let path = entry.expect("a dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file is readable");
        for (at, _) in text.match_indices("StatusCode::") {
            let rest = &text[at + "StatusCode::".len()..];
            let name_end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(rest.len());
            let Some(after) = rest[name_end..].trim_start().strip_prefix(',') else {
                continue;
            };
            let Some(code) = after.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(end) = code.find('"') else { continue };
            codes.insert((status_number(&rest[..name_end]), code[..end].to_string()));
        }
    }
    codes
}

#[test]
fn the_readme_error_table_lists_every_code_the_api_sends_and_no_other() {
    let readme: BTreeSet<(u16, String)> = table(&readme(), "| status | code | when |")
        .iter()
        .map(|row| {
            let status = row[0]
                .parse::<u16>()
                .unwrap_or_else(|_| panic!("one status per row: {row:?}"));
            let code = names(&row[1]);
            assert_eq!(code.len(), 1, "one code per row: {row:?}");
            (status, code[0].clone())
        })
        .collect();
    let source = source_codes();
    assert!(
        source.len() >= 10,
        "the source scan found too few codes: {source:?}"
    );
    let missing: Vec<_> = source.difference(&readme).collect();
    let extra: Vec<_> = readme.difference(&source).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README error table: missing {missing:?}; not sent by the API {extra:?}"
    );
}

#[test]
fn the_readme_request_table_names_every_field_of_the_execute_body() {
    let readme: BTreeSet<String> = table(&readme(), "| field | type | notes |")
        .iter()
        .flat_map(|row| names(&row[0]))
        .collect();
    let (status, spec) = shared().get("/openapi.json");
    assert_eq!(status, 200, "{spec:#}");
    let properties = spec["components"]["schemas"]["ExecuteBody"]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no ExecuteBody properties in {spec:#}"));
    let body: BTreeSet<String> = properties.keys().cloned().collect();
    assert_eq!(readme, body, "README request table vs ExecuteBody");
}

#[test]
fn the_readme_response_table_names_every_field_of_a_real_response() {
    let readme: BTreeSet<String> = table(&readme(), "| field | meaning |")
        .iter()
        .flat_map(|row| names(&row[0]))
        .collect();
    for (language, code) in [("python", "print(1)"), ("rust", "fn main() {}")] {
        let r = shared().run(json!({"code": code, "language": language}));
        let fields: BTreeSet<String> = r
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {r}"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            readme, fields,
            "README response table vs a {language} response"
        );
    }
}
