//! Every API error: HTTP status, JSON `{"detail", "code"}`, and a detail that says what is
//! wrong.

use crate::common::*;
use crate::{job, parallel, post_on_the_wire};

struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Substrings the `detail` must contain.
    detail: Vec<String>,
}

fn case(name: &'static str, body: Value, status: u16, code: &'static str, detail: &[&str]) -> Case {
    raw_case(
        name,
        serde_json::to_vec(&body).unwrap(),
        status,
        code,
        detail,
    )
}

fn raw_case(
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    detail: &[&str],
) -> Case {
    Case {
        name,
        body,
        status,
        code,
        detail: detail.iter().map(|s| s.to_string()).collect(),
    }
}

/// A python request with `extra` merged in.
fn py(extra: Value) -> Value {
    let mut body = json!({"code": "print(1)", "language": "python"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn file(name: &str, content: &str) -> Value {
    json!({"name": name, "content": content})
}

fn check_all(cases: Vec<Case>) {
    let s = shared();
    parallel(
        cases
            .into_iter()
            .map(|c| {
                job(c.name, move || {
                    // On the wire: a body over the limit may be answered before it is sent.
                    let answer = post_on_the_wire(s, "/execute", &c.body);
                    let (status, body) = (answer.status, answer.json());
                    assert_eq!(status, c.status, "{body}");
                    assert_eq!(body["code"], c.code, "{body}");
                    let detail = body["detail"].as_str().unwrap_or_else(|| panic!("{body}"));
                    for part in &c.detail {
                        assert!(
                            detail.contains(part.as_str()),
                            "detail lacks {part:?}: {body}"
                        );
                    }
                    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
                    assert_eq!(keys, ["code", "detail"], "{body}");
                })
            })
            .collect(),
    );
}

#[test]
fn malformed_requests_are_422_invalid_request() {
    check_all(vec![
        case(
            "missing code",
            json!({"language": "python"}),
            422,
            "invalid_request",
            &["missing field `code`"],
        ),
        case(
            "missing language",
            json!({"code": "print(1)"}),
            422,
            "invalid_request",
            &["missing field `language`"],
        ),
        case(
            "language not a string",
            json!({"code": "print(1)", "language": 5}),
            422,
            "invalid_request",
            &["invalid type", "expected a string"],
        ),
        case(
            "code not a string",
            json!({"code": ["print(1)"], "language": "python"}),
            422,
            "invalid_request",
            &["invalid type"],
        ),
        case(
            "unknown field",
            py(json!({"bogus_field": 1})),
            422,
            "invalid_request",
            &["unknown field `bogus_field`"],
        ),
        case(
            "unknown field in a file",
            py(json!({"files": [{"name": "a.txt", "content": "", "mode": 7}]})),
            422,
            "invalid_request",
            &["unknown field `mode`"],
        ),
        case(
            "timeout as a string",
            py(json!({"timeout": "5"})),
            422,
            "invalid_request",
            &["invalid type"],
        ),
        case(
            "args not strings",
            py(json!({"args": [1, 2]})),
            422,
            "invalid_request",
            &["invalid type"],
        ),
        case(
            "negative memory_mb",
            py(json!({"memory_mb": -1})),
            422,
            "invalid_request",
            &["-1"],
        ),
        raw_case(
            "duplicate key",
            br#"{"code":"print(1)","code":"print(2)","language":"python"}"#.to_vec(),
            422,
            "invalid_request",
            &["duplicate field `code`"],
        ),
    ]);
}

#[test]
fn limits_out_of_range_are_422_invalid_request() {
    check_all(vec![
        case(
            "timeout 0",
            py(json!({"timeout": 0})),
            422,
            "invalid_request",
            &["timeout", "greater than 0"],
        ),
        case(
            "timeout negative",
            py(json!({"timeout": -1.5})),
            422,
            "invalid_request",
            &["timeout", "greater than 0"],
        ),
        case(
            "timeout 31",
            py(json!({"timeout": 31})),
            422,
            "invalid_request",
            &["timeout", "maximum of 30 s"],
        ),
        case(
            "timeout just over 30",
            py(json!({"timeout": 30.01})),
            422,
            "invalid_request",
            &["timeout", "maximum of 30 s"],
        ),
        case(
            "memory_mb 0",
            py(json!({"memory_mb": 0})),
            422,
            "invalid_request",
            &["memory_mb", "greater than 0"],
        ),
        case(
            "memory_mb 2048",
            py(json!({"memory_mb": 2048})),
            422,
            "invalid_request",
            &["memory_mb", "2048", "maximum of 1024"],
        ),
        case(
            "max_processes 0",
            py(json!({"max_processes": 0})),
            422,
            "invalid_request",
            &["max_processes"],
        ),
        case(
            "max_output_bytes 0",
            py(json!({"max_output_bytes": 0})),
            422,
            "invalid_request",
            &["max_output_bytes"],
        ),
        case(
            "max_processes 257",
            py(json!({"max_processes": 257})),
            422,
            "invalid_request",
            &["max_processes", "257", "maximum of 256"],
        ),
        case(
            "max_output_bytes over 16 MiB",
            py(json!({"max_output_bytes": (16 << 20) + 1})),
            422,
            "invalid_request",
            &["max_output_bytes", "16777217"],
        ),
        case(
            "typecheck on python",
            py(json!({"typecheck": true})),
            422,
            "invalid_request",
            &["typecheck", "python"],
        ),
    ]);
}

#[test]
fn oversized_inputs_are_422_invalid_request() {
    let big_code = format!("print(1)\n{}", "#".repeat(64 << 10));
    let args: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let files17: Vec<Value> = (0..17).map(|i| file(&format!("f{i}.txt"), "")).collect();
    check_all(vec![
        case(
            "code over 64 KiB",
            json!({"code": big_code, "language": "python"}),
            422,
            "invalid_request",
            &["code", "65545 bytes", "65536"],
        ),
        case(
            "stdin over 1 MiB",
            py(json!({"stdin": "x".repeat((1 << 20) + 1)})),
            422,
            "invalid_request",
            &["stdin", "1048577 bytes"],
        ),
        case(
            "17 files",
            py(json!({"files": files17})),
            422,
            "invalid_request",
            &["files", "17 files", "16"],
        ),
        case(
            "files over 1 MiB in all",
            py(json!({"files": [
                file("a.txt", &"a".repeat(600 << 10)),
                file("b.txt", &"b".repeat(600 << 10)),
            ]})),
            422,
            "invalid_request",
            &["files", "1228800 bytes"],
        ),
        case(
            "65 args",
            py(json!({"args": args})),
            422,
            "invalid_request",
            &["args", "65 arguments", "64"],
        ),
        case(
            "arg over 4 KiB",
            py(json!({"args": ["ok", "x".repeat(4097)]})),
            422,
            "invalid_request",
            &["args[1]"],
        ),
        case(
            "arg with NUL",
            py(json!({"args": ["a\u{0}b"]})),
            422,
            "invalid_request",
            &["args[0]", "NUL"],
        ),
    ]);
}

#[test]
fn bad_file_names_are_422_invalid_request() {
    let one = |name: &str| py(json!({"files": [file(name, "x")]}));
    check_all(vec![
        case(
            "parent dir",
            one("../x"),
            422,
            "invalid_request",
            &["files[0].name", "'..'"],
        ),
        case(
            "absolute",
            one("/etc/passwd"),
            422,
            "invalid_request",
            &["files[0].name", "absolute"],
        ),
        case(
            "empty component",
            one("a//b"),
            422,
            "invalid_request",
            &["files[0].name", "empty component"],
        ),
        case(
            "empty name",
            one(""),
            422,
            "invalid_request",
            &["files[0].name", "empty"],
        ),
        case(
            "dot dir inside",
            one("a/../../b"),
            422,
            "invalid_request",
            &["files[0].name"],
        ),
        case(
            "main.py taken",
            one("main.py"),
            422,
            "invalid_request",
            &["files[0].name", "main.py", "already used"],
        ),
        case(
            "duplicate entry",
            py(json!({"files": [file("a.py", ""), file("b.py", ""), file("a.py", "")]})),
            422,
            "invalid_request",
            &["files[2].name", "already used"],
        ),
        case(
            "file under main.py",
            one("main.py/x"),
            422,
            "invalid_request",
            &["files[0].name", "clashes"],
        ),
        case(
            "main.ts taken",
            json!({"code": "1", "language": "ts", "files": [file("main.ts", "")]}),
            422,
            "invalid_request",
            &["files[0].name", "main.ts"],
        ),
        case(
            "typescript package.json taken",
            json!({"code": "1", "language": "ts", "files": [file("package.json", "{}")]}),
            422,
            "invalid_request",
            &["files[0].name", "package.json"],
        ),
        case(
            "rust binary name taken",
            json!({"code": "fn main(){}", "language": "rust", "files": [file("main", "")]}),
            422,
            "invalid_request",
            &["files[0].name"],
        ),
    ]);
}

#[test]
fn unsupported_language_is_422_and_lists_the_supported_ones() {
    check_all(vec![
        case(
            "cobol",
            json!({"code": "DISPLAY 'HI'.", "language": "cobol"}),
            422,
            "unsupported_language",
            &["cobol", "python", "rust", "typescript"],
        ),
        case(
            "empty language",
            json!({"code": "1", "language": ""}),
            422,
            "unsupported_language",
            &["python, rust, typescript"],
        ),
        case(
            "javascript is not typescript",
            json!({"code": "console.log(1)", "language": "javascript"}),
            422,
            "unsupported_language",
            &["javascript"],
        ),
    ]);
}

#[test]
fn non_json_bodies_are_400_and_huge_bodies_413() {
    let mut huge = br#"{"code":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', (4 << 20) + 16));
    huge.extend_from_slice(br#"","language":"python"}"#);
    check_all(vec![
        raw_case(
            "not json",
            b"not json".to_vec(),
            400,
            "invalid_json",
            &["not valid JSON"],
        ),
        raw_case("empty body", Vec::new(), 400, "invalid_json", &["EOF"]),
        raw_case(
            "truncated",
            br#"{"code": "print(1)", "language""#.to_vec(),
            400,
            "invalid_json",
            &["not valid JSON"],
        ),
        raw_case(
            "trailing garbage",
            br#"{"code": "print(1)", "language": "python"} extra"#.to_vec(),
            400,
            "invalid_json",
            &["trailing"],
        ),
        raw_case(
            "invalid utf-8",
            b"{\"code\": \"\xff\", \"language\": \"python\"}".to_vec(),
            400,
            "invalid_json",
            &["not valid JSON"],
        ),
        raw_case("over 4 MiB", huge, 413, "body_too_large", &["limit"]),
    ]);
}

// Found by this suite and fixed (regression test): a JSON array is accepted as a request body: serde maps a sequence onto the struct's
// fields in order, so `["print(1)", "python"]` runs print(1) with status 200. The API's body is
// an object; anything else should be 422 invalid_request.
#[test]
fn a_json_array_is_not_a_request() {
    let (status, body) = shared().post_raw("/execute", br#"["print(1)", "python"]"#);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_request", "{body}");
}
