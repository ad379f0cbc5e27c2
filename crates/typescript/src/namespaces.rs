//! Name resolution across merged `namespace` declarations.
//!
//! oxc 0.146's namespace transform lowers every `namespace` block on its own
//! (`(function (_N) { … })(N || (N = {}))`) and leaves identifiers alone, so
//! two things that TypeScript handles go wrong:
//!
//! * A block sees the members *exported by the other blocks* of the same
//!   (merged) namespace as bare names: TypeScript compiles `c` in
//!   `namespace A.B { export const c = 1 } namespace A.B { c }` to `B.c`, oxc
//!   leaves `c` (a `ReferenceError`, or silently an outer `c`).
//! * Exported variables are properties of the namespace object: TypeScript
//!   compiles every reference to them to `N.x`, oxc keeps a local copy
//!   (`let x = _N.x = 1`), so `export let x` updated later is not live.
//!
//! [`qualify_namespace_members`] fixes both on the AST before the transform:
//! such references become member accesses on the namespace (`N.x`), as tsc
//! emits them. Only value references are rewritten (expressions, assignment
//! targets, shorthand properties); type positions are left alone.
//!
//! Name lookup follows TypeScript: going outwards from the reference, a
//! binding declared inside a namespace block wins over the block's namespace
//! members; at each enclosing namespace the members exported by *any* of its
//! declarations are visible. Members of an enclosing (merged) `enum` take
//! precedence, as in TypeScript.
//!
//! Where the namespace's own name is shadowed at the reference
//! (`function f(N) { return x }`), the reference goes through an enclosing
//! namespace (`A.B.x`) or else through an alias declared at the top of the
//! block (`const _N = N;`; tsc renames the namespace function's parameter
//! instead).
//!
//! Not handled (left as oxc emits them): references in a block that
//! redeclares the namespace's own name at its top level (`namespace N {
//! const N = 1 }`), JSX tag names and the entity name of `import x = M.y`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use oxc_allocator::{Allocator, ArenaVec};
use oxc_ast::ast::{
    AssignmentTarget, AssignmentTargetMaybeDefault, AssignmentTargetProperty, BindingPattern,
    Declaration, Expression, IdentifierName, IdentifierReference, ObjectProperty, Program,
    PropertyKey, SimpleAssignmentTarget, Statement, TSEnumBody, TSEnumDeclaration,
    TSExternalModuleDeclaration, TSGlobalDeclaration, TSModuleBlock, TSNamespaceDeclaration,
    TSNamespaceDeclarationBody, VariableDeclarationKind, VariableDeclarator,
};
use oxc_ast::builder::AstBuilder;
use oxc_ast_visit::{walk, walk_mut, Visit, VisitMut};
use oxc_semantic::{ScopeFlags, ScopeId, Scoping, SymbolFlags, SymbolId};
use oxc_span::{Span, SPAN};

/// Rewrites references to namespace members into member accesses on the
/// namespace (see the module documentation). Returns whether anything
/// changed; if so, the caller must rebuild the semantic data of `program`
/// (`scoping` describes the program before the rewrite).
pub(crate) fn qualify_namespace_members<'a>(
    allocator: &'a Allocator,
    program: &mut Program<'a>,
    scoping: &Scoping,
) -> bool {
    // Namespaces may only be declared at the top level (or inside other
    // namespaces), so this cheap check rules out almost every program.
    if !program.body.iter().any(|s| namespace_of(s).is_some()) {
        return false;
    }
    let mut collector = Collector {
        scoping,
        frames: Vec::new(),
        exported_decls: HashSet::new(),
        info: Info::default(),
    };
    collector.visit_program(program);
    let info = collector.info;
    if info.blocks.is_empty() {
        return false;
    }
    let mut rewriter = Rewriter {
        ast: AstBuilder::new(allocator),
        allocator,
        scoping,
        info: &info,
        scopes: Vec::new(),
        frames: Vec::new(),
        enums: Vec::new(),
        aliases: HashMap::new(),
        used_names: None,
        changed: false,
    };
    rewriter.visit_program(program);
    rewriter.changed
}

/// The namespace declared by a statement (`namespace N {}` or
/// `export namespace N {}`), if any.
fn namespace_of<'s, 'a>(stmt: &'s Statement<'a>) -> Option<&'s TSNamespaceDeclaration<'a>> {
    match stmt {
        Statement::TSNamespaceDeclaration(ns) => Some(ns),
        Statement::ExportDeclaration(export) => match &export.declaration {
            Declaration::TSNamespaceDeclaration(ns) => Some(ns),
            _ => None,
        },
        _ => None,
    }
}

