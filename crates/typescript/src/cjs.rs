//! ESM → CommonJS rewrite on the oxc AST.
//!
//! oxc 0.146 has no CommonJS module transform (`Module::CommonJS` only affects
//! `import x = require()` / `export =`), so this module implements one, in the
//! spirit of TypeScript's `module: commonjs` + `esModuleInterop` output:
//!
//! * Every `import` / `export … from` becomes a `require()` in a *prelude*
//!   that runs before the module body (ES imports are hoisted, too).
//! * Imported bindings are not copied into locals: every reference to them is
//!   rewritten on the AST to a member access on the required module
//!   (`readFileSync(p)` → `(0, _fs.readFileSync)(p)`), so bindings stay live
//!   exactly like ES module bindings.
//! * Default / namespace imports go through `esModuleInterop`-style helpers:
//!   a module without `__esModule` (e.g. a Node builtin) is its own default.
//! * Exports are defined up front as enumerable getters on `exports`, so they
//!   are live too (`export let n = 0; n++` is observed by importers), and
//!   `exports.__esModule` is set so that other transpiled files see them as
//!   ES modules.
//!
//! The prelude is emitted as text (it only consists of fixed helpers,
//! `require` calls with escaped string literals and getter definitions that
//! name identifiers taken from the AST); everything else is printed by
//! `oxc_codegen` from the rewritten AST.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use oxc_allocator::{Allocator, ArenaVec, TakeIn};
use oxc_ast::ast::{
    Argument, BindingIdentifier, BindingPattern, CallExpression, Declaration,
    ExportDefaultDeclarationKind, Expression, IdentifierName, IdentifierReference,
    ImportDeclarationSpecifier, ModuleExportName, NumberBase, ObjectProperty, Program, Statement,
    TaggedTemplateExpression, VariableDeclarationKind, VariableDeclarator,
};
use oxc_ast::builder::AstBuilder;
use oxc_ast_visit::{walk_mut, VisitMut};
use oxc_semantic::{Scoping, SymbolId};
use oxc_span::{GetSpan, SPAN};

/// How a required module is wrapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Interop {
    /// `require(src)` as is (named imports only).
    None,
    /// `importDefault(require(src))` (default import only).
    Default,
    /// `importStar(require(src))` (namespace import, or default + named).
    Star,
}

/// What an imported binding is replaced with: `object` or `object.property`.
struct Replacement {
    object: String,
    property: Option<String>,
}

impl Replacement {
    /// The replacement as JavaScript source text (used in the prelude).
    fn to_js(&self) -> String {
        match &self.property {
            None => self.object.clone(),
            Some(p) => format!("{}{}", self.object, property_access(p)),
        }
    }
}

/// One line of the prelude that requires a module, in source order.
enum Require {
    /// `var <var> = <interop>(require(<source>));`
    Bind {
        var: String,
        source: String,
        interop: Interop,
    },
    /// `require(<source>);`
    SideEffect { source: String },
    /// `exportStar(require(<source>), exports);`
    ExportStar { source: String },
}

/// Fresh, collision-free identifier names.
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn new(scoping: &Scoping) -> Self {
        let mut used: HashSet<String> = scoping.symbol_names().map(str::to_owned).collect();
        used.extend(
            scoping
                .root_unresolved_references()
                .keys()
                .map(|k| k.as_str().to_owned()),
        );
        for reserved in ["exports", "require", "module", "__filename", "__dirname"] {
            used.insert(reserved.to_owned());
        }
        Self { used }
    }

    /// A fresh name derived from `base`, which need not be a valid identifier.
    fn fresh(&mut self, base: &str) -> String {
        let mut stem = String::from("_");
        for c in base.chars() {
            if c == '_' || c == '$' || c.is_ascii_alphanumeric() {
                stem.push(c);
            } else if !stem.ends_with('_') {
                stem.push('_');
            }
            if stem.len() >= 32 {
                break;
            }
        }
        let mut name = stem.clone();
        let mut n = 1u32;
        while self.used.contains(&name) {
            n += 1;
            name = format!("{stem}{n}");
        }
        self.used.insert(name.clone());
        name
    }

    /// A fresh name for a module variable, derived from the module specifier
    /// (`node:fs` → `_fs`, `./util.js` → `_util`).
    fn for_module(&mut self, source: &str) -> String {
        let last = source.rsplit(['/', ':', '\\']).next().unwrap_or(source);
        let stem = last.split('.').next().unwrap_or(last);
        if stem.is_empty() {
            self.fresh("mod")
        } else {
            self.fresh(stem)
        }
    }
}

