//! Property test of the transpile boundary: token soup built from the constructs that drive
//! the parser's recursion and the depth scanner (brackets, template literals, regex-like
//! slashes, brace-less statements, namespaces, imports) never panics, never hangs, and is
//! either rejected by the depth check, reported as a syntax error, or transpiled.

use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "`",
    "${",
    "'",
    "\"",
    "/",
    "/*",
    "*/",
    "//",
    "\n",
    ";",
    ",",
    "=>",
    "=",
    "+",
    "!",
    "<",
    ">",
    "?",
    ":",
    ".",
    "...",
    "for(;;)",
    "if(x)",
    "else",
    "while(1)",
    "do",
    "namespace N",
    "enum E",
    "import x from './y'",
    "export",
    "class C",
    "constructor",
    "private",
    "async",
    "await",
    "function f",
    "x",
    "1",
    "0x1f",
    "/re[/]g",
    "\\",
    "#",
    "@dec",
];

fn soup() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mostly short, varied programs.
        prop::collection::vec(prop::sample::select(TOKENS), 0..200).prop_map(|t| t.join(" ")),
        // Long runs of one opener: deep nesting of every kind.
        (prop::sample::select(TOKENS), 500usize..5000).prop_map(|(t, n)| t.repeat(n)),
    ]
}

fn on_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(coderun_typescript::MIN_STACK_SIZE)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("the transpiler panicked")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics_or_hangs(src in soup()) {
        let started = std::time::Instant::now();
        let len = src.len();
        let result = on_big_stack(move || coderun_typescript::transpile(&src, "main.ts").map(|js| js.len()));
        prop_assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{len} bytes took {:?}", started.elapsed()
        );
        if let Err(e) = result {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
