//! Cheap nesting-depth pre-check, run before handing a source to oxc.
//!
//! oxc's parser (and semantic analysis, transformer and code generator after
//! it) recurse once per nesting level without a depth guard, so hostile input
//! such as 30,000 nested parentheses or 15,000 nested brace-less `for(;;)`
//! statements overflows the stack and aborts the process. [`check_depth`]
//! scans the source once, with a small JavaScript/TypeScript-aware lexer, and
//! estimates how deep the parser will recurse. It is designed to
//! **over-estimate**: rejecting odd but valid code is acceptable, accepting
//! something that nests deeper than the limit is not.
//!
//! # The measure
//!
//! The depth is counted in units of 1/[`OP`] of a level, summed along the
//! current nesting path:
//!
//! * every open bracket — `(`, `[`, `{` and template `${` — is a full level
//!   (and an operator unit, see below: it may be a call or an index); the
//!   block body of `if (…) {`, `for (…) {`, `while (…) {`, `do {` takes over
//!   the keyword's level instead of adding one;
//! * every statement keyword whose body need not be a block (`if`, `for`,
//!   `while`, `do`, `with`) is a full level until its statement ends (`;`, a
//!   block's `}` or an automatic-semicolon line break — unless `else` follows,
//!   which continues the statement, so `else if` chains keep growing);
//! * every `<` is a full level until a matching `>` or the end of the
//!   statement (type arguments nest like brackets; comparisons are rarely
//!   numerous within one statement);
//! * every operator token in the current expression is 1/[`OP`] of a level:
//!   `a + b + …`, `a.b.c…`, `f()()…`, `!!!…x`, `a = b = …`, `x ? y : z ? …`,
//!   `a => b => …` and `A<B<…>>` all build ASTs as deep as they are long, but
//!   each such level costs the recursive passes much less stack than a bracket
//!   level. The count restarts at `;`, `,` and automatic-semicolon line breaks.
//!
//! # Literals and the regex problem
//!
//! Brackets inside string literals, template text, comments and regular
//! expression literals are not code, but the lexer may be wrong about where a
//! literal is: whether `/` starts a regular expression or is a division cannot
//! be decided without a parser. To stay conservative anyway:
//!
//! * brackets inside *any* literal or comment are still counted, in a
//!   file-wide "shadow" nesting counter (openers +1, closers -1, never below
//!   zero) that is added to the depth. Real code the lexer mistook for a
//!   literal is therefore still counted; the price is that a file with about
//!   `max_depth` more unbalanced `(`/`[`/`{` than closers inside its strings
//!   and comments is rejected;
//! * when `/` is read as a division but could also start a regex that ends
//!   later on the same line, every closer in that stretch that closes a
//!   bracket opened *before* it adds one level to the shadow counter (in the
//!   regex reading, that bracket is still open);
//! * a closer that does not match the innermost open bracket is ignored.
//!
//! If the brackets do not balance (a syntax error, or a lexer mistake), the
//! result is only trusted when the whole file cannot reach the limit even if
//! every counted token nested; otherwise the file is rejected with
//! [`TranspileError::Unbalanced`], which names the offending position.
//!
//! # Limits of the estimate
//!
//! This is a heuristic lexer, not a parser. An input crafted to make it
//! misjudge *several* `/` tokens in a way that keeps the brackets balanced
//! could still be under-counted. On ordinary code the estimate is
//! conservative: non-minified JavaScript/TypeScript files (npm's and the
//! TypeScript distribution's, 2,000+ files) peak at depth 20–90, minified
//! bundles at up to ~1,000. Inputs just under depth 1,000 need at most
//! ~8 MiB of stack in the whole pipeline in a debug build (measured for each
//! nesting shape: brackets ~4 MiB, operator chains ~8 MiB; release builds
//! need about half), an eighth of [`crate::MIN_STACK_SIZE`]. Without this
//! check, an 8 MiB stack overflows at ~3,000 nested parentheses (debug build;
//! ~5,000 in release), a 64 MiB one at ~23,000 (debug; ~40,000 in release).

use crate::TranspileError;

/// Units per nesting level; an operator token counts one unit.
const OP: usize = 4;

/// What a stack entry was opened by.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Open {
    /// The whole file.
    Root,
    /// `(`; `control` for the head of `if`/`for`/`while`/`with`.
    Paren {
        control: bool,
    },
    Bracket,
    /// `{`; `block` when it opens statements (block, function or class body)
    /// rather than an object literal or type literal; `body` when it is the
    /// body of a counted statement keyword and holds that keyword's level.
    Brace {
        block: bool,
        body: bool,
    },
    /// `${` inside a template literal.
    TemplateExpr,
}

struct Level {
    open: Open,
    /// Pending statement keywords (each a full level).
    stmt: usize,
    /// Operator tokens in the current expression (units).
    ops: usize,
    /// Unclosed `<` (type arguments / parameters, or comparisons) in the
    /// current statement; each a full level. Unlike `ops`, not reset by `,`
    /// (`Map<K, Map<K, …>>`).
    angle: usize,
    /// A statement ended; reset `stmt` at the next token unless it is `else`.
    pending_reset: bool,
    /// Position of the opener (for diagnostics).
    pos: usize,
}