/// Rewrites `program` in place from ES module syntax to CommonJS and returns
/// the prelude that must be printed before the program (after `"use strict"`).
///
/// `scoping` must be the scoping returned by the transformer for `program`.
pub(crate) fn rewrite<'a>(
    allocator: &'a Allocator,
    program: &mut Program<'a>,
    scoping: &Scoping,
) -> String {
    let ast = AstBuilder::new(allocator);
    let mut names = Names::new(scoping);
    let mut requires: Vec<Require> = Vec::new();
    let mut bindings: HashMap<SymbolId, Replacement> = HashMap::new();
    // (exported name, getter body as JS text); resolved after all imports are known.
    let mut exports: Vec<(String, ExportValue)> = Vec::new();
    let mut is_module = false;

    let old_body = std::mem::replace(&mut program.body, ArenaVec::new_in(&allocator));
    let mut body = ArenaVec::with_capacity_in(old_body.len(), &allocator);

    for stmt in old_body {
        match stmt {
            Statement::ImportDeclaration(decl) => {
                is_module = true;
                if decl.import_kind.is_type() {
                    continue;
                }
                let source = decl.source.value.as_str().to_owned();
                let specifiers: Vec<&ImportDeclarationSpecifier<'_>> = decl
                    .specifiers
                    .iter()
                    .flatten()
                    .filter(|s| match s {
                        ImportDeclarationSpecifier::ImportSpecifier(s) => !s.import_kind.is_type(),
                        _ => true,
                    })
                    .collect();
                if specifiers.is_empty() {
                    // `import "x"` / `import {} from "x"` run the module;
                    // `import { type T } from "x"` is elided entirely.
                    if decl.specifiers.as_ref().is_none_or(|all| all.is_empty()) {
                        requires.push(Require::SideEffect { source });
                    }
                    continue;
                }
                let mut has_default = false;
                let mut has_named = false;
                let mut has_namespace = false;
                for s in &specifiers {
                    match s {
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(_) => has_default = true,
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(_) => {
                            has_namespace = true;
                        }
                        ImportDeclarationSpecifier::ImportSpecifier(s) => {
                            if s.imported.name().as_str() == "default" {
                                has_default = true;
                            } else {
                                has_named = true;
                            }
                        }
                    }
                }
                let interop = if has_namespace || (has_default && has_named) {
                    Interop::Star
                } else if has_default {
                    Interop::Default
                } else {
                    Interop::None
                };
                let var = names.for_module(&source);
                for s in &specifiers {
                    let (local, property) = match s {
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                            (&s.local, Some("default".to_owned()))
                        }
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => (&s.local, None),
                        ImportDeclarationSpecifier::ImportSpecifier(s) => {
                            (&s.local, Some(s.imported.name().as_str().to_owned()))
                        }
                    };
                    if let Some(symbol_id) = local.symbol_id.get() {
                        bindings.insert(
                            symbol_id,
                            Replacement {
                                object: var.clone(),
                                property,
                            },
                        );
                    }
                }
                requires.push(Require::Bind {
                    var,
                    source,
                    interop,
                });
            }
            Statement::ExportDeclaration(decl) => {
                is_module = true;
                let declaration = decl.unbox().declaration;
                if declaration.is_typescript_syntax() {
                    // `export declare …` and friends: nothing at runtime.
                    continue;
                }
                for name in declared_names(&declaration) {
                    exports.push((name.clone(), ExportValue::Local(name)));
                }
                body.push(Statement::from(declaration));
            }
            Statement::ExportNamedDeclaration(decl) => {
                is_module = true;
                if decl.export_kind.is_type() {
                    continue;
                }
                for spec in &decl.specifiers {
                    if spec.export_kind.is_type() {
                        continue;
                    }
                    let exported = spec.exported.name().as_str().to_owned();
                    let value = match &spec.local {
                        ModuleExportName::IdentifierReference(ident) => {
                            match symbol_of(scoping, ident) {
                                Some(symbol_id) => {
                                    ExportValue::Symbol(symbol_id, ident.name.as_str().to_owned())
                                }
                                None => ExportValue::Local(ident.name.as_str().to_owned()),
                            }
                        }
                        other => ExportValue::Local(other.name().as_str().to_owned()),
                    };
                    exports.push((exported, value));
                }
            }
            Statement::ExportFromDeclaration(decl) => {
                is_module = true;
                if decl.export_kind.is_type() {
                    continue;
                }
                let specs: Vec<_> = decl
                    .specifiers
                    .iter()
                    .filter(|s| !s.export_kind.is_type())
                    .collect();
                let source = decl.source.value.as_str().to_owned();
                if specs.is_empty() {
                    // `export {} from "x"` runs the module; an all-type
                    // `export { type T } from "x"` is elided.
                    if decl.specifiers.is_empty() {
                        requires.push(Require::SideEffect { source });
                    }
                    continue;
                }
                let var = names.for_module(&source);
                let mut interop = Interop::None;
                for spec in specs {
                    let local = spec.local.name().as_str().to_owned();
                    if local == "default" {
                        interop = Interop::Star;
                    }
                    let exported = spec.exported.name().as_str().to_owned();
                    exports.push((
                        exported,
                        ExportValue::Text(format!("{var}{}", property_access(&local))),
                    ));
                }
                requires.push(Require::Bind {
                    var,
                    source,
                    interop,
                });
            }
            Statement::ExportAllDeclaration(decl) => {
                is_module = true;
                if decl.export_kind.is_type() {
                    continue;
                }
                let source = decl.source.value.as_str().to_owned();
                match &decl.exported {
                    None => requires.push(Require::ExportStar { source }),
                    Some(exported) => {
                        let var = names.for_module(&source);
                        exports.push((
                            exported.name().as_str().to_owned(),
                            ExportValue::Text(var.clone()),
                        ));
                        requires.push(Require::Bind {
                            var,
                            source,
                            interop: Interop::Star,
                        });
                    }
                }
            }
            Statement::ExportDefaultDeclaration(decl) => {
                is_module = true;
                let decl = decl.unbox();
                let span = decl.span;
                match decl.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(mut func) => {
                        let name = match &func.id {
                            Some(id) => id.name.as_str().to_owned(),
                            None => {
                                let name = names.fresh("default");
                                func.id = Some(BindingIdentifier::new(
                                    SPAN,
                                    allocator.alloc_str(&name),
                                    &ast,
                                ));
                                name
                            }
                        };
                        exports.push(("default".to_owned(), ExportValue::Local(name)));
                        body.push(Statement::FunctionDeclaration(func));
                    }
                    ExportDefaultDeclarationKind::ClassDeclaration(mut class) => {
                        let name = match &class.id {
                            Some(id) => id.name.as_str().to_owned(),
                            None => {
                                let name = names.fresh("default");
                                class.id = Some(BindingIdentifier::new(
                                    SPAN,
                                    allocator.alloc_str(&name),
                                    &ast,
                                ));
                                name
                            }
                        };
                        exports.push(("default".to_owned(), ExportValue::Local(name)));
                        body.push(Statement::ClassDeclaration(class));
                    }
                    ExportDefaultDeclarationKind::TSInterfaceDeclaration(_) => {}
                    other => {
                        let Ok(expr) = Expression::try_from(other) else {
                            continue;
                        };
                        let name = names.fresh("default");
                        let declarator = VariableDeclarator::new(
                            span,
                            BindingPattern::new_binding_identifier(
                                SPAN,
                                allocator.alloc_str(&name),
                                &ast,
                            ),
                            None,
                            Some(expr),
                            false,
                            &ast,
                        );
                        body.push(Statement::new_variable_declaration(
                            span,
                            VariableDeclarationKind::Var,
                            ArenaVec::from_iter_in([declarator], &allocator),
                            false,
                            &ast,
                        ));
                        exports.push(("default".to_owned(), ExportValue::Local(name)));
                    }
                }
            }
            Statement::TSNamespaceExportDeclaration(_) => {}
            Statement::TSExportAssignment(_) => {
                // Already rewritten to `module.exports = …` by the TypeScript
                // transform (module: CommonJS); nothing else can reach here.
                is_module = true;
            }
            other => body.push(other),
        }
    }
    program.body = body;

    let dynamic_import_name = names.fresh("_import");
    let mut rewriter = Rewriter {
        ast,
        allocator,
        scoping,
        bindings: &bindings,
        dynamic_import: allocator.alloc_str(&dynamic_import_name),
        used_dynamic_import: false,
    };
    rewriter.visit_program(program);
    let dynamic_import = rewriter.used_dynamic_import.then_some(dynamic_import_name);

    let mut prelude = String::new();
    if !is_module && dynamic_import.is_none() {
        return prelude;
    }

    let uses = |i: Interop| {
        requires
            .iter()
            .any(|r| matches!(r, Require::Bind { interop, .. } if *interop == i))
    };
    let import_default = uses(Interop::Default).then(|| names.fresh("_importDefault"));
    let import_star =
        (uses(Interop::Star) || dynamic_import.is_some()).then(|| names.fresh("_importStar"));
    let export_star = requires
        .iter()
        .any(|r| matches!(r, Require::ExportStar { .. }))
        .then(|| names.fresh("_exportStar"));

    if let Some(f) = &import_default {
        let _ = writeln!(
            prelude,
            "function {f}(mod) {{ return mod && mod.__esModule ? mod : {{ default: mod }}; }}"
        );
    }
    if let Some(f) = &import_star {
        let _ = writeln!(
            prelude,
            "function {f}(mod) {{ if (mod && mod.__esModule) return mod; var ns = {{}}; \
             if (mod != null) Object.getOwnPropertyNames(mod).forEach(function (k) {{ \
             if (k !== \"default\") Object.defineProperty(ns, k, {{ enumerable: true, get: function () {{ return mod[k]; }} }}); }}); \
             Object.defineProperty(ns, \"default\", {{ enumerable: true, value: mod }}); return ns; }}"
        );
    }
    if let Some(f) = &export_star {
        let _ = writeln!(
            prelude,
            "function {f}(mod, target) {{ if (mod != null) Object.keys(mod).forEach(function (k) {{ \
             if (k !== \"default\" && !Object.prototype.hasOwnProperty.call(target, k)) \
             Object.defineProperty(target, k, {{ enumerable: true, get: function () {{ return mod[k]; }} }}); }}); }}"
        );
    }
    if let (Some(f), Some(star)) = (&dynamic_import, &import_star) {
        // `import(s)` in CommonJS, like TypeScript's `module: commonjs`.
        let _ = writeln!(
            prelude,
            "function {f}(s) {{ return Promise.resolve(`${{s}}`).then(function (s) {{ return {star}(require(s)); }}); }}"
        );
    }
    if !is_module {
        return prelude;
    }
    prelude.push_str("Object.defineProperty(exports, \"__esModule\", { value: true });\n");
    let mut seen = HashSet::new();
    for (exported, value) in &exports {
        if !seen.insert(exported.as_str()) {
            continue;
        }
        let value = match value {
            ExportValue::Local(name) => name.clone(),
            ExportValue::Text(text) => text.clone(),
            ExportValue::Symbol(symbol_id, name) => match bindings.get(symbol_id) {
                Some(r) => r.to_js(),
                None => name.clone(),
            },
        };
        let _ = writeln!(
            prelude,
            "Object.defineProperty(exports, {}, {{ enumerable: true, get: () => {value} }});",
            js_string(exported)
        );
    }
    for r in &requires {
        match r {
            Require::Bind {
                var,
                source,
                interop,
            } => {
                let req = format!("require({})", js_string(source));
                let wrapped = match interop {
                    Interop::None => req,
                    Interop::Default => match &import_default {
                        Some(f) => format!("{f}({req})"),
                        None => req,
                    },
                    Interop::Star => match &import_star {
                        Some(f) => format!("{f}({req})"),
                        None => req,
                    },
                };
                let _ = writeln!(prelude, "var {var} = {wrapped};");
            }
            Require::SideEffect { source } => {
                let _ = writeln!(prelude, "require({});", js_string(source));
            }
            Require::ExportStar { source } => {
                if let Some(f) = &export_star {
                    let _ = writeln!(prelude, "{f}(require({}), exports);", js_string(source));
                }
            }
        }
    }
    prelude
}

