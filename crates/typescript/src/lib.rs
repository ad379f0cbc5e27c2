//! TypeScript → CommonJS transpilation for coderun, built on [oxc].
//!
//! [`transpile`] strips types (no type checking), lowers TypeScript-only
//! runtime constructs (enums, `const enum`, namespaces, parameter properties,
//! `import x = require()`, `export =`) and rewrites ES module syntax to
//! CommonJS, so that the output runs directly as a `.js` file under Node in a
//! directory whose `package.json` says `{"type":"commonjs"}`. Sibling files are
//! transpiled separately (`util.ts` → `util.js`), so `import … from "./util"`
//! resolves through `require("./util")`.
//!
//! # Module output
//!
//! oxc has no CommonJS module transform, so this crate rewrites the AST
//! itself (see `cjs.rs`), following TypeScript's `module: commonjs` with
//! `esModuleInterop`:
//!
//! * imports are hoisted into `require()` calls at the top; default and
//!   namespace imports of modules without `__esModule` (Node builtins, plain
//!   CommonJS) get the module itself as `default`;
//! * references to imported bindings become member accesses on the required
//!   module (`(0, _util.f)(x)`), so imports are live bindings;
//! * exports are getters on `exports` (live as well), plus `__esModule`;
//! * `import(x)` becomes a promise of `require(x)` (Node's own dynamic import
//!   would need file extensions).
//!
//! Not supported: top-level `await`, `import.meta`, decorators (left as is,
//! which Node 20 rejects), JSX runtime transforms.
//!
//! Namespaces are lowered by oxc; references to members that another
//! declaration of a merged namespace exports, and to exported namespace
//! variables, are first rewritten to `N.member` as tsc does (see
//! `namespaces.rs`).
//!
//! # Source maps
//!
//! Every output ends with an inline source map
//! (`//# sourceMappingURL=data:application/json;base64,…`) whose `sources`
//! is the file name of the input (without directories: the `.js` file is
//! meant to be written next to the `.ts` one) and which has no
//! `sourcesContent`. Run Node with `--enable-source-maps` to get stack traces
//! that name the TypeScript files, lines and columns.
//!
//! # Stack usage
//!
//! oxc's parser, semantic analysis, transformer and code generator are
//! recursive. [`transpile`] first calls [`check_depth`] with
//! [`DEFAULT_MAX_DEPTH`] to reject absurdly nested input before any of that
//! runs, but legitimate input up to that depth still needs a deep stack:
//! **call [`transpile`] on a thread with at least [`MIN_STACK_SIZE`]
//! (64 MiB) of stack**, e.g.
//!
//! ```no_run
//! let js = std::thread::Builder::new()
//!     .stack_size(coderun_typescript::MIN_STACK_SIZE)
//!     .spawn(|| coderun_typescript::transpile("let x: number = 1;", "main.ts"))
//!     .expect("spawn")
//!     .join()
//!     .expect("transpiler thread panicked");
//! ```
//!
//! [oxc]: https://oxc.rs

mod cjs;
mod depth;
mod namespaces;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use oxc_allocator::Allocator;
use oxc_codegen::{Codegen, CodegenOptions};
use oxc_parser::{ParseOptions, Parser};
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;
use oxc_transformer::{EnvOptions, Module, TransformOptions, Transformer};

pub use depth::check_depth;

/// Nesting limit applied by [`transpile`] before parsing.
pub const DEFAULT_MAX_DEPTH: usize = 1000;

/// Minimum stack size for a thread that calls [`transpile`].
pub const MIN_STACK_SIZE: usize = 64 * 1024 * 1024;

/// At most this many diagnostics are reported in [`TranspileError::Syntax`].
const MAX_DIAGNOSTICS: usize = 20;

/// Why a source file could not be transpiled.
#[derive(Debug, thiserror::Error)]
pub enum TranspileError {
    /// The source has syntax errors. `diagnostics` is compiler-style text,
    /// one `file:line:col: error: message` entry per problem (followed by the
    /// offending source line and a caret), meant to be shown to the user.
    #[error("{diagnostics}")]
    Syntax { diagnostics: String },

    /// The source nests brackets or statements deeper than allowed; it was
    /// rejected before parsing (the parser is recursive).
    #[error("source nesting depth exceeds the limit of {max} (reached {depth})")]
    TooDeep { depth: usize, max: usize },

