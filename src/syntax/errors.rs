//! Turns pest's errors into diagnostics in plain words. pest reports the rules it tried at the
//! failing position; users never see rule names, only what could have stood there.

use super::Rule;
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::source::{FileId, Span};
use pest::error::{Error, ErrorVariant, InputLocation};

/// Describes a parse error in `text[offset..]` (a chunk parsed alone; spans are file-relative).
pub(super) fn describe(file: FileId, text: &str, offset: usize, err: &Error<Rule>) -> Diagnostic {
    let chunk_pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let pos = offset + chunk_pos;
    if std::env::var("NNL_DEBUG_POSITIVES").is_ok() {
        eprintln!("{:?}", err.variant);
    }
    let positives: &[Rule] = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { .. } => &[],
    };
    if let ErrorVariant::CustomError { .. } = err.variant {
        // pest's own guard: the input nests deeper than the stack allows (closures or `if`
        // conditions, which need no brackets to nest).
        return too_deep(file, pos.min(text.len().saturating_sub(1)));
    }
    let chunk_end = chunk_end(text, offset);
    if let Some(d) = unterminated_string(file, text, pos) {
        return d;
    }
    let found = found_token(text, pos);
    let span = Span::new(
        file,
        pos,
        pos + found.len().max(1).min(text.len() - pos.min(text.len())),
    );
    if let Some(dtype) = dtype_before(text, pos)
        && !text[pos..].starts_with('[')
        && positives_mention_shape(positives)
    {
        return Diagnostic::error(
            codes::DTYPE_WITHOUT_SHAPE,
            format!("expected a shape like `[B, 784]` after `{dtype}`"),
        )
        .with_primary(span, "a shape in square brackets was expected here")
        .with_help(format!(
            "write the dimensions in brackets, e.g. `{dtype}[B, 784]`; a bare `{dtype}` is a scalar"
        ));
    }
    if let Some(d) = unclosed_delimiter(file, text, offset, chunk_end, pos) {
        return d;
    }
    if let Some(d) = let_with_type(file, text, pos) {
        return d;
    }
    if let Some(d) = misplaced_equals(file, text, offset, pos, &found) {
        return d;
    }
    if let Some(d) = missing_comma(file, text, offset, pos, &found, positives) {
        return d;
    }
    if is_reserved(&found) && positives.contains(&Rule::ident) {
        return Diagnostic::error(
            codes::RESERVED_WORD,
            format!("`{found}` is a reserved word and cannot be used as a name"),
        )
        .with_primary(span, "a name was expected here")
        .with_help(format!("choose another name, such as `{found}_`"));
    }
    let line_start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let starts_line = text[line_start..pos.min(text.len())].trim().is_empty();
    if starts_line && let Some(d) = foreign_keyword(span, &found) {
        return d;
    }
    let expected = describe_positives(positives);
    let found_words = if found.is_empty() {
        "the end of the file".to_string()
    } else {
        format!("`{found}`")
    };
    let mut d = match expected {
        Some(expected) => Diagnostic::error(
            codes::SYNTAX,
            format!("expected {expected}, found {found_words}"),
        )
        .with_primary(span, format!("expected {expected} here")),
        None => Diagnostic::error(codes::SYNTAX, format!("unexpected {found_words}"))
            .with_primary(span, "not expected here"),
    };
    if let Some(h) = hint_for(&found, positives) {
        d = d.with_help(h);
    }
    d
}

/// `let h: f32[B, 128] = …`: a Rust-style annotation, which `let` does not take.
fn let_with_type(file: FileId, text: &str, pos: usize) -> Option<Diagnostic> {
    let rest = text.get(pos..)?;
    let after_let = rest.strip_prefix("let")?;
    let name_start = after_let.len() - after_let.trim_start_matches([' ', '\t']).len();
    if name_start == 0 {
        return None;
    }
    let after_name = &after_let[name_start..];
    let name_len = after_name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(after_name.len());
    if name_len == 0 {
        return None;
    }
    let after = &after_name[name_len..];
    let colon = after.len() - after.trim_start_matches([' ', '\t']).len();
    if !after[colon..].starts_with(':') {
        return None;
    }
    let line = after[colon..].split('\n').next().unwrap_or("");
    let annotation_len = line.find('=').unwrap_or(line.len());
    let start = pos + 3 + name_start + name_len + colon;
    let annotation = &text[start..start + annotation_len];
    let name = &after_name[..name_len];
    Some(
        Diagnostic::error(codes::SYNTAX, "`let` takes no type annotation")
            .with_primary(
                Span::new(file, start, start + annotation.trim_end().len()),
                "remove this type",
            )
            .with_help(format!(
                "write `let {name} = …`; the checker infers the type (types are written on parameters and return types)"
            )),
    )
}