/// The value an export getter returns.
enum ExportValue {
    /// A local binding by name.
    Local(String),
    /// A binding that may be an import (then it is replaced by its module access).
    Symbol(SymbolId, String),
    /// Ready-made JavaScript text.
    Text(String),
}

fn symbol_of(scoping: &Scoping, ident: &IdentifierReference<'_>) -> Option<SymbolId> {
    let reference_id = ident.reference_id.get()?;
    scoping.get_reference(reference_id).symbol_id()
}

/// Names bound by a (non-TypeScript) declaration.
fn declared_names(declaration: &Declaration<'_>) -> Vec<String> {
    match declaration {
        Declaration::VariableDeclaration(var) => var
            .declarations
            .iter()
            .flat_map(|d| d.id.get_binding_identifiers())
            .map(|id| id.name.as_str().to_owned())
            .collect(),
        other => other
            .id()
            .map(|id| vec![id.name.as_str().to_owned()])
            .unwrap_or_default(),
    }
}

/// `.name` if `name` is a plain identifier, else `["name"]`.
fn property_access(name: &str) -> String {
    if is_identifier_name(name) {
        format!(".{name}")
    } else {
        format!("[{}]", js_string(name))
    }
}

fn is_identifier_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || c == '$' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c == '$' || c.is_ascii_alphanumeric())
}