/// Address of an AST node, used to recognise it again during the traversal.
fn address<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

/// Identifies the declarations of one enum that merge.
#[derive(Clone, PartialEq, Eq, Hash)]
enum EnumKey {
    /// An enum exported from a namespace: merges with the same export of the
    /// other declarations of that namespace (key of the namespace, name).
    Member(String, String),
    /// Any other enum: merges with the declarations bound to the same symbol.
    Symbol(SymbolId),
}

/// One namespace declaration (its scope is the block's scope).
struct Block<'a> {
    /// Identifies the merged namespace: the same for all its declarations.
    key: String,
    /// The namespace's name.
    name: &'a str,
    /// Whether the namespace is an exported member of the enclosing namespace
    /// (`export namespace M` inside it, or `B` in `namespace A.B`).
    member_of_parent: bool,
    /// Whether the declaration has a block (`A` in `namespace A.B {}` has not).
    has_block: bool,
}

#[derive(Default)]
struct Info<'a> {
    /// Namespace declarations by the scope of their body.
    blocks: HashMap<ScopeId, Block<'a>>,
    /// Names of the runtime members exported by all declarations of each
    /// merged namespace (by key).
    exports: HashMap<String, HashSet<&'a str>>,
    /// Variables exported from namespaces: every reference to them is a
    /// property access on the namespace, even inside their own block.
    exported_vars: HashSet<SymbolId>,
    /// Member names of all declarations of each merged enum.
    enum_members: HashMap<EnumKey, HashSet<&'a str>>,
    /// Enum declarations by the scope of their body.
    enum_bodies: HashMap<ScopeId, EnumKey>,
}

/// Collects the namespace declarations, what they export and the enums.
struct Collector<'a, 'b> {
    scoping: &'b Scoping,
    /// Keys of the enclosing namespace declarations.
    frames: Vec<String>,
    /// Addresses of the declarations exported from a namespace block.
    exported_decls: HashSet<usize>,
    info: Info<'a>,
}

impl<'a> Collector<'a, '_> {
    fn export(&mut self, name: &'a str) {
        if let Some(key) = self.frames.last() {
            self.info
                .exports
                .entry(key.clone())
                .or_default()
                .insert(name);
        }
    }
}