/// The brackets of `chunk` outside strings and comments, with their byte index in it.
fn brackets(chunk: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    visible(chunk).filter(|&(_, c)| matches!(c, '(' | '[' | '{' | ')' | ']' | '}'))
}

/// The characters of `chunk` outside strings and comments, with their byte index in it.
fn visible(chunk: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    chunk.char_indices().filter(move |&(_, c)| {
        if in_comment {
            in_comment = c != '\n';
            return false;
        }
        if escaped {
            escaped = false;
            return false;
        }
        match c {
            '"' => in_string = !in_string,
            '\\' if in_string => escaped = true,
            // A string ends at the end of its line (the unterminated-string error says so).
            '\n' => in_string = false,
            _ if in_string => {}
            '#' => in_comment = true,
            _ => return true,
        }
        false
    })
}

/// The byte index of the first bracket, closure or `if` in `chunk` that opens a level deeper
/// than [`super::MAX_NESTING`], found before parsing so that the parser never recurses that
/// deep.
///
/// The parser recurses once per bracket, once per closure (`|a| |b| a + b` nests two deep
/// without a bracket) and once per `if` (`if if c { a } { b }` nests the inner `if` in the
/// outer one's condition). A closure's level ends where the bracket it is written in closes,
/// or at a separator in that bracket (a `,` or `;` outside closure parameters, or a word that
/// starts a statement); an `if`'s level ends with the block that follows its condition.
/// Counting them until then can only count too many levels.
pub(super) fn too_deep_bracket(chunk: &str) -> Option<usize> {
    let mut levels = vec![BracketLevel::default()];
    let mut depth = 0usize;
    let mut in_params = false;
    for (i, mark) in nesting_marks(chunk) {
        let level = levels.last_mut().expect("the outermost level stays");
        let opens = match mark {
            Mark::Open(bracket) => {
                // The `if`s whose conditions this block ends close with it.
                let ifs = if bracket == '{' {
                    std::mem::take(&mut level.ifs)
                } else {
                    0
                };
                levels.push(BracketLevel {
                    closures: 0,
                    ifs: 0,
                    closing_ifs: ifs,
                });
                true
            }
            Mark::Close => {
                if levels.len() > 1 {
                    let ended = levels.pop().expect("more than one level");
                    depth = depth.saturating_sub(1 + ended.open());
                }
                false
            }
            Mark::Separator => {
                if !in_params {
                    depth = depth.saturating_sub(level.closures + level.ifs);
                    level.closures = 0;
                    level.ifs = 0;
                }
                false
            }
            Mark::Bar => {
                // A closure's parameters sit between two bars; the first one opens it.
                in_params = !in_params;
                level.closures += usize::from(in_params);
                in_params
            }
            Mark::If => {
                level.ifs += 1;
                true
            }
        };
        if opens {
            depth += 1;
            if depth > super::MAX_NESTING {
                return Some(i);
            }
        }
    }
    None
}

/// The levels [`too_deep_bracket`] counts inside one bracket besides the bracket itself.
#[derive(Default)]
struct BracketLevel {
    /// Closures opened in the bracket and not yet ended.
    closures: usize,
    /// `if`s whose condition is being read.
    ifs: usize,
    /// `if`s of the enclosing bracket whose block this bracket is.
    closing_ifs: usize,
}

impl BracketLevel {
    fn open(&self) -> usize {
        self.closures + self.ifs + self.closing_ifs
    }
}

/// What [`too_deep_bracket`] counts.
enum Mark {
    Open(char),
    Close,
    /// `,`, `;`, or a word that starts a statement (no expression contains one).
    Separator,
    /// A bar of a closure's parameters (not the `|` of `|>`).
    Bar,
    /// The word `if`.
    If,
}