    /// [`check_depth`] found a bracket that does not match (1-based line and
    /// column). [`transpile`] reports this as [`TranspileError::Syntax`].
    #[error("{line}:{column}: {message}")]
    Unbalanced {
        line: usize,
        column: usize,
        message: String,
    },
}

/// Transpile TypeScript to CommonJS JavaScript that `node` runs directly (no
/// type checking).
///
/// `filename` is used for diagnostics, as the source name in the inline
/// source map (its last component) and to pick the dialect (`.tsx` enables
/// JSX, `.js`/`.mjs`/`.cjs` parse as JavaScript; anything else is
/// TypeScript). The output is always strict-mode CommonJS.
///
/// Run this on a thread with at least [`MIN_STACK_SIZE`] of stack (see the
/// crate documentation).
///
/// # Errors
///
/// [`TranspileError::TooDeep`] if the input nests deeper than
/// [`DEFAULT_MAX_DEPTH`], [`TranspileError::Syntax`] for syntax errors.
pub fn transpile(source: &str, filename: &str) -> Result<String, TranspileError> {
    match check_depth(source, DEFAULT_MAX_DEPTH) {
        Ok(()) => {}
        Err(TranspileError::Unbalanced {
            line,
            column,
            message,
        }) => {
            let mut diagnostics = format!("{filename}:{line}:{column}: error: {message}\n");
            push_excerpt(&mut diagnostics, source, line, column, None);
            return Err(TranspileError::Syntax {
                diagnostics: diagnostics.trim_end().to_owned(),
            });
        }
        Err(e) => return Err(e),
    }
    // Spans are u32 offsets.
    if u32::try_from(source.len()).is_err() {
        return Err(TranspileError::Syntax {
            diagnostics: format!("{filename}: error: source file is too large"),
        });
    }

    let source_type = source_type_for(filename);
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, source_type)
        .with_options(ParseOptions::default())
        .parse();
    if parsed.panicked || parsed.diagnostics.has_errors() {
        return Err(syntax_error(
            filename,
            source,
            parsed.diagnostics.errors(),
            parsed.panicked,
        ));
    }
    let mut program = parsed.program;

    // Scopes and symbols for the transformer; `check` also runs the syntax checks that the
    // parser leaves to semantic analysis.
    let analyse = |program: &oxc_ast::ast::Program<'_>, check: bool| {
        let semantic = SemanticBuilder::new()
            .with_check_syntax_error(check)
            .with_excess_capacity(2.0)
            .with_enum_eval(true)
            .build(program);
        if semantic.diagnostics.has_errors() {
            return Err(syntax_error(
                filename,
                source,
                semantic.diagnostics.errors(),
                false,
            ));
        }
        Ok(semantic.semantic.into_scoping())
    };
    let mut scoping = analyse(&program, true)?;

    // oxc's namespace transform does not resolve names across merged
    // namespace declarations; qualify such references first (see
    // `namespaces.rs`), then recompute the semantic data for the new AST.
    if namespaces::qualify_namespace_members(&allocator, &mut program, &scoping) {
        scoping = analyse(&program, false)?;
    }

    let options = TransformOptions {
        env: EnvOptions {
            module: Module::CommonJS,
            ..EnvOptions::default()
        },
        ..TransformOptions::default()
    };
    let transformed = Transformer::new(&allocator, Path::new(filename), &options)
        .build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(syntax_error(
            filename,
            source,
            transformed.diagnostics.errors(),
            false,
        ));
    }

    let prelude = cjs::rewrite(&allocator, &mut program, &transformed.scoping);
    // Emitted by hand below, before the prelude.
    program.directives.clear();
    program.hashbang = None;

    // The source map names the source relative to the generated file, which
    // is written next to it (`dir/util.ts` → `dir/util.js`), as a relative URL.
    let source_name = Path::new(filename)
        .file_name()
        .map_or(filename, |n| n.to_str().unwrap_or(filename));
    let source_name = PathBuf::from(url_escape(source_name));
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some(source_name),
            ..CodegenOptions::default()
        })
        .build(&program);
    let body = generated.code;
    let mut out = String::with_capacity(prelude.len() + 2 * body.len() + 64);
    out.push_str("\"use strict\";\n");
    out.push_str(&prelude);
    // Lines before the body, which the source map of the body must skip.
    let header_lines = out.bytes().filter(|&b| b == b'\n').count();
    out.push_str(&body);
    if let Some(map) = generated.map {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("//# sourceMappingURL=");
        out.push_str(&inline_source_map(map, header_lines));
        out.push('\n');
    }
    Ok(out)
}