impl<'a> Visit<'a> for Collector<'a, '_> {
    // Ambient declarations (`declare module "m" {}`, `declare global {}`)
    // emit no code, and their namespaces do not merge with the file's.
    fn visit_ts_external_module_declaration(&mut self, _: &TSExternalModuleDeclaration<'a>) {}

    fn visit_ts_global_declaration(&mut self, _: &TSGlobalDeclaration<'a>) {}

    fn visit_ts_module_block(&mut self, block: &TSModuleBlock<'a>) {
        if !self.frames.is_empty() {
            for stmt in &block.body {
                let Statement::ExportDeclaration(export) = stmt else {
                    continue;
                };
                match &export.declaration {
                    Declaration::VariableDeclaration(var) => {
                        for declarator in &var.declarations {
                            for id in declarator.id.get_binding_identifiers() {
                                self.export(id.name.as_str());
                                if let Some(symbol_id) = id.symbol_id.get() {
                                    self.info.exported_vars.insert(symbol_id);
                                }
                            }
                        }
                    }
                    Declaration::TSNamespaceDeclaration(ns) => {
                        self.exported_decls.insert(address(&**ns));
                        let instantiated = ns.id.symbol_id.get().is_some_and(|s| {
                            self.scoping
                                .symbol_flags(s)
                                .contains(SymbolFlags::ValueModule)
                        });
                        if instantiated {
                            self.export(ns.id.name.as_str());
                        }
                    }
                    Declaration::TSEnumDeclaration(e) => {
                        self.exported_decls.insert(address(&**e));
                        self.export(e.id.name.as_str());
                    }
                    Declaration::FunctionDeclaration(_)
                    | Declaration::ClassDeclaration(_)
                    | Declaration::TSImportEqualsDeclaration(_) => {
                        if let Some(id) = export.declaration.id() {
                            self.export(id.name.as_str());
                        }
                    }
                    Declaration::TSTypeAliasDeclaration(_)
                    | Declaration::TSInterfaceDeclaration(_)
                    | Declaration::TSExternalModuleDeclaration(_)
                    | Declaration::TSGlobalDeclaration(_) => {}
                }
            }
        }
        walk::walk_ts_module_block(self, block);
    }

    fn visit_ts_namespace_declaration(&mut self, ns: &TSNamespaceDeclaration<'a>) {
        let Some(scope_id) = ns.scope_id.get() else {
            walk::walk_ts_namespace_declaration(self, ns);
            return;
        };
        let name = ns.id.name.as_str();
        let exported = self.exported_decls.contains(&address(ns));
        let key = match self.frames.last() {
            // Top-level declarations of a name all merge.
            None => name.to_owned(),
            Some(parent) if exported => format!("{parent}.{name}"),
            // A non-exported namespace is local to its block.
            Some(parent) => {
                let block = self
                    .scoping
                    .scope_parent_id(scope_id)
                    .map_or(usize::MAX, |s| s.index());
                format!("{parent}#{block}.{name}")
            }
        };
        if let TSNamespaceDeclarationBody::TSNamespaceDeclaration(inner) = &ns.body {
            // `namespace A.B {}` is `namespace A { export namespace B {} }`.
            self.exported_decls.insert(address(&**inner));
            let instantiated = inner.id.symbol_id.get().is_some_and(|s| {
                self.scoping
                    .symbol_flags(s)
                    .contains(SymbolFlags::ValueModule)
            });
            if instantiated {
                self.info
                    .exports
                    .entry(key.clone())
                    .or_default()
                    .insert(inner.id.name.as_str());
            }
        }
        self.info.blocks.insert(
            scope_id,
            Block {
                key: key.clone(),
                name,
                member_of_parent: exported && !self.frames.is_empty(),
                has_block: matches!(ns.body, TSNamespaceDeclarationBody::TSModuleBlock(_)),
            },
        );
        self.frames.push(key);
        walk::walk_ts_namespace_declaration(self, ns);
        self.frames.pop();
    }

    fn visit_ts_enum_declaration(&mut self, e: &TSEnumDeclaration<'a>) {
        let key = match self.frames.last() {
            Some(parent) if self.exported_decls.contains(&address(e)) => Some(EnumKey::Member(
                parent.clone(),
                e.id.name.as_str().to_owned(),
            )),
            _ => e.id.symbol_id.get().map(EnumKey::Symbol),
        };
        if let (Some(key), Some(body_scope)) = (key, e.body.scope_id.get()) {
            let members = self.info.enum_members.entry(key.clone()).or_default();
            for member in &e.body.members {
                members.insert(member.id.static_name().as_str());
            }
            self.info.enum_bodies.insert(body_scope, key);
        }
        walk::walk_ts_enum_declaration(self, e);
    }
}

/// Rewrites the references found by [`Rewriter::qualification`].
struct Rewriter<'a, 'b> {
    ast: AstBuilder<'a>,
    allocator: &'a Allocator,
    scoping: &'b Scoping,
    info: &'b Info<'a>,
    /// The scopes entered so far (innermost last).
    scopes: Vec<ScopeId>,
    /// Body scopes of the enclosing namespace declarations (innermost last).
    frames: Vec<ScopeId>,
    /// The enclosing enum declarations (innermost last).
    enums: Vec<Option<&'b EnumKey>>,
    /// Aliases of namespaces whose name is shadowed somewhere in their block
    /// (by block scope), declared at the top of the block.
    aliases: HashMap<ScopeId, &'a str>,
    /// Names in use in the program (computed on the first alias).
    used_names: Option<HashSet<String>>,
    changed: bool,
}

impl<'a> Rewriter<'a, '_> {
    /// The namespace path that `ident` must be qualified with (`["A", "B"]`
    /// for `A.B.ident`), if it names a namespace member.
    fn qualification(&mut self, ident: &IdentifierReference<'a>) -> Option<Vec<&'a str>> {
        if self.frames.is_empty() {
            return None;
        }
        let name = ident.name.as_str();
        let symbol = ident
            .reference_id
            .get()
            .and_then(|r| self.scoping.get_reference(r).symbol_id());
        let symbol_scope = symbol.map(|s| self.scoping.symbol_scope_id(s));
        // Enum members are found first (the enum is the innermost container).
        if let Some(Some(key)) = self.enums.last() {
            if self
                .info
                .enum_members
                .get(key)
                .is_some_and(|m| m.contains(name))
            {
                return None;
            }
        }
        for index in (0..self.frames.len()).rev() {
            let frame = self.frames[index];
            if let Some(symbol_scope) = symbol_scope {
                if self
                    .scoping
                    .scope_ancestors(symbol_scope)
                    .any(|s| s == frame)
                {
                    // Declared inside this block: a local binding, unless it is
                    // a variable the block exports.
                    let exported_var = symbol_scope == frame
                        && symbol.is_some_and(|s| self.info.exported_vars.contains(&s));
                    return if exported_var {
                        self.qualifier(index)
                    } else {
                        None
                    };
                }
            }
            let block = self.info.blocks.get(&frame)?;
            if self
                .info
                .exports
                .get(&block.key)
                .is_some_and(|e| e.contains(name))
            {
                return self.qualifier(index);
            }
        }
        None
    }

    /// How the namespace of `self.frames[index]` is named at the current
    /// scope: by its name if that is not shadowed, else through its parent,
    /// else through an alias.
    fn qualifier(&mut self, index: usize) -> Option<Vec<&'a str>> {
        let frame = self.frames[index];
        let block = self.info.blocks.get(&frame)?;
        let current = *self.scopes.last()?;
        let declared_in = self.scoping.scope_parent_id(frame)?;
        let visible = self
            .scoping
            .find_binding(current, block.name.into())
            .is_some_and(|s| self.scoping.symbol_scope_id(s) == declared_in);
        if visible {
            return Some(vec![block.name]);
        }
        let (name, member_of_parent, has_block) =
            (block.name, block.member_of_parent, block.has_block);
        if member_of_parent && index > 0 {
            if let Some(mut path) = self.qualifier(index - 1) {
                path.push(name);
                return Some(path);
            }
        }
        // An alias at the top of the block works if the name is visible there.
        let visible_in_block = self
            .scoping
            .find_binding(frame, name.into())
            .is_some_and(|s| self.scoping.symbol_scope_id(s) == declared_in);
        if !has_block || !visible_in_block {
            return None;
        }
        if let Some(alias) = self.aliases.get(&frame) {
            return Some(vec![*alias]);
        }
        let alias = self.fresh_name(name);
        self.aliases.insert(frame, alias);
        Some(vec![alias])
    }

    /// A name derived from `base` that is used nowhere in the program.
    fn fresh_name(&mut self, base: &str) -> &'a str {
        let scoping = self.scoping;
        let used = self.used_names.get_or_insert_with(|| {
            let mut used: HashSet<String> = scoping.symbol_names().map(str::to_owned).collect();
            used.extend(
                scoping
                    .root_unresolved_references()
                    .keys()
                    .map(|k| k.as_str().to_owned()),
            );
            used
        });
        let stem = format!("_{base}");
        let mut name = stem.clone();
        let mut n = 1u32;
        while used.contains(&name) {
            n += 1;
            name = format!("{stem}{n}");
        }
        used.insert(name.clone());
        self.allocator.alloc_str(&name)
    }