const STATEMENT_WORDS: [&str; 4] = ["let", "param", "state", "yield"];

/// The marks of `chunk` outside strings and comments, with their byte index in it.
fn nesting_marks(chunk: &str) -> impl Iterator<Item = (usize, Mark)> + '_ {
    let bytes = chunk.as_bytes();
    let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let word_at = move |i: usize, word: &str| {
        (i == 0 || !is_word_byte(bytes[i - 1]))
            && bytes[i..].starts_with(word.as_bytes())
            && !bytes.get(i + word.len()).is_some_and(|&b| is_word_byte(b))
    };
    visible(chunk).filter_map(move |(i, c)| {
        let mark = match c {
            '(' | '[' | '{' => Mark::Open(c),
            ')' | ']' | '}' => Mark::Close,
            ',' | ';' => Mark::Separator,
            '|' if bytes.get(i + 1) != Some(&b'>') => Mark::Bar,
            'i' if word_at(i, "if") => Mark::If,
            'l' | 'p' | 's' | 'y' if STATEMENT_WORDS.iter().any(|w| word_at(i, w)) => {
                Mark::Separator
            }
            _ => return None,
        };
        Some((i, mark))
    })
}

/// The error for a construct that nests deeper than [`super::MAX_NESTING`], at offset `at`.
pub(super) fn too_deep(file: FileId, at: usize) -> Diagnostic {
    let limit = super::MAX_NESTING;
    Diagnostic::error(
        codes::NESTING_TOO_DEEP,
        format!("expression nested deeper than {limit} levels"),
    )
    .with_primary(
        Span::new(file, at, at + 1),
        format!("this is more than {limit} levels deep"),
    )
    .with_note("each bracket, block, `if`, closure and operator of a chain is a level: `a + b + c` nests two deep")
    .with_help("name the inner parts with `let` and combine the names")
}

/// The innermost bracket still open at `pos` in the chunk starting at `offset`.
fn open_bracket(text: &str, offset: usize, pos: usize) -> Option<char> {
    let mut stack = Vec::new();
    for (_, c) in brackets(text.get(offset..pos)?) {
        if matches!(c, '(' | '[' | '{') {
            stack.push(c);
        } else {
            stack.pop();
        }
    }
    stack.last().copied()
}

/// The identifier that ends right before `pos` (spaces skipped), and the text before it.
fn word_before(text: &str, pos: usize) -> Option<(&str, &str)> {
    let before = text.get(..pos)?.trim_end_matches([' ', '\t']);
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let word = &before[start..];
    (!word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (word, &before[..start]))
}

/// `=` where an operator was expected: Python's `lr=1e-3` in a call, or `=` for `==`.
fn misplaced_equals(
    file: FileId,
    text: &str,
    offset: usize,
    pos: usize,
    found: &str,
) -> Option<Diagnostic> {
    if found != "=" || text.get(pos..)?.starts_with("==") {
        return None;
    }
    let span = Span::new(file, pos, pos + 1);
    if open_bracket(text, offset, pos) == Some('(')
        && let Some((name, before)) = word_before(text, pos)
        && before.trim_end().ends_with(['(', ','])
    {
        let value: String = text[pos + 1..]
            .chars()
            .take_while(|c| !matches!(c, ',' | ')' | '\n'))
            .collect();
        return Some(
            Diagnostic::error(
                codes::SYNTAX,
                format!("`{name}=` is not how arguments are named"),
            )
            .with_primary(span, "write `:` instead of `=`")
            .with_help(format!(
                "named arguments use `:`: `{name}: {}`",
                value.trim()
            )),
        );
    }
    let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let in_where = text[line_start..pos]
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == "where");
    in_where.then(|| {
        Diagnostic::error(
            codes::SYNTAX,
            "a `where` condition compares with `==`, not `=`",
        )
        .with_primary(span, "write `==` here")
        .with_help("`=` only binds names (`let x = …`) and assigns states")
    })
}

