//! Reads the textual IR back (see `super`). Every node is rebuilt through `Graph::try_add`, so the
//! shape rules recompute its type, which must be the printed one; the attributes that the printer
//! leaves out are taken from the printed type and the op name.

use super::type_text;
use crate::ir::{
    Aggregation, DType, Dist, Graph, Health, Loc, Op, OutputRole, Prim, Role, TensorType, Type,
    ValueId, Window,
};
use std::fmt::Display;
use std::str::FromStr;

/// Scan bodies nest at most this deep, so that no text builds a graph too deep to walk.
const MAX_NESTING: usize = 256;

pub fn parse(text: &str) -> Result<Graph, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, text)| Cursor {
            text,
            pos: 0,
            line: i + 1,
        })
        .filter(|cur| !cur.text.trim().is_empty());
    let Some(mut cur) = lines.next() else {
        return Err("line 1: expected `graph`, found an empty text".into());
    };
    if !cur.keyword("graph") {
        return Err(cur.expected("`graph`"));
    }
    let mut graph = Graph::new(cur.name()?);
    cur.expect("{")?;
    cur.end()?;
    // The graphs around the scan body being read, innermost last, each with the scan's line.
    let mut outer: Vec<(Graph, ScanLine)> = Vec::new();
    let mut last = cur.line;
    while let Some(mut cur) = lines.next() {
        last = cur.line;
        if cur.eat("}") {
            let Some((parent, scan)) = outer.pop() else {
                cur.end()?;
                return match lines.next() {
                    Some(extra) => Err(extra.err("text after the end of the graph")),
                    None => Ok(graph),
                };
            };
            let loc = cur.loc()?;
            let body = std::mem::replace(&mut graph, parent);
            let op = Op::Scan {
                body: Box::new(body),
                carries: scan.carries,
                seqs: scan.seqs,
                reverse: scan.reverse,
            };
            add(&mut graph, scan.line, op, scan.args, &scan.ty, loc)?;
        } else if cur.keyword("output") {
            output(&mut graph, &mut cur)?;
        } else {
            match node(&graph, &mut cur)? {
                Line::Node { op, args, ty, loc } => add(&mut graph, cur.line, op, args, &ty, loc)?,
                Line::Scan(scan, body) => {
                    if outer.len() == MAX_NESTING {
                        return Err(cur.err(format!("scans nest more than {MAX_NESTING} deep")));
                    }
                    let parent = std::mem::replace(&mut graph, Graph::new(body));
                    outer.push((parent, scan));
                }
            }
        }
    }
    Err(at(last, "the text ends before the graph's closing `}`"))
}

/// A parsed node line: a whole node, or the opening line of a scan, whose body and location follow.
enum Line {
    Node {
        op: Op,
        args: Vec<ValueId>,
        ty: Type,
        loc: Loc,
    },
    /// The scan's line and its body's name.
    Scan(ScanLine, String),
}

struct ScanLine {
    line: usize,
    ty: Type,
    args: Vec<ValueId>,
    carries: usize,
    seqs: usize,
    reverse: bool,
}

