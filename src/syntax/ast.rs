//! The abstract syntax tree. Every node carries the byte span it was parsed from, so every later
//! stage (checker diagnostics, IR listings, the language server) can point at the user's text.

use crate::source::{FileId, Span};
pub use crate::syntax::packed::Body;
pub use crate::syntax::symbol::Symbol;
pub use thin_vec::ThinVec;

#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub items: Vec<Item>,
    /// Names of items that failed to parse: they exist, so their uses are not "unknown".
    pub broken: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Use(UseDecl),
    Data(DataDecl),
    Def(Def),
    Train(TrainDecl),
    Search(SearchDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Use(u) => u.span,
            Item::Data(d) => d.span,
            Item::Def(d) => d.span,
            Item::Train(t) => t.span,
            Item::Search(s) => s.span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: Symbol,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UseTarget {
    /// `use std.nn…`
    Module(Vec<Ident>),
    /// `use "./blocks.nnl"…`
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum UseNames {
    /// No name list: an error the resolver explains.
    Missing,
    All(Span),
    Some(Vec<Ident>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UseDecl {
    pub target: UseTarget,
    pub target_span: Span,
    pub names: UseNames,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefKind {
    Model,
    Layer,
    Fn,
    Optimizer,
    Schedule,
    Constraint,
}

impl DefKind {
    pub fn keyword(self) -> &'static str {
        match self {
            DefKind::Model => "model",
            DefKind::Layer => "layer",
            DefKind::Fn => "fn",
            DefKind::Optimizer => "optimizer",
            DefKind::Schedule => "schedule",
            DefKind::Constraint => "constraint",
        }
    }

    /// Models and layers take attributes first, then their inputs.
    pub fn is_layer_like(self) -> bool {
        matches!(self, DefKind::Model | DefKind::Layer)
    }
}

/// A `model`, `layer`, `fn`, `optimizer`, `schedule` or `constraint` definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Def {
    pub kind: DefKind,
    pub name: Ident,
    /// Layer attributes (`Dense(units: int)`); empty for fns.
    pub attrs: Vec<Param>,
    /// The inputs (`(x: f32[..S, N])`); for fns and optimizers, their only parameter list.
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub wheres: Vec<Constraint>,
    /// Packed: bodies are most of a large file's tree ([`Body::unpack`] for a walk).
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    /// Boxed: most parameters have none, and a parameter is then a third smaller.
    pub default: Option<Box<Expr>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub cond: Expr,
    pub message: Option<StrLit>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    F32,
    F64,
    I32,
    Bool,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::I32 => "i32",
            Dtype::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// `f32`, `f32[B, 784]`; a missing shape means a scalar.
    Tensor {
        dtype: Dtype,
        shape: Option<ShapeExpr>,
    },
    /// A bare shape, as in `param w: [N, units]` (dtype f32).
    Shape(ShapeExpr),
    Tuple(ThinVec<TypeExpr>),
    /// `int`, `str`, `init`, …
    Named(Ident),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShapeExpr {
    pub items: ThinVec<ShapeItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShapeItem {
    Dim(Expr),
    /// `..S`: any number of leading dimensions.
    Pack(Ident),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub stmts: ThinVec<Stmt>,
    /// The value of the block: its last statement when that is an expression.
    pub tail: Option<Box<Expr>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Name(Ident),
    Tuple(ThinVec<Pattern>, Span),
}

impl Pattern {
    pub fn span(&self) -> Span {
        match self {
            Pattern::Name(i) => i.span,
            Pattern::Tuple(_, s) => *s,
        }
    }

    pub fn names(&self) -> Vec<&Ident> {
        match self {
            Pattern::Name(i) => vec![i],
            Pattern::Tuple(ps, _) => ps.iter().flat_map(Pattern::names).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let a, (b, c) = e`: several patterns destructure a tuple.
    Let {
        pats: ThinVec<Pattern>,
        value: Expr,
    },
    /// `param w, b: [N, units] = init`
    /// (The initializers are boxed so that a statement is no larger than an assignment.)
    Param {
        names: Vec<Ident>,
        ty: TypeExpr,
        init: Option<Box<Expr>>,
    },
    /// `state m = zeros_like(p)` or `state mean: [C] = zeros`
    State {
        names: Vec<Ident>,
        ty: Option<TypeExpr>,
        init: Option<Box<Expr>>,
    },
    /// `m = b1 * m + (1 - b1) * g`: updates a state (or, in an optimizer, the parameter).
    Assign {
        target: Ident,
        value: Expr,
    },
    /// `yield out, carry` ends a scan body.
    Yield(Vec<Expr>),
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `//`: division rounded down.
    FloorDiv,
    Rem,
    MatMul,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Rem => "%",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    /// The span of this operator written at byte `at` of `file`.
    pub fn span_at(self, file: FileId, at: u32) -> Span {
        Span::new(file, at as usize, at as usize + self.symbol().len())
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ListItem {
    Expr(Expr),
    Spread(Ident),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number literal; `is_int` when written without a fraction or exponent.
    Number {
        value: f64,
        is_int: bool,
    },
    Str(Box<str>),
    Bool(bool),
    /// `training`: true in the training step, false in evaluation.
    Training,
    Name(Ident),
    Member(Box<Member>),
    Call(Box<Call>),
    Binary {
        op: BinOp,
        /// Where the operator starts ([`BinOp::span_at`]): a whole span here would make every
        /// expression larger.
        op_at: u32,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    /// `lhs |> rhs`: rhs applied to lhs (as its first argument, or as a layer's input).
    Pipe {
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Range {
        lo: Box<Expr>,
        hi: Box<Expr>,
    },
    Tuple(ThinVec<Expr>),
    List(ThinVec<ListItem>),
    Closure {
        params: ThinVec<Pattern>,
        body: Box<Expr>,
    },
    If(Box<If>),
    /// `scan(xs, axis: 1, init: c0) |x, c| { …; yield y, c2 }`
    Scan(Box<Scan>),
    /// Boxed: blocks as values are rare, and inline one would make every expression larger.
    Block(Box<Block>),
}

/// `base.field`. This and the next two structs are the parts of variants kept behind one box:
/// inline, each would make every expression of a program larger.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub base: Expr,
    pub field: Ident,
}

/// `callee(args)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub callee: Expr,
    pub args: ThinVec<Arg>,
    pub args_span: Span,
}

/// `if cond { then } else …`; an `else if` is an `if` in `otherwise`.
#[derive(Debug, Clone, PartialEq)]
pub struct If {
    pub cond: Expr,
    pub then: Block,
    pub otherwise: Option<Expr>,
}

/// The parts of a `scan`, boxed: scans are rare, and inline they would make every expression of
/// a program twice as large.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub args: Vec<Arg>,
    pub args_span: Span,
    pub params: Vec<Pattern>,
    pub body: Block,
}

/// An expression node. Its size is what most of a program's syntax tree costs, so variants
/// with more than two pointers' worth of parts keep them behind a box, and its lists are
/// `ThinVec`s (a pointer; the length and capacity live with the items).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataDecl {
    pub name: Ident,
    pub stmts: Vec<DataStmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataStmt {
    /// `train = idx("…", "…")`
    Source {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `x: f32[784] = image |> flatten |> scale(1 / 255)`
    Field {
        name: Ident,
        ty: TypeExpr,
        value: Expr,
        span: Span,
    },
    /// `split val = 0.1 of train, shuffle(seed: 42)`
    Split {
        name: Ident,
        fraction: Expr,
        of: Ident,
        options: Vec<Expr>,
        span: Span,
    },
    Setting(Setting),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    /// `loss = e`
    Assign(Expr),
    /// `batch 64`, `metrics accuracy, mae`
    Values(Vec<Expr>),
    /// `early_stop(monitor: val.loss, patience: 3)`
    Call(Vec<Arg>, Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub name: Ident,
    pub value: SettingValue,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainDecl {
    pub models: Vec<Ident>,
    pub data: Ident,
    pub stmts: Vec<TrainStmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TrainStmt {
    Let(Stmt),
    Phase {
        name: Ident,
        stmts: Vec<TrainStmt>,
        span: Span,
    },
    /// `update Critic with adam(lr: 2e-4)`
    Update {
        targets: Vec<Expr>,
        optimizer: Expr,
        span: Span,
    },
    /// `constrain Mlp with max_norm(3)`
    Constrain {
        targets: Vec<Expr>,
        constraint: Expr,
        span: Span,
    },
    Setting(Setting),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Maximize,
    Minimize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchDecl {
    pub strategy: Expr,
    pub models: Vec<Ident>,
    pub data: Ident,
    pub space: Vec<(Ident, Expr)>,
    pub goal: Goal,
    pub metric: Expr,
    pub span: Span,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// A large file is mostly expressions and names: these sizes are its memory (glibc rounds a
    /// boxed expression up to a 48-byte chunk; at 48 bytes it took a 64-byte one).
    #[test]
    fn syntax_tree_nodes_stay_small() {
        assert_eq!(size_of::<Ident>(), 16);
        assert!(
            size_of::<Expr>() <= 40,
            "Expr is {} bytes",
            size_of::<Expr>()
        );
        assert!(size_of::<Arg>() <= 72, "Arg is {} bytes", size_of::<Arg>());
        assert!(
            size_of::<Pattern>() <= 24,
            "Pattern is {} bytes",
            size_of::<Pattern>()
        );
        assert!(
            size_of::<TypeExpr>() <= 48,
            "TypeExpr is {} bytes",
            size_of::<TypeExpr>()
        );
    }
}