/// Two arguments or list items with no `,` between them: `adam(lr: 1e-3 weight_decay: 1e-4)`.
fn missing_comma(
    file: FileId,
    text: &str,
    offset: usize,
    pos: usize,
    found: &str,
    positives: &[Rule],
) -> Option<Diagnostic> {
    let starts_value = found
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"');
    let after_value = positives.iter().any(|r| {
        matches!(
            r,
            Rule::pipe_op | Rule::add_op | Rule::mul_op | Rule::call_args | Rule::range_op
        )
    });
    if !starts_value || !after_value || !matches!(open_bracket(text, offset, pos), Some('(' | '['))
    {
        return None;
    }
    let span = Span::new(file, pos, pos + found.len().max(1));
    Some(
        Diagnostic::error(codes::SYNTAX, format!("a `,` is missing before `{found}`"))
            .with_primary(span, "separate this from what comes before with `,`")
            .with_help("arguments and list items are separated by commas: `adam(lr: 1e-3, weight_decay: 1e-4)`"),
    )
}

fn chunk_end(text: &str, offset: usize) -> usize {
    // The chunk ends where the next item starts; recompute it like the splitter does.
    let mut pos = offset;
    let mut first = true;
    for line in text[offset..].split_inclusive('\n') {
        if !first && super::starts_item(line) {
            return pos;
        }
        first = false;
        pos += line.len();
    }
    text.len()
}

fn found_token(text: &str, pos: usize) -> String {
    let rest = &text[pos.min(text.len())..];
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !word.is_empty() {
        return word;
    }
    for op in ["|>", "->", "==", "!=", "<=", ">=", ".."] {
        if rest.starts_with(op) {
            return op.to_string();
        }
    }
    match rest.chars().next() {
        Some('\n') => "a line break".to_string(),
        Some(c) => c.to_string(),
        None => String::new(),
    }
}

fn is_reserved(word: &str) -> bool {
    matches!(
        word,
        "fn" | "let"
            | "param"
            | "state"
            | "if"
            | "else"
            | "training"
            | "scan"
            | "yield"
            | "where"
            | "phase"
            | "update"
            | "constrain"
            | "true"
            | "false"
            | "and"
            | "or"
            | "not"
    )
}

/// The dtype word right before `pos` (ignoring spaces), if any.
fn dtype_before(text: &str, pos: usize) -> Option<&'static str> {
    let before = text[..pos.min(text.len())].trim_end_matches([' ', '\t']);
    ["f32", "f64", "i32", "bool"].into_iter().find(|d| {
        before.ends_with(d)
            && !before[..before.len() - d.len()]
                .ends_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

fn positives_mention_shape(positives: &[Rule]) -> bool {
    positives.is_empty()
        || positives.iter().any(|r| {
            matches!(
                r,
                Rule::shape | Rule::param | Rule::type_expr | Rule::param_list | Rule::block
            )
        })
        || positives.contains(&Rule::ret_type)
        || positives.contains(&Rule::where_clause)
}

fn unterminated_string(file: FileId, text: &str, pos: usize) -> Option<Diagnostic> {
    let line_start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let code = line.split('#').next().unwrap_or("");
    let mut open = None;
    let mut escaped = false;
    for (i, c) in code.char_indices() {
        match c {
            '\\' if open.is_some() && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => open = if open.is_some() { None } else { Some(i) },
            _ => {}
        }
        escaped = false;
    }
    open.map(|i| {
        let start = line_start + i;
        Diagnostic::error(codes::UNTERMINATED_STRING, "this string is never closed")
            .with_primary(Span::new(file, start, line_end), "the string starts here")
            .with_help("add the closing `\"` on the same line; strings cannot span lines")
    })
}

fn unclosed_delimiter(
    file: FileId,
    text: &str,
    offset: usize,
    chunk_end: usize,
    pos: usize,
) -> Option<Diagnostic> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    for (i, c) in brackets(&text[offset..chunk_end]) {
        match c {
            '(' | '[' | '{' => stack.push((c, offset + i)),
            _ => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, at)) => {
                        let close_at = offset + i;
                        return Some(
                            Diagnostic::error(
                                codes::UNBALANCED_DELIMITER,
                                format!("`{c}` does not match the `{open}` it closes"),
                            )
                            .with_primary(
                                Span::new(file, close_at, close_at + 1),
                                format!("found `{c}` here"),
                            )
                            .with_secondary(
                                Span::new(file, at, at + 1),
                                format!("this `{open}` is still open"),
                            )
                            .with_help(format!("close it with `{}` first", closer(open))),
                        );
                    }
                    None => {
                        let close_at = offset + i;
                        return Some(
                            Diagnostic::error(
                                codes::UNBALANCED_DELIMITER,
                                format!("`{c}` has no matching opening `{want}`"),
                            )
                            .with_primary(
                                Span::new(file, close_at, close_at + 1),
                                "unexpected closing delimiter",
                            )
                            .with_help("remove it, or add the opening delimiter it belongs to"),
                        );
                    }
                }
            }
        }
    }
    let at_end = text[pos.min(chunk_end)..chunk_end].trim().is_empty();
    match stack.last() {
        Some(&(open, at)) if at_end => Some(
            Diagnostic::error(
                codes::UNBALANCED_DELIMITER,
                format!("this `{open}` is never closed"),
            )
            .with_primary(Span::new(file, at, at + 1), "opened here")
            .with_help(format!("add the matching `{}`", closer(open))),
        ),
        _ => None,
    }
}