/// A double-quoted JavaScript string literal for `s`.
pub(crate) fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Replaces references to imported bindings by member accesses on the
/// required module objects.
struct Rewriter<'a, 'b> {
    ast: AstBuilder<'a>,
    allocator: &'a Allocator,
    scoping: &'b Scoping,
    bindings: &'b HashMap<SymbolId, Replacement>,
    /// Name of the prelude helper that replaces `import(…)`.
    dynamic_import: &'a str,
    used_dynamic_import: bool,
}

impl<'a> Rewriter<'a, '_> {
    fn replacement(&self, ident: &IdentifierReference<'a>) -> Option<&Replacement> {
        self.bindings.get(&symbol_of(self.scoping, ident)?)
    }

    fn build(&self, r: &Replacement, span: oxc_span::Span) -> Expression<'a> {
        let object =
            Expression::new_identifier(span, self.allocator.alloc_str(&r.object), &self.ast);
        match &r.property {
            None => object,
            Some(p) if is_identifier_name(p) => Expression::new_static_member_expression(
                span,
                object,
                IdentifierName::new(SPAN, self.allocator.alloc_str(p), &self.ast),
                false,
                &self.ast,
            ),
            Some(p) => Expression::new_computed_member_expression(
                span,
                object,
                Expression::new_string_literal(SPAN, self.allocator.alloc_str(p), None, &self.ast),
                false,
                &self.ast,
            ),
        }
    }

    /// For a callee / tag that is an imported binding, the replacement wrapped
    /// as `(0, mod.name)` so that `this` is `undefined`, as for an ES import.
    fn unbound_callee(&self, callee: &Expression<'a>) -> Option<Expression<'a>> {
        let Expression::Identifier(ident) = callee else {
            return None;
        };
        let r = self.replacement(ident)?;
        let member = self.build(r, ident.span);
        if r.property.is_none() {
            return Some(member);
        }
        let zero = Expression::new_numeric_literal(SPAN, 0.0, None, NumberBase::Decimal, &self.ast);
        Some(Expression::new_sequence_expression(
            callee.span(),
            ArenaVec::from_iter_in([zero, member], &self.allocator),
            &self.ast,
        ))
    }
}