/// `map` (of the code generator's output) as a `data:` URL, with its
/// generated lines moved down by `header_lines` and without the source text
/// (Node reads `.ts` files next to the `.js` ones when it shows a line).
fn inline_source_map(map: oxc_sourcemap::SourceMap<'_>, header_lines: usize) -> String {
    let offset = u32::try_from(header_lines).unwrap_or(u32::MAX);
    let mut parts = map.into_parts();
    parts.tokens = parts
        .tokens
        .iter()
        .map(|t| {
            oxc_sourcemap::Token::new(
                t.get_dst_line().saturating_add(offset),
                t.get_dst_col(),
                t.get_src_line(),
                t.get_src_col(),
                t.get_source_id(),
                t.get_name_id(),
            )
        })
        .collect();
    parts.token_chunks = None;
    parts.source_contents = parts.sources.iter().map(|_| None).collect();
    oxc_sourcemap::SourceMap::from_parts(parts).to_data_url()
}

/// `name` (a file name) as a relative URL: characters that would end or
/// change it are percent-encoded, and `./` keeps a `:` from making it look
/// like a scheme.
fn url_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    if name.contains(':') {
        out.push_str("./");
    }
    for c in name.chars() {
        if matches!(c, '#' | '?' | '%' | '\\') || c.is_ascii_control() {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn source_type_for(filename: &str) -> SourceType {
    let ext = Path::new(filename)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let base = match ext {
        "tsx" => SourceType::tsx(),
        "js" | "mjs" | "cjs" => SourceType::mjs(),
        "jsx" => SourceType::jsx(),
        _ => SourceType::ts(),
    };
    base.with_module(true)
}

fn syntax_error<'d>(
    filename: &str,
    source: &str,
    errors: impl Iterator<Item = &'d oxc_diagnostics::OxcDiagnostic>,
    panicked: bool,
) -> TranspileError {
    let mut diagnostics = String::new();
    let mut count = 0usize;
    for error in errors {
        count += 1;
        if count > MAX_DIAGNOSTICS {
            continue;
        }
        let mut labels: Vec<(usize, usize, Option<&str>)> = error
            .labels
            .iter()
            .map(|l| {
                let (line, column) = line_col(source, l.offset() as usize);
                (line, column, l.label())
            })
            .collect();
        // The header points at the primary label, else at the first one.
        let header = error.labels.iter().position(|l| l.primary()).unwrap_or(0);
        let message = &error.message;
        match labels.get(header) {
            Some(&(line, column, _)) => {
                let _ = writeln!(diagnostics, "{filename}:{line}:{column}: error: {message}");
            }
            None => {
                let _ = writeln!(diagnostics, "{filename}: error: {message}");
            }
        }
        labels.sort_by_key(|&(line, column, _)| (line, column));
        for (line, column, label) in labels {
            push_excerpt(&mut diagnostics, source, line, column, label);
        }
        if let Some(help) = &error.help {
            let _ = writeln!(diagnostics, "  = help: {help}");
        }
    }
    if count > MAX_DIAGNOSTICS {
        let _ = writeln!(
            diagnostics,
            "{filename}: note: {} more error(s) not shown",
            count - MAX_DIAGNOSTICS
        );
    }
    if count == 0 {
        let _ = writeln!(
            diagnostics,
            "{filename}: error: {}",
            if panicked {
                "unrecoverable syntax error"
            } else {
                "invalid source"
            }
        );
    }
    TranspileError::Syntax {
        diagnostics: diagnostics.trim_end().to_owned(),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Appends the source line `line` and a caret under `column` (both 1-based),
/// followed by `label`.
fn push_excerpt(out: &mut String, source: &str, line: usize, column: usize, label: Option<&str>) {
    let Some(text) = source.lines().nth(line.saturating_sub(1)) else {
        return;
    };
    // Keep the excerpt short for minified / generated sources.
    let skip = column.saturating_sub(60);
    let excerpt: String = text.chars().skip(skip).take(120).collect();
    let gutter = line.to_string();
    let _ = writeln!(out, "{gutter} | {excerpt}");
    let pad: String = text
        .chars()
        .skip(skip)
        .take(column.saturating_sub(1 + skip))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(
        out,
        "{} | {pad}^{}",
        " ".repeat(gutter.len()),
        label.map(|l| format!(" {l}")).unwrap_or_default()
    );
}