fn closer(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

fn describe_rule(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::ident | Rule::module_path | Rule::named_type => "a name",
        Rule::expr
        | Rule::or_expr
        | Rule::unary_op
        | Rule::postfix
        | Rule::primary
        | Rule::number
        | Rule::list
        | Rule::paren
        | Rule::closure
        | Rule::if_expr
        | Rule::scan_expr
        | Rule::bool_lit
        | Rule::training
        | Rule::expr_stmt
        | Rule::setting_values
        | Rule::expr_list
        | Rule::shape_item
        | Rule::list_item
        | Rule::arg => "an expression",
        Rule::shape => "a shape like `[B, 784]`",
        Rule::type_expr | Rule::dtype_type | Rule::dtype | Rule::tuple_type | Rule::param_type => {
            "a type like `f32[B, 784]`"
        }
        Rule::block => "a block `{ … }`",
        Rule::param_list => "a parameter list `( … )`",
        Rule::param => "a parameter like `x: f32[B, N]`",
        Rule::call_args | Rule::setting_call => "arguments in parentheses",
        Rule::string => "a string",
        Rule::use_names => "`.{Name, …}` or `.*`",
        Rule::ret_type => "`->` and a return type",
        Rule::where_clause => "a `where` clause",
        Rule::pattern => "a name or a tuple pattern like `(h, c)`",
        Rule::use_decl
        | Rule::data_decl
        | Rule::def_decl
        | Rule::train_decl
        | Rule::search_decl
        | Rule::EOI => "an item (`use`, `data`, `model`, `layer`, `fn`, `optimizer`, `train`, …)",
        // Where an item may start, the item words already say it.
        Rule::def_kind => {
            "an item (`use`, `data`, `model`, `layer`, `fn`, `optimizer`, `train`, …)"
        }
        Rule::let_stmt
        | Rule::param_stmt
        | Rule::state_stmt
        | Rule::yield_stmt
        | Rule::assign_stmt => "a statement",
        Rule::field_stmt | Rule::source_stmt | Rule::split_stmt => {
            "a data entry (`train = …`, `x: f32[4] = …`, `split val = 0.1 of train`)"
        }
        Rule::setting | Rule::setting_assign => "a setting like `epochs 5` or `loss = …`",
        Rule::phase | Rule::update_stmt | Rule::constrain_stmt => "a training statement",
        Rule::search_dim => "a search dimension like `hidden in [64, 128]`",
        Rule::search_goal | Rule::goal_dir => "`maximize` or `minimize`",
        Rule::pipe_op
        | Rule::or_op
        | Rule::and_op
        | Rule::cmp_op
        | Rule::add_op
        | Rule::mul_op
        | Rule::pow_op => "an operator",
        Rule::range_op => "`..`",
        Rule::member => "`.name`",
        Rule::pack => "`..S`",
        Rule::kw_on => "`on`",
        Rule::kw_with => "`with`",
        Rule::kw_of => "`of`",
        Rule::kw_over => "`over`",
        Rule::kw_in => "`in`",
        Rule::kw_else => "`else`",
        Rule::constraint => "a condition",
        _ => return None,
    })
}