/// `%i: type = op operands attributes`, then `{` for a scan or else the optional location.
fn node(graph: &Graph, cur: &mut Cursor) -> Result<Line, String> {
    let v = cur.value()?;
    if v.index() != graph.nodes.len() {
        return Err(cur.err(format!(
            "found {v} where {} comes next: values are numbered in order",
            ValueId(graph.nodes.len() as u32)
        )));
    }
    cur.expect(":")?;
    let ty = cur.ty()?;
    cur.expect("=")?;
    let name = cur.word();
    let mut args = Vec::new();
    if cur.peek() == Some('%') {
        loop {
            args.push(cur.value()?);
            if !cur.eat(",") {
                break;
            }
        }
    }
    let line = cur.line;
    let tensor = || match &ty {
        Type::Tensor(t) => Ok(t.clone()),
        Type::Tuple(_) => Err(at(line, format!("`{name}` gives a tensor, not a tuple"))),
    };
    let op = match name {
        "input" => {
            let name = cur.string()?;
            let role = cur.word();
            let role = Role::from_name(role).ok_or_else(|| cur.expected("a role"))?;
            let ty = tensor()?;
            Op::Input { name, role, ty }
        }
        "const" => Op::Const {
            value: cur.number()?,
            ty: tensor()?,
        },
        "iota" => Op::Iota {
            axis: cur.attr("axis")?,
            ty: tensor()?,
        },
        "rand_uniform" | "rand_normal" => Op::Rand {
            dist: if name == "rand_uniform" {
                Dist::Uniform
            } else {
                Dist::Normal
            },
            stream: cur.attr("stream")?,
            ty: tensor()?,
        },
        "cast" => Op::Cast {
            to: tensor()?.dtype,
        },
        "sum" => Op::Sum {
            axes: cur.list_attr("axes")?,
        },
        "reduce_max" => Op::ReduceMax {
            axes: cur.list_attr("axes")?,
        },
        "argmax" => Op::Argmax {
            axis: cur.attr("axis")?,
        },
        "reshape" => Op::Reshape {
            shape: tensor()?.shape,
        },
        "permute" => Op::Permute {
            perm: cur.list_attr("perm")?,
        },
        "broadcast" => Op::Broadcast {
            shape: tensor()?.shape,
        },
        "slice" => Op::Slice {
            axis: cur.attr("axis")?,
            start: cur.attr("start")?,
            end: cur.attr("end")?,
        },
        "pad" => Op::Pad {
            axis: cur.attr("axis")?,
            lo: cur.attr("lo")?,
            hi: cur.attr("hi")?,
        },
        "concat" => Op::Concat {
            axis: cur.attr("axis")?,
        },
        "unfold" => Op::Unfold(cur.window()?),
        "fold" => {
            let window = cur.window()?;
            let size = cur.list_attr("size")?;
            let [h, w] = size[..] else {
                return Err(cur.err("`fold` needs a size of two axes, `size=[H,W]`"));
            };
            Op::Fold {
                window,
                size: [h, w],
            }
        }
        "scatter_add" => {
            let rows = tensor()?.shape.first().copied();
            Op::ScatterAdd {
                rows: rows.ok_or_else(|| cur.err("`scatter_add` gives a tensor of rows"))?,
            }
        }
        "get" => Op::Get {
            index: cur.attr("index")?,
        },
        "scan" => {
            let carries = cur.attr("carries")?;
            let seqs = cur.attr("seqs")?;
            let reverse = cur.keyword("reverse");
            cur.key("body")?;
            let body = cur.name()?;
            cur.expect("{")?;
            cur.end()?;
            let scan = ScanLine {
                line,
                ty,
                args,
                carries,
                seqs,
                reverse,
            };
            return Ok(Line::Scan(scan, body));
        }
        "" => return Err(cur.expected("an op")),
        _ => Prim::by_name(name)
            .and_then(Prim::plain_op)
            .ok_or_else(|| cur.err(format!("unknown op `{name}`")))?,
    };
    let loc = cur.loc()?;
    Ok(Line::Node { op, args, ty, loc })
}

/// Adds a parsed node, which must have the printed type.
fn add(
    graph: &mut Graph,
    line: usize,
    op: Op,
    args: Vec<ValueId>,
    ty: &Type,
    loc: Loc,
) -> Result<(), String> {
    if let Op::Input { name, .. } = &op
        && graph.find_input(name).is_some()
    {
        return Err(at(line, format!("input {name:?} is defined twice")));
    }
    let name = op.name();
    let v = graph
        .try_add(op, args, loc)
        .map_err(|e| at(line, format!("`{name}`: {e}")))?;
    let got = &graph.node(v).ty;
    if got != ty {
        return Err(at(
            line,
            format!(
                "`{name}` gives {}, not the stated {}",
                type_text(got),
                type_text(ty)
            ),
        ));
    }
    Ok(())
}

/// `output "name" role = %v`, after the keyword.
fn output(graph: &mut Graph, cur: &mut Cursor) -> Result<(), String> {
    let name = cur.string()?;
    let role = output_role(cur)?;
    cur.expect("=")?;
    let v = cur.value()?;
    cur.end()?;
    let problem = match graph.nodes.get(v.index()).map(|n| &n.ty) {
        None => format!("output {name:?} refers to {v}, which is not defined"),
        Some(Type::Tuple(_)) => format!("output {name:?} is a tuple; take its parts with `get`"),
        Some(Type::Tensor(_)) if graph.output(&name).is_some() => {
            format!("output {name:?} is defined twice")
        }
        Some(Type::Tensor(_)) => {
            graph.add_output(name, v, role);
            return Ok(());
        }
    };
    Err(cur.err(problem))
}