/// The previous significant token, as far as the heuristics need it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prev {
    /// Start of file.
    Start,
    /// An identifier or literal-like keyword (`this`, `null`, …).
    Operand,
    /// A keyword after which an expression starts (`return`, `typeof`, …).
    ExprKeyword,
    /// A statement/declaration keyword (`if`, `else`, `class`, …).
    OtherKeyword,
    /// A number, string, template or regex literal.
    Literal,
    /// `)`; `control` if it closed an `if (…)`-like head.
    CloseParen {
        control: bool,
    },
    CloseBracket,
    /// `}`; `block` if it closed a block-like brace.
    CloseBrace {
        block: bool,
    },
    OpenParen,
    OpenBracket,
    OpenBrace,
    Semi,
    Comma,
    /// `.` or `?.`: the next identifier is a property name.
    Dot,
    /// `++` or `--` (assumed postfix).
    IncDec,
    /// `=>`.
    Arrow,
    /// `:`.
    Colon,
    /// `>` (often the end of a generic return type before a body).
    Greater,
    /// Any other operator / punctuator.
    Punct,
}

impl Prev {
    /// Whether a `/` after this token starts a regular expression.
    fn regex_allowed(self) -> bool {
        match self {
            Prev::Operand
            | Prev::Literal
            | Prev::CloseBracket
            | Prev::IncDec
            | Prev::Dot
            | Prev::CloseParen { control: false }
            | Prev::CloseBrace { block: false } => false,
            Prev::Start
            | Prev::ExprKeyword
            | Prev::OtherKeyword
            | Prev::CloseParen { control: true }
            | Prev::CloseBrace { block: true }
            | Prev::OpenParen
            | Prev::OpenBracket
            | Prev::OpenBrace
            | Prev::Semi
            | Prev::Comma
            | Prev::Arrow
            | Prev::Colon
            | Prev::Greater
            | Prev::Punct => true,
        }
    }

    /// Whether this token can end an expression, so that a line break after
    /// it followed by a statement-starting token ends the statement.
    fn ends_operand(self) -> bool {
        matches!(
            self,
            Prev::Operand
                | Prev::Literal
                | Prev::CloseParen { control: false }
                | Prev::CloseBracket
                | Prev::CloseBrace { .. }
                | Prev::IncDec
        )
    }
}

/// Keywords after which an expression (so possibly a regex) follows.
const EXPR_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "yield",
    "await",
    "keyof",
    "infer",
    "as",
    "satisfies",
    "extends",
    "is",
];

/// Keywords that are (or may be) operators: they count as operator tokens.
const OPERATOR_KEYWORDS: &[&str] = &[
    "typeof",
    "instanceof",
    "in",
    "new",
    "delete",
    "void",
    "yield",
    "await",
    "keyof",
    "infer",
    "as",
    "satisfies",
    "extends",
    "is",
    "unique",
    "readonly",
];

/// Keywords that can continue an expression after a line break.
const CONTINUATION_KEYWORDS: &[&str] = &[
    "in",
    "instanceof",
    "as",
    "satisfies",
    "of",
    "extends",
    "implements",
    "is",
];

/// Keywords that behave like operands.
const OPERAND_KEYWORDS: &[&str] = &["this", "super", "null", "true", "false", "undefined"];

/// Statement keywords whose body may be a single statement without braces.
const NESTING_KEYWORDS: &[&str] = &["if", "for", "while", "do", "with"];

/// Other keywords (statement or declaration starters).
const OTHER_KEYWORDS: &[&str] = &[
    "else",
    "var",
    "let",
    "const",
    "function",
    "class",
    "interface",
    "type",
    "enum",
    "namespace",
    "module",
    "declare",
    "abstract",
    "import",
    "export",
    "default",
    "try",
    "catch",
    "finally",
    "switch",
    "break",
    "continue",
    "debugger",
    "async",
    "get",
    "set",
    "static",
    "public",
    "private",
    "protected",
    "override",
    "from",
];

struct Scanner<'s> {
    src: &'s [u8],
    pos: usize,
    limit: usize,
    stack: Vec<Level>,
    /// Sum of all levels' units plus the shadow (in units).
    total: usize,
    /// Peak of `total`.
    peak: usize,
    /// Sum of every unit ever added (an upper bound of any nesting).
    cumulative: usize,
    /// File-wide nesting of brackets seen inside literals (in levels).
    shadow: usize,
    prev: Prev,
    /// The text of the previous token if it was a keyword/identifier.
    prev_word: &'s [u8],
    /// A line break was seen since the previous significant token.
    newline_before: bool,
    /// Division that could also have been a regex: (end of that regex
    /// reading, stack length at the `/`).
    candidate: Option<(usize, usize)>,
    /// First bracket inconsistency: (position, message).
    unbalanced: Option<(usize, String)>,
    /// See [`Scanner::regex_window`]: (window start, window end, ends).
    regex_cache: Option<(usize, usize, Vec<[u32; 2]>)>,
}