/// Definitions written the way another language writes them.
fn foreign_keyword(span: Span, found: &str) -> Option<Diagnostic> {
    let (kind, example) = match found {
        "def" | "func" | "function" => (
            "functions",
            "fn swish(x: f32[..S]) -> f32[..S] { x * sigmoid(x) }",
        ),
        "class" | "struct" => (
            "layers",
            "layer Block(units: int)(x: f32[B, N]) -> f32[B, units] { … }",
        ),
        _ => return None,
    };
    let keyword = if kind == "functions" { "fn" } else { "layer" };
    Some(
        Diagnostic::error(
            codes::SYNTAX,
            format!("nnl declares {kind} with `{keyword}`, not `{found}`"),
        )
        .with_primary(span, format!("write `{keyword}` here"))
        .with_help(format!(
            "parameters have types and the body is in braces: `{example}`"
        )),
    )
}

fn describe_positives(positives: &[Rule]) -> Option<String> {
    let mut words: Vec<&str> = Vec::new();
    for w in positives.iter().filter_map(|r| describe_rule(*r)) {
        if !words.contains(&w) {
            words.push(w);
        }
    }
    match words.len() {
        0 => None,
        1 => Some(words[0].to_string()),
        n => Some(format!("{} or {}", words[..n - 1].join(", "), words[n - 1])),
    }
}

fn hint_for(found: &str, positives: &[Rule]) -> Option<String> {
    match found {
        "=" if positives.contains(&Rule::cmp_op)
            || positives.iter().any(|r| matches!(r, Rule::pipe_op)) =>
        {
            Some("to compare values write `==`; to bind a name write `let name = …`".into())
        }
        "def" | "func" | "function" => Some("functions are declared with `fn`".into()),
        "class" | "struct" => {
            Some("declare a layer with `layer Name(attributes)(inputs) { … }`".into())
        }
        "//" | "/" if positives.is_empty() => Some("comments start with `#`".into()),
        "return" => Some("a block's value is its last expression; there is no `return`".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> String {
        format!("fn f(x: f32) -> f32 {{\n{text}\n  x\n}}\n")
    }

    #[test]
    fn closures_and_ifs_nest_until_their_bracket_block_or_a_separator_ends_them() {
        let count = super::super::MAX_NESTING + 44;
        let nested = body(&format!("  let g = {}x", "|a| ".repeat(count)));
        assert!(too_deep_bracket(&nested).is_some());
        let nested_pairs = body(&format!("  let g = {}x", "|(a, b), c| ".repeat(count)));
        assert!(too_deep_bracket(&nested_pairs).is_some());
        let statements: String = (0..count)
            .map(|i| format!("  let g{i} = |a| a + 1\n"))
            .collect();
        assert_eq!(too_deep_bracket(&body(&statements)), None);
        let arguments = body(&format!("  h({})", "|a| a, ".repeat(count)));
        assert_eq!(too_deep_bracket(&arguments), None);
        let bracketed = body(&format!("  let g = {}", "(|a| a) |> ".repeat(count)));
        assert_eq!(too_deep_bracket(&bracketed), None);
        let conditions = body(&format!(
            "  {}true{}",
            "if ".repeat(count),
            " { x } else { x }".repeat(count)
        ));
        assert!(too_deep_bracket(&conditions).is_some());
        let statements: String = (0..count)
            .map(|i| format!("  if c{i} {{ x }} else {{ x }}\n"))
            .collect();
        assert_eq!(too_deep_bracket(&body(&statements)), None);
        let chain = body(&format!(
            "  if a {{ x }}{} else {{ x }}",
            " else if b { x }".repeat(count)
        ));
        assert_eq!(too_deep_bracket(&chain), None);
        let in_blocks = body(&format!(
            "  {}x{}",
            "if c { ".repeat(count),
            " }".repeat(count)
        ));
        assert!(too_deep_bracket(&in_blocks).is_some());
        // `letter` and `yields` are names, not statement words.
        let names = body(&format!(
            "  let g = {}x",
            "|letter| |yields| ".repeat(count / 2)
        ));
        assert!(too_deep_bracket(&names).is_some());
    }
}