/// The words of an output's role before its `=` (none for a plain value).
fn output_role(cur: &mut Cursor) -> Result<OutputRole, String> {
    if cur.peek() == Some('=') {
        return Ok(OutputRole::Value);
    }
    Ok(match cur.word() {
        "prediction" => OutputRole::Prediction,
        "loss" => OutputRole::Loss,
        "grad" => OutputRole::Gradient,
        "metric" => {
            let name = cur.word();
            OutputRole::Metric(Aggregation::from_name(name).ok_or_else(|| {
                cur.expected("an aggregation (`mean`, `root_mean_square`, `r2`, `geometric_mean`)")
            })?)
        }
        "health" => {
            let name = cur.word();
            OutputRole::Health(
                Health::from_name(name).ok_or_else(|| cur.expected("a watched statistic"))?,
            )
        }
        "new" => {
            let name = cur.word();
            OutputRole::Update(Role::from_name(name).ok_or_else(|| cur.expected("a role"))?)
        }
        _ => return Err(cur.expected("an output role or `=`")),
    })
}

fn at(line: usize, msg: impl Display) -> String {
    format!("line {line}: {msg}")
}

/// A position in one line of the text. Every reader skips the whitespace before its token.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: impl Display) -> String {
        at(self.line, msg)
    }

    /// An error saying what was expected and what the line holds instead.
    fn expected(&self, what: &str) -> String {
        let rest = self.rest().trim_start();
        let found = match rest.split_whitespace().next() {
            None => "the end of the line".to_string(),
            Some(token) if token.chars().count() > 24 => {
                format!("`{}…`", token.chars().take(24).collect::<String>())
            }
            Some(token) => format!("`{token}`"),
        };
        self.err(format!("expected {what}, found {found}"))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&mut self) -> Option<char> {
        self.take_while(char::is_whitespace);
        self.rest().chars().next()
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c| !f(c)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    fn eat(&mut self, token: &str) -> bool {
        self.peek();
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.expected(&format!("`{token}`")))
        }
    }

    /// A word of ASCII letters, digits and underscores (an op, a dtype, a role); maybe empty.
    fn word(&mut self) -> &'a str {
        self.peek();
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// The word `kw` and no longer word.
    fn keyword(&mut self, kw: &str) -> bool {
        let start = self.pos;
        if self.word() == kw {
            return true;
        }
        self.pos = start;
        false
    }

    fn end(&mut self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.expected("the end of the line")),
        }
    }

    fn int<T: FromStr>(&mut self, what: &str) -> Result<T, String> {
        self.peek();
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            return Err(self.expected(what));
        }
        digits
            .parse()
            .map_err(|_| self.err(format!("{what} `{digits}` is too large")))
    }

    /// `key=`.
    fn key(&mut self, key: &str) -> Result<(), String> {
        let start = self.pos;
        if self.keyword(key) && self.rest().starts_with('=') {
            self.pos += 1;
            return Ok(());
        }
        self.pos = start;
        Err(self.expected(&format!("`{key}=`")))
    }

    /// `key=n`.
    fn attr<T: FromStr>(&mut self, key: &str) -> Result<T, String> {
        self.key(key)?;
        self.int(&format!("the {key}"))
    }

    /// `key=[a,b,…]`.
    fn list_attr(&mut self, key: &str) -> Result<Vec<usize>, String> {
        self.key(key)?;
        self.list()
    }

    /// `[a, b, …]`, the list of a shape or an attribute.
    fn list(&mut self) -> Result<Vec<usize>, String> {
        self.expect("[")?;
        let mut xs = Vec::new();
        if self.eat("]") {
            return Ok(xs);
        }
        loop {
            xs.push(self.int("a number")?);
            if self.eat("]") {
                return Ok(xs);
            }
            self.expect(",")?;
        }
    }

    fn window(&mut self) -> Result<Window, String> {
        Ok(Window {
            kernel: self.attr("kernel")?,
            stride: self.attr("stride")?,
            padding: self.attr("padding")?,
            dilation: self.attr("dilation")?,
        })
    }

    /// `%n`.
    fn value(&mut self) -> Result<ValueId, String> {
        self.expect("%")?;
        Ok(ValueId(self.int("a value number")?))
    }

    /// A constant as `super::number` prints it: a float, `inf`, `-inf` or `nan`.
    fn number(&mut self) -> Result<f64, String> {
        self.peek();
        let start = self.pos;
        let token = self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
        token.parse().map_err(|_| {
            self.pos = start;
            self.expected("a number")
        })
    }

    fn ty(&mut self) -> Result<Type, String> {
        if !self.eat("(") {
            return Ok(Type::Tensor(self.tensor_type()?));
        }
        let mut parts = Vec::new();
        if self.eat(")") {
            return Ok(Type::Tuple(parts));
        }
        loop {
            parts.push(self.tensor_type()?);
            if self.eat(")") {
                return Ok(Type::Tuple(parts));
            }
            self.expect(",")?;
        }
    }

    /// `f32[2, 3]`.
    fn tensor_type(&mut self) -> Result<TensorType, String> {
        let start = self.pos;
        let Some(dtype) = DType::from_name(self.word()) else {
            self.pos = start;
            return Err(self.expected("a type such as `f32[2, 3]`"));
        };
        Ok(TensorType::new(dtype, self.list()?))
    }

    /// A string in Rust's debug form, as `super::quote` prints it.
    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return Err(self.expected("a quoted string"));
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    let c = match chars.next().map(|(_, c)| c) {
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('0') => '\0',
                        Some(c @ ('\\' | '"' | '\'')) => c,
                        Some('u') => unicode_escape(&mut chars)
                            .ok_or_else(|| self.err("a `\\u{…}` escape that is not a character"))?,
                        _ => return Err(self.err("an unknown escape in a string")),
                    };
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        Err(self.err("a string without its closing quote"))
    }

    /// A graph's name: a word of letters, digits and underscores, or a quoted string.
    fn name(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            return self.string();
        }
        match self.take_while(|c| c.is_alphanumeric() || c == '_') {
            "" => Err(self.expected("a name")),
            name => Ok(name.to_string()),
        }
    }

    /// A location's scope or file: a quoted string, or a word up to the next whitespace.
    fn loc_text(&mut self) -> Result<String, String> {
        if self.peek() == Some('"') {
            return self.string();
        }
        match self.take_while(|c| !c.is_whitespace()) {
            "" => Err(self.expected("a location")),
            text => Ok(text.to_string()),
        }
    }

    /// The end of a node's line: nothing, or `; scope @ file:line:col` without the scope when it
    /// is empty.
    fn loc(&mut self) -> Result<Loc, String> {
        if self.peek().is_none() {
            return Ok(Loc::default());
        }
        self.expect(";")?;
        let scope = match self.peek() {
            Some('@') => String::new(),
            _ => self.loc_text()?,
        };
        self.expect("@")?;
        let file = if self.peek() == Some('"') {
            self.string()?
        } else {
            // A bare file name may hold colons itself: the last two separate the position.
            let word = self.rest().split(char::is_whitespace).next().unwrap_or("");
            let cut = word.rfind(':').and_then(|i| word[..i].rfind(':'));
            let Some(cut) = cut else {
                return Err(self.expected("`file:line:col`"));
            };
            self.pos += cut;
            word[..cut].to_string()
        };
        self.expect(":")?;
        let line = self.int("a line number")?;
        self.expect(":")?;
        let col = self.int("a column number")?;
        self.end()?;
        if line == 0 {
            return Err(self.err("source lines are numbered from 1"));
        }
        Ok(Loc {
            scope: scope.into(),
            file: file.into(),
            line,
            col,
        })
    }
}

/// The rest of `\u{…}` after the `u`.
fn unicode_escape(chars: &mut std::str::CharIndices) -> Option<char> {
    if chars.next()?.1 != '{' {
        return None;
    }
    let mut code = 0u32;
    for (digits, (_, c)) in chars.enumerate() {
        if c == '}' {
            return if digits == 0 {
                None
            } else {
                char::from_u32(code)
            };
        }
        if digits == 6 {
            return None;
        }
        code = code * 16 + c.to_digit(16)?;
    }
    None
}