/// "No regex end on this line" in [`Scanner::regex_window`].
const NO_END: u32 = u32::MAX;
/// "Regex end beyond the window" in [`Scanner::regex_window`].
const UNKNOWN: u32 = u32::MAX - 1;
/// How far ahead a regex literal's end is looked for.
const REGEX_WINDOW: usize = 64 * 1024;

/// Result of [`Scanner::regex_end`].
enum RegexEnd {
    /// Index after the closing `/`.
    At(usize),
    /// No end on this line: not a regex.
    None,
    /// Longer than [`REGEX_WINDOW`]: not checked.
    Unknown,
}

/// Check nesting depth cheaply before parsing.
///
/// Counts bracket nesting (`(`, `[`, `{`, template `${`), brace-less
/// statement nesting (`if (x) for (;;) while (y) …`), type-argument nesting
/// (`A<B<…>>`) and long operator chains (at a quarter of a level per
/// operator). Brackets inside strings, templates, regexes and comments do not
/// nest with the code around them but are counted in a conservative file-wide
/// shadow count. See the module documentation of `depth.rs` for the exact
/// measure. Runs in linear time with constant stack; never panics.
///
/// With `max_depth` = [`crate::DEFAULT_MAX_DEPTH`], any accepted input
/// needs less than about 8 MiB of stack in [`crate::transpile`] even in an
/// unoptimized build (measured), well within [`crate::MIN_STACK_SIZE`].
///
/// # Errors
///
/// [`TranspileError::TooDeep`] when the estimated depth exceeds `max_depth`;
/// [`TranspileError::Unbalanced`] when the brackets do not balance and the
/// file is too large for that to be harmless.
pub fn check_depth(source: &str, max_depth: usize) -> Result<(), TranspileError> {
    let limit = max_depth.saturating_mul(OP);
    let mut scanner = Scanner {
        src: source.as_bytes(),
        pos: 0,
        limit,
        stack: vec![Level {
            open: Open::Root,
            stmt: 0,
            ops: 0,
            angle: 0,
            pending_reset: false,
            pos: 0,
        }],
        total: 0,
        peak: 0,
        cumulative: 0,
        shadow: 0,
        prev: Prev::Start,
        prev_word: b"",
        newline_before: false,
        candidate: None,
        unbalanced: None,
        regex_cache: None,
    };
    match scanner.run() {
        Ok(()) => {}
        Err(Exceeded) => {
            return Err(TranspileError::TooDeep {
                depth: scanner.peak.div_ceil(OP),
                max: max_depth,
            })
        }
    }
    if let Some((pos, message)) = scanner.unbalanced {
        // The count may be off. Harmless if nothing in the file could nest
        // that deep even if every counted token nested.
        if scanner.cumulative > limit {
            let (line, column) = crate::line_col(source, pos);
            return Err(TranspileError::Unbalanced {
                line,
                column,
                message,
            });
        }
    }
    Ok(())
}

/// The limit was exceeded.
struct Exceeded;