impl<'a> VisitMut<'a> for Rewriter<'a, '_> {
    fn visit_expression(&mut self, expr: &mut Expression<'a>) {
        match expr {
            Expression::Identifier(ident) => {
                if let Some(r) = self.replacement(ident) {
                    *expr = self.build(r, ident.span);
                }
            }
            Expression::ImportExpression(import) => {
                // `import(s)` → `_import(s)` (a promise of the interop
                // namespace); import attributes have no meaning for require.
                self.visit_expression(&mut import.source);
                let span = import.span;
                let source = import.source.take_in(&self.allocator);
                self.used_dynamic_import = true;
                *expr = Expression::new_call_expression(
                    span,
                    Expression::new_identifier(SPAN, self.dynamic_import, &self.ast),
                    None,
                    ArenaVec::from_iter_in([Argument::from(source)], &self.allocator),
                    false,
                    &self.ast,
                );
            }
            _ => walk_mut::walk_expression(self, expr),
        }
    }

    fn visit_call_expression(&mut self, call: &mut CallExpression<'a>) {
        if let Some(callee) = self.unbound_callee(&call.callee) {
            call.callee = callee;
        }
        walk_mut::walk_call_expression(self, call);
    }

    fn visit_tagged_template_expression(&mut self, tagged: &mut TaggedTemplateExpression<'a>) {
        if let Some(tag) = self.unbound_callee(&tagged.tag) {
            tagged.tag = tag;
        }
        walk_mut::walk_tagged_template_expression(self, tagged);
    }

    fn visit_object_property(&mut self, prop: &mut ObjectProperty<'a>) {
        if prop.shorthand {
            if let Expression::Identifier(ident) = &prop.value {
                if self.replacement(ident).is_some() {
                    prop.shorthand = false;
                }
            }
        }
        walk_mut::walk_object_property(self, prop);
    }
}