    /// `path[0].path[1]…` as an expression.
    fn path_expression(&self, path: &[&'a str], span: Span) -> Expression<'a> {
        let mut expr = Expression::new_identifier(span, path[0], &self.ast);
        for &segment in &path[1..] {
            expr = Expression::new_static_member_expression(
                span,
                expr,
                IdentifierName::new(span, segment, &self.ast),
                false,
                &self.ast,
            );
        }
        expr
    }

    fn member(&self, path: &[&'a str], ident: &IdentifierReference<'a>) -> Expression<'a> {
        let span = ident.span;
        Expression::new_static_member_expression(
            span,
            self.path_expression(path, span),
            IdentifierName::new(span, ident.name.as_str(), &self.ast),
            false,
            &self.ast,
        )
    }

    fn member_target(
        &self,
        path: &[&'a str],
        ident: &IdentifierReference<'a>,
    ) -> SimpleAssignmentTarget<'a> {
        let span = ident.span;
        SimpleAssignmentTarget::new_static_member_expression(
            span,
            self.path_expression(path, span),
            IdentifierName::new(span, ident.name.as_str(), &self.ast),
            false,
            &self.ast,
        )
    }
}

impl<'a> VisitMut<'a> for Rewriter<'a, '_> {
    fn enter_scope(&mut self, _flags: ScopeFlags, scope_id: &Cell<Option<ScopeId>>) {
        let scope = scope_id.get().or_else(|| self.scopes.last().copied());
        if let Some(scope) = scope {
            self.scopes.push(scope);
        }
    }

    fn leave_scope(&mut self) {
        self.scopes.pop();
    }

    fn visit_ts_external_module_declaration(&mut self, _: &mut TSExternalModuleDeclaration<'a>) {}

    fn visit_ts_global_declaration(&mut self, _: &mut TSGlobalDeclaration<'a>) {}

    fn visit_ts_namespace_declaration(&mut self, ns: &mut TSNamespaceDeclaration<'a>) {
        match ns.scope_id.get() {
            Some(scope) if self.info.blocks.contains_key(&scope) => {
                self.frames.push(scope);
                walk_mut::walk_ts_namespace_declaration(self, ns);
                self.frames.pop();
                if let (Some(&alias), TSNamespaceDeclarationBody::TSModuleBlock(block)) =
                    (self.aliases.get(&scope), &mut ns.body)
                {
                    // `const _N = N;` first in the block.
                    let declarator = VariableDeclarator::new(
                        SPAN,
                        BindingPattern::new_binding_identifier(SPAN, alias, &self.ast),
                        None,
                        Some(Expression::new_identifier(
                            SPAN,
                            ns.id.name.as_str(),
                            &self.ast,
                        )),
                        false,
                        &self.ast,
                    );
                    let declaration = Statement::new_variable_declaration(
                        SPAN,
                        VariableDeclarationKind::Const,
                        ArenaVec::from_iter_in([declarator], &self.allocator),
                        false,
                        &self.ast,
                    );
                    block.body.insert(0, declaration);
                }
            }
            _ => walk_mut::walk_ts_namespace_declaration(self, ns),
        }
    }

    fn visit_ts_enum_body(&mut self, body: &mut TSEnumBody<'a>) {
        let info = self.info;
        let key = body.scope_id.get().and_then(|s| info.enum_bodies.get(&s));
        self.enums.push(key);
        walk_mut::walk_ts_enum_body(self, body);
        self.enums.pop();
    }

    fn visit_expression(&mut self, expr: &mut Expression<'a>) {
        if let Expression::Identifier(ident) = expr {
            if let Some(path) = self.qualification(ident) {
                *expr = self.member(&path, ident);
                self.changed = true;
            }
            return;
        }
        walk_mut::walk_expression(self, expr);
    }

    fn visit_simple_assignment_target(&mut self, target: &mut SimpleAssignmentTarget<'a>) {
        if let SimpleAssignmentTarget::AssignmentTargetIdentifier(ident) = target {
            if let Some(path) = self.qualification(ident) {
                *target = self.member_target(&path, ident);
                self.changed = true;
            }
            return;
        }
        walk_mut::walk_simple_assignment_target(self, target);
    }

    fn visit_assignment_target_property(&mut self, property: &mut AssignmentTargetProperty<'a>) {
        let AssignmentTargetProperty::AssignmentTargetPropertyIdentifier(prop) = property else {
            walk_mut::walk_assignment_target_property(self, property);
            return;
        };
        if let Some(init) = &mut prop.init {
            self.visit_expression(init);
        }
        let Some(path) = self.qualification(&prop.binding) else {
            return;
        };
        // `({ x = d } = o)` → `({ x: N.x = d } = o)`
        let span = prop.span;
        let key = PropertyKey::new_static_identifier(
            prop.binding.span,
            prop.binding.name.as_str(),
            &self.ast,
        );
        let target = AssignmentTarget::from(self.member_target(&path, &prop.binding));
        let binding = match prop.init.take() {
            Some(init) => AssignmentTargetMaybeDefault::new_assignment_target_with_default(
                span, target, init, &self.ast,
            ),
            None => AssignmentTargetMaybeDefault::from(target),
        };
        *property = AssignmentTargetProperty::new_assignment_target_property_property(
            span, key, binding, false, &self.ast,
        );
        self.changed = true;
    }

    fn visit_object_property(&mut self, prop: &mut ObjectProperty<'a>) {
        if prop.shorthand {
            if let Expression::Identifier(ident) = &prop.value {
                if self.qualification(ident).is_some() {
                    // `{ x }` → `{ x: N.x }`
                    prop.shorthand = false;
                }
            }
        }
        walk_mut::walk_object_property(self, prop);
    }
}