type Step = Result<(), Exceeded>;

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'s> Scanner<'s> {
    fn peek(&self, offset: usize) -> u8 {
        self.src.get(self.pos + offset).copied().unwrap_or(0)
    }

    fn add(&mut self, units: usize) -> Step {
        self.total = self.total.saturating_add(units);
        self.cumulative = self.cumulative.saturating_add(units);
        if self.total > self.peak {
            self.peak = self.total;
        }
        if self.total > self.limit {
            Err(Exceeded)
        } else {
            Ok(())
        }
    }

    fn top(&mut self) -> &mut Level {
        // The root level is never popped.
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    /// One operator token in the current expression.
    fn op(&mut self) -> Step {
        self.top().ops += 1;
        self.add(1)
    }

    /// End of an expression (`,`): operator chain restarts.
    fn end_expression(&mut self) {
        let top = self.top();
        let ops = std::mem::take(&mut top.ops);
        self.total -= ops;
    }

    /// End of a statement (`;`, line-break ASI): the expression ends and the
    /// pending statement keywords end unless `else` follows.
    fn end_statement(&mut self) {
        self.end_expression();
        let top = self.top();
        top.pending_reset = true;
        let angle = std::mem::take(&mut top.angle);
        self.total -= angle * OP;
    }

    /// Resolve a pending statement reset before a token (`word` if it is a
    /// keyword or identifier).
    fn resolve_pending(&mut self, word: &[u8]) {
        let top = self.top();
        if top.pending_reset {
            top.pending_reset = false;
            if word != b"else" {
                let stmt = std::mem::take(&mut top.stmt);
                self.total -= stmt * OP;
            }
        }
    }

    fn shadow_open(&mut self) -> Step {
        self.shadow += 1;
        self.add(OP)
    }

    fn shadow_close(&mut self) {
        if self.shadow > 0 {
            self.shadow -= 1;
            self.total -= OP;
        }
    }

    /// Count brackets in literal / comment text `[from, to)`.
    fn shadow_text(&mut self, from: usize, to: usize) -> Step {
        let mut i = from;
        while i < to {
            match self.src[i] {
                b'(' | b'[' | b'{' => self.shadow_open()?,
                b')' | b']' | b'}' => self.shadow_close(),
                // An escaped character is never a bracket of code.
                b'\\' => i += 1,
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    fn mark_unbalanced(&mut self, pos: usize, message: String) {
        if self.unbalanced.is_none() {
            self.unbalanced = Some((pos, message));
        }
    }

    /// Called before every significant token: handles implicit statement
    /// ends and pending resets. `starts_statement` tells whether the token
    /// can only start a new statement (so the previous one ended).
    fn before_token(&mut self, starts_statement: bool, word: &[u8]) {
        // Two operands in a row cannot belong to one expression: a line break
        // between them (automatic semicolon) or a `}` before the second one
        // (`if (a) {…} if (b) {…}`, `x = {} y` is invalid) ends the statement.
        let separated = self.newline_before || matches!(self.prev, Prev::CloseBrace { .. });
        if separated && starts_statement && self.prev.ends_operand() {
            self.end_statement();
        }
        self.newline_before = false;
        self.resolve_pending(word);
    }

    fn push(&mut self, open: Open) -> Step {
        let pos = self.pos;
        self.stack.push(Level {
            open,
            stmt: 0,
            ops: 0,
            angle: 0,
            pending_reset: false,
            pos,
        });
        self.add(OP)
    }

    /// Handle a closing bracket. Returns what it closed, if it matched.
    fn close(&mut self, closer: u8) -> Result<Option<Open>, Exceeded> {
        let len = self.stack.len();
        let top = &self.stack[len - 1];
        let matches = match top.open {
            Open::Paren { .. } => closer == b')',
            Open::Bracket => closer == b']',
            Open::Brace { .. } | Open::TemplateExpr => closer == b'}',
            Open::Root => false,
        };
        if !matches {
            let message = format!("unmatched `{}`", closer as char);
            self.mark_unbalanced(self.pos, message);
            return Ok(None);
        }
        let Some(level) = self.stack.pop() else {
            return Ok(None);
        };
        self.total -= OP + (level.stmt + level.angle) * OP + level.ops;
        // In the regex reading of an ambiguous `/`, this closer is regex text
        // and the bracket is still open: keep its level in the shadow count.
        if let Some((end, base)) = self.candidate {
            if self.pos < end && self.stack.len() < base {
                self.shadow_open()?;
            }
        }
        Ok(Some(level.open))
    }

    /// Finds the end (index after the closing `/`) of a regex literal starting
    /// at `start` (the opening `/`), on the same line.
    fn regex_end(&mut self, start: usize) -> RegexEnd {
        match self.src.get(start + 1) {
            None | Some(b'/' | b'*' | b'\n' | b'\r') => return RegexEnd::None,
            _ => {}
        }
        let (window_start, ends) = self.regex_window(start + 1);
        match ends.get(start + 1 - window_start).map_or(UNKNOWN, |e| e[0]) {
            NO_END => RegexEnd::None,
            UNKNOWN => RegexEnd::Unknown,
            end => RegexEnd::At(end as usize),
        }
    }

    /// For positions from `at` on (up to [`REGEX_WINDOW`] bytes, and not past
    /// the end of the line): where a regex body scanned from there (outside /
    /// inside a character class) ends. Cached, so that scanning every `/` of
    /// a line stays linear in time; memory is bounded by the window.
    fn regex_window(&mut self, at: usize) -> (usize, &[[u32; 2]]) {
        let cached = matches!(&self.regex_cache, Some((s, e, _)) if *s <= at && at < *e);
        if !cached {
            let is_eol = |b: &u8| matches!(b, b'\n' | b'\r');
            let limit = self.src.len().min(at.saturating_add(REGEX_WINDOW));
            let line_end = self.src[at..limit].iter().position(is_eol).map(|i| at + i);
            let (end, beyond) = match line_end {
                Some(e) => (e, NO_END),
                None if limit == self.src.len() => (limit, NO_END),
                None => (limit, UNKNOWN),
            };
            let text = &self.src[at..end];
            let mut ends = vec![[beyond; 2]; text.len() + 1];
            for i in (0..text.len()).rev() {
                for class in 0..2 {
                    ends[i][class] = match text[i] {
                        b'\\' => ends.get(i + 2).map_or(beyond, |e| e[class]),
                        b'[' => ends[i + 1][1],
                        b']' => ends[i + 1][0],
                        // Offsets fit: `transpile` rejects sources over 4 GiB.
                        b'/' if class == 0 => u32::try_from(at + i + 1).unwrap_or(UNKNOWN),
                        _ => ends[i + 1][class],
                    };
                }
            }
            self.regex_cache = Some((at, end.max(at + 1), ends));
        }
        match &self.regex_cache {
            Some((start, _, ends)) => (*start, ends.as_slice()),
            None => (at, &[]),
        }
    }

    fn run(&mut self) -> Step {
        // Hashbang.
        if self.src.starts_with(b"#!") {
            while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                self.pos += 1;
            }
        }
        while self.pos < self.src.len() {
            if let Some((end, _)) = self.candidate {
                if self.pos >= end {
                    self.candidate = None;
                }
            }
            let b = self.src[self.pos];
            match b {
                b'\n' | b'\r' => {
                    self.newline_before = true;
                    self.pos += 1;
                }
                b' ' | b'\t' | 0x0b | 0x0c => self.pos += 1,
                b'/' if self.peek(1) == b'/' => {
                    let start = self.pos;
                    while self.pos < self.src.len() && !matches!(self.src[self.pos], b'\n' | b'\r')
                    {
                        self.pos += 1;
                    }
                    self.shadow_text(start, self.pos)?;
                }
                b'/' if self.peek(1) == b'*' => {
                    let start = self.pos;
                    let mut i = self.pos + 2;
                    let end = loop {
                        match self.src.get(i) {
                            None => break None,
                            Some(b'*') if self.src.get(i + 1) == Some(&b'/') => break Some(i + 2),
                            Some(b'\n' | b'\r') => {
                                self.newline_before = true;
                                i += 1;
                            }
                            Some(_) => i += 1,
                        }
                    };
                    let end = match end {
                        Some(end) => end,
                        None => {
                            self.mark_unbalanced(start, "unterminated comment".to_owned());
                            self.src.len()
                        }
                    };
                    self.shadow_text(start, end)?;
                    self.pos = end;
                }
                b'\'' | b'"' => {
                    self.before_token(true, b"");
                    self.op()?;
                    self.string(b)?;
                    self.prev = Prev::Literal;
                    self.prev_word = b"";
                }
                b'`' => {
                    self.before_token(false, b"");
                    self.op()?;
                    self.pos += 1;
                    self.template_text()?;
                }
                b'(' | b'[' | b'{' => {
                    self.before_token(b == b'{', b"");
                    self.op()?;
                    let keyword = self.prev == Prev::OtherKeyword;
                    let mut body = false;
                    if b == b'{'
                        && (self.prev == (Prev::CloseParen { control: true })
                            || keyword && self.prev_word == b"do")
                    {
                        // The block body of `if (…) {`, `for (…) {`, `do {` …:
                        // the brace holds the keyword's level while open.
                        let top = self.top();
                        if top.stmt > 0 {
                            top.stmt -= 1;
                            self.total -= OP;
                            body = true;
                        }
                    }
                    let open = match b {
                        b'(' => Open::Paren {
                            control: keyword
                                && matches!(self.prev_word, b"if" | b"for" | b"while" | b"with"),
                        },
                        b'[' => Open::Bracket,
                        _ => Open::Brace {
                            block: self.brace_is_block(),
                            body,
                        },
                    };
                    self.push(open)?;
                    self.prev = match b {
                        b'(' => Prev::OpenParen,
                        b'[' => Prev::OpenBracket,
                        _ => Prev::OpenBrace,
                    };
                    self.prev_word = b"";
                    self.pos += 1;
                }
                b')' | b']' | b'}' => {
                    self.before_token(false, b"");
                    let closed = self.close(b)?;
                    self.pos += 1;
                    match closed {
                        Some(Open::TemplateExpr) => {
                            // Back in template text.
                            self.template_text()?;
                        }
                        Some(Open::Paren { control }) => self.prev = Prev::CloseParen { control },
                        Some(Open::Brace { block, body }) => {
                            if body {
                                // Hand the level back to the keyword: after
                                // `if (…) {…}`, `else` may still follow.
                                self.top().stmt += 1;
                                self.add(OP)?;
                            }
                            if block {
                                // A block ends a statement unless `else` follows.
                                self.top().pending_reset = true;
                            }
                            self.prev = Prev::CloseBrace { block };
                        }
                        Some(Open::Bracket) => self.prev = Prev::CloseBracket,
                        Some(Open::Root) | None => {
                            self.prev = match b {
                                b')' => Prev::CloseParen { control: false },
                                b']' => Prev::CloseBracket,
                                _ => Prev::CloseBrace { block: false },
                            };
                        }
                    }
                    self.prev_word = b"";
                }
                b';' => {
                    self.before_token(false, b"");
                    self.end_statement();
                    self.prev = Prev::Semi;
                    self.prev_word = b"";
                    self.pos += 1;
                }
                b',' => {
                    self.before_token(false, b"");
                    self.end_expression();
                    self.prev = Prev::Comma;
                    self.prev_word = b"";
                    self.pos += 1;
                }
                b'/' => {
                    self.before_token(false, b"");
                    let start = self.pos;
                    let regex_end = match self.regex_end(start) {
                        RegexEnd::At(end) => Some(end),
                        RegexEnd::None => None,
                        RegexEnd::Unknown => {
                            if self.prev.regex_allowed() {
                                let message = "regular expression too long to check".to_owned();
                                self.mark_unbalanced(start, message);
                            }
                            None
                        }
                    };
                    if self.prev.regex_allowed() {
                        if let Some(end) = regex_end {
                            self.op()?;
                            self.shadow_text(start + 1, end - 1)?;
                            self.pos = end;
                            while self.pos < self.src.len() && is_ident_byte(self.src[self.pos]) {
                                self.pos += 1;
                            }
                            self.prev = Prev::Literal;
                            self.prev_word = b"";
                            continue;
                        }
                    }
                    // Division (`/` or `/=`).
                    if let Some(end) = regex_end {
                        let base = match self.candidate {
                            Some((_, base)) => base.min(self.stack.len()),
                            None => self.stack.len(),
                        };
                        self.candidate = Some((end, base));
                    }
                    self.op()?;
                    self.pos += 1;
                    if self.peek(0) == b'=' {
                        self.pos += 1;
                    }
                    self.prev = Prev::Punct;
                    self.prev_word = b"";
                }
                b'0'..=b'9' => {
                    self.before_token(true, b"");
                    self.number();
                    self.prev = Prev::Literal;
                    self.prev_word = b"";
                }
                b'.' if self.peek(1).is_ascii_digit() => {
                    self.before_token(false, b"");
                    self.number();
                    self.prev = Prev::Literal;
                    self.prev_word = b"";
                }
                _ if is_ident_byte(b) || b == b'#' || b == b'\\' => self.word()?,
                _ => self.punct()?,
            }
        }
        if self.unbalanced.is_none() && self.stack.len() > 1 {
            if let Some(level) = self.stack.last() {
                let what = match level.open {
                    Open::Paren { .. } => "unclosed `(`",
                    Open::Bracket => "unclosed `[`",
                    Open::Brace { .. } => "unclosed `{`",
                    Open::TemplateExpr => "unclosed `${` in template literal",
                    Open::Root => "unbalanced brackets",
                };
                let pos = level.pos;
                self.mark_unbalanced(pos, what.to_owned());
            }
        }
        Ok(())
    }

    /// Whether a `{` at the current position opens a block-like body.
    fn brace_is_block(&self) -> bool {
        match self.prev {
            Prev::Start
            | Prev::Semi
            | Prev::CloseParen { .. }
            | Prev::CloseBrace { .. }
            | Prev::Arrow
            | Prev::Operand
            | Prev::Literal
            | Prev::CloseBracket
            | Prev::Greater => true,
            // `else {`, `do {`, `try {`, `static {`, `class {` …, but not the
            // lists of `export {` / `import {` or `export default {…}`.
            Prev::OtherKeyword => !matches!(self.prev_word, b"export" | b"import" | b"default"),
            Prev::OpenBrace | Prev::Colon => matches!(
                self.stack.last().map(|l| l.open),
                Some(Open::Root | Open::Brace { block: true, .. })
            ),
            Prev::ExprKeyword
            | Prev::OpenParen
            | Prev::OpenBracket
            | Prev::Comma
            | Prev::Dot
            | Prev::IncDec
            | Prev::Punct => false,
        }
    }

    fn string(&mut self, quote: u8) -> Step {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.src.get(self.pos) {
                None => {
                    self.mark_unbalanced(start, "unterminated string literal".to_owned());
                    break;
                }
                Some(b'\\') => self.pos += 2,
                Some(b'\n' | b'\r') => {
                    self.mark_unbalanced(start, "unterminated string literal".to_owned());
                    break;
                }
                Some(&c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        let end = self.pos.min(self.src.len());
        self.pos = end;
        self.shadow_text(start + 1, end)
    }

    /// Scans template text from the current position (just after `` ` `` or
    /// the `}` closing a `${`) up to the closing `` ` `` or a `${`.
    fn template_text(&mut self) -> Step {
        let start = self.pos;
        loop {
            match self.src.get(self.pos) {
                None => {
                    self.mark_unbalanced(start, "unterminated template literal".to_owned());
                    self.shadow_text(start, self.src.len())?;
                    self.pos = self.src.len();
                    self.prev = Prev::Literal;
                    return Ok(());
                }
                Some(b'\\') => self.pos += 2,
                Some(b'`') => {
                    let end = self.pos;
                    self.shadow_text(start, end)?;
                    self.pos += 1;
                    self.prev = Prev::Literal;
                    self.prev_word = b"";
                    return Ok(());
                }
                Some(b'$') if self.peek(1) == b'{' => {
                    let end = self.pos;
                    self.shadow_text(start, end)?;
                    self.push(Open::TemplateExpr)?;
                    self.pos += 2;
                    self.prev = Prev::OpenBrace;
                    self.prev_word = b"";
                    return Ok(());
                }
                Some(b'\n' | b'\r') => {
                    self.pos += 1;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn number(&mut self) {
        let start = self.pos;
        let hex = matches!(
            self.src.get(start..start + 2),
            Some(b"0x" | b"0X" | b"0b" | b"0B" | b"0o" | b"0O")
        );
        while let Some(&c) = self.src.get(self.pos) {
            let exponent_sign = !hex
                && (c == b'+' || c == b'-')
                && matches!(self.src.get(self.pos.wrapping_sub(1)), Some(b'e' | b'E'));
            if is_ident_byte(c) || c == b'.' || exponent_sign {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> Step {
        let start = self.pos;
        if matches!(self.src[self.pos], b'#' | b'\\') {
            self.pos += 1;
        }
        while let Some(&c) = self.src.get(self.pos) {
            if is_ident_byte(c) {
                self.pos += 1;
            } else if c == b'\\' {
                // Unicode escape in an identifier.
                self.pos += 2;
            } else {
                break;
            }
        }
        self.pos = self.pos.min(self.src.len());
        let word: &'s [u8] = &self.src[start..self.pos];
        let text = std::str::from_utf8(word).unwrap_or("");
        if self.prev == Prev::Dot {
            // Property name: never a keyword.
            self.before_token(false, word);
            self.prev = Prev::Operand;
            self.prev_word = b"";
            return Ok(());
        }
        let continuation = CONTINUATION_KEYWORDS.contains(&text);
        self.before_token(!continuation, word);
        if NESTING_KEYWORDS.contains(&text) {
            self.top().stmt += 1;
            self.add(OP)?;
            self.prev = Prev::OtherKeyword;
        } else if OPERATOR_KEYWORDS.contains(&text) {
            self.op()?;
            self.prev = if EXPR_KEYWORDS.contains(&text) {
                Prev::ExprKeyword
            } else {
                Prev::OtherKeyword
            };
        } else if EXPR_KEYWORDS.contains(&text) {
            self.prev = Prev::ExprKeyword;
        } else if OPERAND_KEYWORDS.contains(&text) {
            self.prev = Prev::Operand;
        } else if OTHER_KEYWORDS.contains(&text) {
            self.prev = Prev::OtherKeyword;
        } else {
            self.prev = Prev::Operand;
        }
        self.prev_word = word;
        Ok(())
    }

    fn punct(&mut self) -> Step {
        const OPERATORS: &[&[u8]] = &[
            b">>>=", b"===", b"!==", b"...", b"**=", b"<<=", b">>=", b">>>", b"&&=", b"||=",
            b"??=", b"=>", b"==", b"!=", b"<=", b">=", b"&&", b"||", b"??", b"**", b"<<", b">>",
            b"+=", b"-=", b"*=", b"%=", b"&=", b"|=", b"^=", b"++", b"--",
        ];
        let rest = &self.src[self.pos..];
        let mut len = OPERATORS
            .iter()
            .find(|op| rest.starts_with(op))
            .map_or(1, |op| op.len());
        // `?.` (but not `a?.5:b`).
        if rest.starts_with(b"?.") && !self.peek(2).is_ascii_digit() {
            len = 2;
        }
        let token = &rest[..len];
        let (prev, starts_statement) = match token {
            b"=>" => (Prev::Arrow, false),
            b"." | b"?." => (Prev::Dot, false),
            b":" => (Prev::Colon, false),
            b">" => (Prev::Greater, false),
            b"++" | b"--" => {
                // Postfix after an operand on the same line; after a line
                // break it starts a new statement (restricted production).
                if !self.newline_before && self.prev.ends_operand() {
                    (Prev::IncDec, false)
                } else {
                    (Prev::Punct, true)
                }
            }
            b"!" | b"~" | b"@" => (Prev::Punct, true),
            _ => (Prev::Punct, false),
        };
        self.before_token(starts_statement, b"");
        self.op()?;
        match token {
            b"<" => {
                self.top().angle += 1;
                self.add(OP)?;
            }
            b">" | b">>" | b">>>" => {
                let top = self.top();
                let closed = top.angle.min(len);
                top.angle -= closed;
                self.total -= closed * OP;
            }
            _ => {}
        }
        self.pos += len;
        self.prev = prev;
        self.prev_word = b"";
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(src: &str, max: usize) -> bool {
        check_depth(src, max).is_ok()
    }

    #[test]
    fn plain_code_passes() {
        let src = r#"
            import { x } from "./y";
            function f(a: number[]): { b: string } {
                if (a.length > 2) { return { b: "(((" }; }
                for (let i = 0; i < 10; i++) console.log(`${i} ${"}"}`);
                const re = /[({]+/g, d = 10 / 2 / 5;
                return { b: `x${{ a: 1 }.a}` };
            }
        "#;
        assert!(depth_ok(src, 20));
    }

    #[test]
    fn parens_are_counted() {
        let n = 50;
        let src = format!("x = {}1{};", "(".repeat(n), ")".repeat(n));
        // Each `(` is a level plus an operator unit (it may be a call).
        assert!(depth_ok(&src, 70));
        assert!(matches!(
            check_depth(&src, 40),
            Err(TranspileError::TooDeep { max: 40, .. })
        ));
    }

    #[test]
    fn brackets_in_strings_do_not_nest() {
        // Counted in the shadow nesting while open, but they do not add up.
        let src = "x = \"((((((((((((((((((((\" + \"))))))))))))))))))))\";\n".repeat(50);
        assert!(depth_ok(&src, 25));
        let src = "x = \"(\" + a + \")\";\n".repeat(5000);
        assert!(depth_ok(&src, 5));
    }

    #[test]
    fn braceless_statements_are_counted() {
        let src = format!("{};", "for(;;)".repeat(100));
        assert!(check_depth(&src, 50).is_err());
        let src = format!("{};", "if (x) ".repeat(100));
        assert!(check_depth(&src, 50).is_err());
        let src = format!("{};", "while (x) ".repeat(100));
        assert!(check_depth(&src, 50).is_err());
        let src = format!("{};", "if (x)\n".repeat(100));
        assert!(check_depth(&src, 50).is_err());
        let src = format!("{}x;", "do\n".repeat(100));
        assert!(check_depth(&src, 50).is_err());
    }

    #[test]
    fn sequential_statements_do_not_accumulate() {
        let src = "if (x) { y(); }\nfor (;;) z();\nwhile (a) b();\n".repeat(500);
        assert!(depth_ok(&src, 10));
        let src = "if (x) { y() } if (x) { y() } ".repeat(500);
        assert!(depth_ok(&src, 10));
        let src = "let a = 1 + 2\nlet b = a * 3\nconsole.log(a, b)\n".repeat(2000);
        assert!(depth_ok(&src, 10));
    }

    #[test]
    fn else_if_chains_accumulate() {
        let src = format!("if (x) {{}}{}", " else if (x) {}".repeat(200));
        assert!(check_depth(&src, 100).is_err());
        let src = format!("if (x) y;{}", " else if (x) y;".repeat(200));
        assert!(check_depth(&src, 100).is_err());
        let src = format!("if (x) y\n{}", "else if (x) y\n".repeat(200));
        assert!(check_depth(&src, 100).is_err());
    }

    #[test]
    fn operator_chains_are_counted() {
        for unit in ["!", "+1", ".b", "()", "a=", "x?1:", "a=>", "A<", "- "] {
            let src = format!("x = {}1;", unit.repeat(OP * 200));
            assert!(check_depth(&src, 100).is_err(), "{unit}");
        }
        let src = "x = 1 + 2 + 3, y = 4 + 5;\n".repeat(1000);
        assert!(depth_ok(&src, 10));
    }

    #[test]
    fn templates_nest() {
        let n = 50;
        let src = format!("x = {}1{};", "`${".repeat(n), "}`".repeat(n));
        assert!(depth_ok(&src, 70));
        assert!(check_depth(&src, 40).is_err());
    }

    #[test]
    fn regex_brackets_do_not_close_code() {
        // A regex full of closers must not hide real nesting.
        let src = format!(
            "{}\n{}",
            "x = ((((((((((".repeat(10),
            "if (a) /)))))))))))/.test(b);\n".repeat(10)
        );
        assert!(check_depth(&src, 50).is_err());
    }

    #[test]
    fn ambiguous_division_is_conservative() {
        // `function f(): void {}` then `/…/`: read as division, but in the
        // regex reading the `}` closers are regex text.
        let inner = "{ function f(): void {} /}/; ".repeat(100);
        assert!(check_depth(&inner, 50).is_err());
    }

    #[test]
    fn unbalanced_small_file_is_left_to_the_parser() {
        assert!(depth_ok("let x = (1;", 1000));
        assert!(depth_ok("let x = 1);", 1000));
    }

    #[test]
    fn unbalanced_large_file_is_rejected() {
        let src = format!("{}\n}}", "let x = (1 + 2) * 3;\n".repeat(2000));
        assert!(matches!(
            check_depth(&src, 100),
            Err(TranspileError::Unbalanced { line: 2002, .. })
        ));
    }

    #[test]
    fn long_lines_stay_linear() {
        let started = std::time::Instant::now();
        // Every `/` could start a regex whose class never closes.
        let src = format!("x = a{};", " / [b".repeat(300_000));
        let _ = check_depth(&src, 1000);
        let src = format!("x = a{};", " / b".repeat(300_000));
        let _ = check_depth(&src, 1000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for src in [
            "", "/", "'", "\"", "`", "`${", "${", "\\", "/*", "//", "#!", "#", "1e+", "0x1e+1",
            "a\\", "é/[/", "/[\\", "x = /", "}", ")", "]", "`${}", "`${`${`", "\u{2028}", "a?.5:b",
        ] {
            let _ = check_depth(src, 0);
            let _ = check_depth(src, 3);
        }
    }
}
