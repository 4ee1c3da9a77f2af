//! Definition bodies, packed. A body's tree spends tens of bytes on each node (a box per
//! expression, a span in every node); packed, a node is a tag byte and a few LEB128 numbers (a
//! span as its difference from the span packed before it), about a ninth of the bytes. Bodies
//! are most of a large file's syntax tree, so a module holds them packed ([`Body`]) and a stage
//! that walks one unpacks it for the walk ([`Body::unpack`], about a thirtieth of the time
//! parsing it takes): checking a 50 MB file holds about half the memory it did.
//!
//! Every node type's packing is one `impl Packed`, which destructures the node completely, so
//! a new field or variant does not compile until it is packed and unpacked.

use super::ast::*;
use crate::source::{FileId, Span};
use std::fmt;

/// A definition's body: its block, packed.
#[derive(Clone, PartialEq)]
pub struct Body {
    /// The block's span, also inside the packed bytes: the only part read without unpacking.
    pub span: Span,
    bytes: Box<[u8]>,
}

impl Body {
    pub fn pack(block: &Block) -> Body {
        let mut packer = Packer {
            bytes: Vec::new(),
            file: block.span.file,
            at: block.span.start,
        };
        block.pack(&mut packer);
        Body {
            span: block.span,
            bytes: packer.bytes.into_boxed_slice(),
        }
    }

    /// The block, as it was packed.
    pub fn unpack(&self) -> Block {
        let mut unpacker = Unpacker {
            bytes: &self.bytes,
            file: self.span.file,
            at: self.span.start,
        };
        let block = Block::unpack(&mut unpacker);
        debug_assert!(unpacker.bytes.is_empty(), "a body unpacks to its end");
        block
    }
}

/// Printed as the block it holds, so a tree prints the same packed or not.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.unpack().fmt(f)
    }
}

struct Packer {
    bytes: Vec<u8>,
    /// Every span of a body is in the body's file.
    file: FileId,
    /// The start of the span packed last: spans are packed as the difference from it.
    at: u32,
}

struct Unpacker<'a> {
    bytes: &'a [u8],
    file: FileId,
    at: u32,
}

impl Packer {
    fn byte(&mut self, b: u8) {
        self.bytes.push(b);
    }

    /// LEB128: seven bits a byte, small numbers in one.
    fn number(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.bytes.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    fn len(&mut self, n: usize) {
        self.number(n as u64);
    }

    /// A byte offset, as its difference from the last span's start (zigzag: small differences
    /// either way take one byte).
    fn offset(&mut self, at: u32) {
        let delta = i64::from(at) - i64::from(self.at);
        self.number(((delta << 1) ^ (delta >> 63)) as u64);
    }
}

impl Unpacker<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self
            .bytes
            .split_first()
            .expect("packed bytes end where their node does");
        self.bytes = rest;
        b
    }

    fn number(&mut self) -> u64 {
        let mut n = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return n;
            }
            shift += 7;
        }
    }

    fn u32(&mut self) -> u32 {
        u32::try_from(self.number()).expect("packed from a u32")
    }

    fn len(&mut self) -> usize {
        self.number() as usize
    }

    fn offset(&mut self) -> u32 {
        let zigzag = self.number();
        let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        u32::try_from(i64::from(self.at) + delta).expect("packed from a u32")
    }
}

trait Packed: Sized {
    fn pack(&self, p: &mut Packer);
    fn unpack(u: &mut Unpacker) -> Self;
}

impl Packed for Span {
    fn pack(&self, p: &mut Packer) {
        debug_assert_eq!(self.file, p.file, "a body's spans are in its file");
        p.offset(self.start);
        p.number(u64::from(self.end - self.start));
        p.at = self.start;
    }

    fn unpack(u: &mut Unpacker) -> Span {
        let start = u.offset();
        let end = start + u.u32();
        u.at = start;
        Span {
            file: u.file,
            start,
            end,
        }
    }
}

impl Packed for Symbol {
    fn pack(&self, p: &mut Packer) {
        p.number(u64::from(self.number()));
    }

    fn unpack(u: &mut Unpacker) -> Symbol {
        Symbol::from_number(u.u32())
    }
}

impl Packed for bool {
    fn pack(&self, p: &mut Packer) {
        p.byte(u8::from(*self));
    }

    fn unpack(u: &mut Unpacker) -> bool {
        u.byte() != 0
    }
}

impl Packed for Box<str> {
    fn pack(&self, p: &mut Packer) {
        p.len(self.len());
        p.bytes.extend_from_slice(self.as_bytes());
    }

    fn unpack(u: &mut Unpacker) -> Box<str> {
        let len = u.len();
        let (text, rest) = u.bytes.split_at(len);
        u.bytes = rest;
        std::str::from_utf8(text).expect("packed from a str").into()
    }
}

impl<T: Packed> Packed for Box<T> {
    fn pack(&self, p: &mut Packer) {
        (**self).pack(p);
    }

    fn unpack(u: &mut Unpacker) -> Box<T> {
        Box::new(T::unpack(u))
    }
}

impl<T: Packed> Packed for Option<T> {
    fn pack(&self, p: &mut Packer) {
        match self {
            None => p.byte(0),
            Some(value) => {
                p.byte(1);
                value.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> Option<T> {
        match u.byte() {
            0 => None,
            _ => Some(T::unpack(u)),
        }
    }
}

impl<T: Packed> Packed for Vec<T> {
    fn pack(&self, p: &mut Packer) {
        p.len(self.len());
        self.iter().for_each(|item| item.pack(p));
    }

    fn unpack(u: &mut Unpacker) -> Vec<T> {
        let len = u.len();
        (0..len).map(|_| T::unpack(u)).collect()
    }
}

impl<T: Packed> Packed for ThinVec<T> {
    fn pack(&self, p: &mut Packer) {
        p.len(self.len());
        self.iter().for_each(|item| item.pack(p));
    }

    fn unpack(u: &mut Unpacker) -> ThinVec<T> {
        let len = u.len();
        let mut items = ThinVec::with_capacity(len);
        items.extend((0..len).map(|_| T::unpack(u)));
        items
    }
}

/// Packs and unpacks a struct field by field; the pattern names every field, so a new one
/// must be added here. Spans go first, so that the spans inside a node are packed as small
/// differences from its own.
macro_rules! packed_struct {
    ($name:ident { $($field:ident),* $(,)? }) => {
        impl Packed for $name {
            fn pack(&self, p: &mut Packer) {
                let $name { $($field),* } = self;
                $($field.pack(p);)*
            }

            fn unpack(u: &mut Unpacker) -> $name {
                $(let $field = Packed::unpack(u);)*
                $name { $($field),* }
            }
        }
    };
}

packed_struct!(Ident { name, span });
packed_struct!(Block { span, stmts, tail });
packed_struct!(Stmt { span, kind });
packed_struct!(TypeExpr { span, kind });
packed_struct!(ShapeExpr { span, items });
packed_struct!(Expr { span, kind });
packed_struct!(Arg { span, name, value });
packed_struct!(Member { base, field });
packed_struct!(Call {
    callee,
    args,
    args_span
});
packed_struct!(If {
    cond,
    then,
    otherwise
});
packed_struct!(Scan {
    args,
    args_span,
    params,
    body
});

/// Packs a fieldless enum as its index in `ALL`, a list the exhaustive `match` in `pack` keeps
/// complete.
macro_rules! packed_fieldless {
    ($name:ident [$($variant:ident),* $(,)?]) => {
        impl Packed for $name {
            fn pack(&self, p: &mut Packer) {
                const ALL: &[$name] = &[$($name::$variant),*];
                let index = match self {
                    $($name::$variant)|* => ALL.iter().position(|v| v == self),
                };
                p.byte(index.expect("every variant is listed") as u8);
            }

            fn unpack(u: &mut Unpacker) -> $name {
                const ALL: &[$name] = &[$($name::$variant),*];
                ALL[usize::from(u.byte())]
            }
        }
    };
}

packed_fieldless!(Dtype[F32, F64, I32, Bool]);
packed_fieldless!(UnOp[Neg, Not]);
packed_fieldless!(BinOp[
    Add, Sub, Mul, Div, FloorDiv, Rem, MatMul, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or,
]);

impl Packed for StmtKind {
    fn pack(&self, p: &mut Packer) {
        match self {
            StmtKind::Let { pats, value } => {
                p.byte(0);
                pats.pack(p);
                value.pack(p);
            }
            StmtKind::Param { names, ty, init } => {
                p.byte(1);
                names.pack(p);
                ty.pack(p);
                init.pack(p);
            }
            StmtKind::State { names, ty, init } => {
                p.byte(2);
                names.pack(p);
                ty.pack(p);
                init.pack(p);
            }
            StmtKind::Assign { target, value } => {
                p.byte(3);
                target.pack(p);
                value.pack(p);
            }
            StmtKind::Yield(values) => {
                p.byte(4);
                values.pack(p);
            }
            StmtKind::Expr(e) => {
                p.byte(5);
                e.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> StmtKind {
        match u.byte() {
            0 => StmtKind::Let {
                pats: Packed::unpack(u),
                value: Packed::unpack(u),
            },
            1 => StmtKind::Param {
                names: Packed::unpack(u),
                ty: Packed::unpack(u),
                init: Packed::unpack(u),
            },
            2 => StmtKind::State {
                names: Packed::unpack(u),
                ty: Packed::unpack(u),
                init: Packed::unpack(u),
            },
            3 => StmtKind::Assign {
                target: Packed::unpack(u),
                value: Packed::unpack(u),
            },
            4 => StmtKind::Yield(Packed::unpack(u)),
            5 => StmtKind::Expr(Packed::unpack(u)),
            tag => unreachable!("statement tag {tag}"),
        }
    }
}

impl Packed for Pattern {
    fn pack(&self, p: &mut Packer) {
        match self {
            Pattern::Name(name) => {
                p.byte(0);
                name.pack(p);
            }
            Pattern::Tuple(parts, span) => {
                p.byte(1);
                parts.pack(p);
                span.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> Pattern {
        match u.byte() {
            0 => Pattern::Name(Packed::unpack(u)),
            1 => Pattern::Tuple(Packed::unpack(u), Packed::unpack(u)),
            tag => unreachable!("pattern tag {tag}"),
        }
    }
}

impl Packed for TypeKind {
    fn pack(&self, p: &mut Packer) {
        match self {
            TypeKind::Tensor { dtype, shape } => {
                p.byte(0);
                dtype.pack(p);
                shape.pack(p);
            }
            TypeKind::Shape(shape) => {
                p.byte(1);
                shape.pack(p);
            }
            TypeKind::Tuple(parts) => {
                p.byte(2);
                parts.pack(p);
            }
            TypeKind::Named(name) => {
                p.byte(3);
                name.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> TypeKind {
        match u.byte() {
            0 => TypeKind::Tensor {
                dtype: Packed::unpack(u),
                shape: Packed::unpack(u),
            },
            1 => TypeKind::Shape(Packed::unpack(u)),
            2 => TypeKind::Tuple(Packed::unpack(u)),
            3 => TypeKind::Named(Packed::unpack(u)),
            tag => unreachable!("type tag {tag}"),
        }
    }
}

impl Packed for ShapeItem {
    fn pack(&self, p: &mut Packer) {
        match self {
            ShapeItem::Dim(e) => {
                p.byte(0);
                e.pack(p);
            }
            ShapeItem::Pack(name) => {
                p.byte(1);
                name.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> ShapeItem {
        match u.byte() {
            0 => ShapeItem::Dim(Packed::unpack(u)),
            1 => ShapeItem::Pack(Packed::unpack(u)),
            tag => unreachable!("shape item tag {tag}"),
        }
    }
}

impl Packed for ListItem {
    fn pack(&self, p: &mut Packer) {
        match self {
            ListItem::Expr(e) => {
                p.byte(0);
                e.pack(p);
            }
            ListItem::Spread(name) => {
                p.byte(1);
                name.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> ListItem {
        match u.byte() {
            0 => ListItem::Expr(Packed::unpack(u)),
            1 => ListItem::Spread(Packed::unpack(u)),
            tag => unreachable!("list item tag {tag}"),
        }
    }
}

/// Number literals: most are small whole numbers (`2`, `64`, `1.0`), packed as one; the rest
/// as their eight bytes.
const NUMBER_IS_INT: u8 = 1;
const NUMBER_WHOLE: u8 = 2;

impl Packed for ExprKind {
    fn pack(&self, p: &mut Packer) {
        match self {
            ExprKind::Number { value, is_int } => {
                p.byte(0);
                let whole = value.fract() == 0.0
                    && (0.0..9.0e15).contains(value)
                    && value.is_sign_positive();
                p.byte(u8::from(*is_int) * NUMBER_IS_INT + u8::from(whole) * NUMBER_WHOLE);
                if whole {
                    p.number(*value as u64);
                } else {
                    p.bytes.extend_from_slice(&value.to_bits().to_le_bytes());
                }
            }
            ExprKind::Str(text) => {
                p.byte(1);
                text.pack(p);
            }
            ExprKind::Bool(value) => {
                p.byte(2);
                value.pack(p);
            }
            ExprKind::Training => p.byte(3),
            ExprKind::Name(name) => {
                p.byte(4);
                name.pack(p);
            }
            ExprKind::Member(member) => {
                p.byte(5);
                member.pack(p);
            }
            ExprKind::Call(call) => {
                p.byte(6);
                call.pack(p);
            }
            ExprKind::Binary {
                op,
                op_at,
                lhs,
                rhs,
            } => {
                p.byte(7);
                op.pack(p);
                p.offset(*op_at);
                lhs.pack(p);
                rhs.pack(p);
            }
            ExprKind::Unary { op, expr } => {
                p.byte(8);
                op.pack(p);
                expr.pack(p);
            }
            ExprKind::Pipe { lhs, rhs } => {
                p.byte(9);
                lhs.pack(p);
                rhs.pack(p);
            }
            ExprKind::Range { lo, hi } => {
                p.byte(10);
                lo.pack(p);
                hi.pack(p);
            }
            ExprKind::Tuple(items) => {
                p.byte(11);
                items.pack(p);
            }
            ExprKind::List(items) => {
                p.byte(12);
                items.pack(p);
            }
            ExprKind::Closure { params, body } => {
                p.byte(13);
                params.pack(p);
                body.pack(p);
            }
            ExprKind::If(branch) => {
                p.byte(14);
                branch.pack(p);
            }
            ExprKind::Scan(scan) => {
                p.byte(15);
                scan.pack(p);
            }
            ExprKind::Block(block) => {
                p.byte(16);
                block.pack(p);
            }
        }
    }

    fn unpack(u: &mut Unpacker) -> ExprKind {
        match u.byte() {
            0 => {
                let flags = u.byte();
                let value = if flags & NUMBER_WHOLE != 0 {
                    u.number() as f64
                } else {
                    let (bits, rest) = u.bytes.split_at(8);
                    u.bytes = rest;
                    f64::from_bits(u64::from_le_bytes(bits.try_into().expect("eight bytes")))
                };
                ExprKind::Number {
                    value,
                    is_int: flags & NUMBER_IS_INT != 0,
                }
            }
            1 => ExprKind::Str(Packed::unpack(u)),
            2 => ExprKind::Bool(Packed::unpack(u)),
            3 => ExprKind::Training,
            4 => ExprKind::Name(Packed::unpack(u)),
            5 => ExprKind::Member(Packed::unpack(u)),
            6 => ExprKind::Call(Packed::unpack(u)),
            7 => ExprKind::Binary {
                op: Packed::unpack(u),
                op_at: u.offset(),
                lhs: Packed::unpack(u),
                rhs: Packed::unpack(u),
            },
            8 => ExprKind::Unary {
                op: Packed::unpack(u),
                expr: Packed::unpack(u),
            },
            9 => ExprKind::Pipe {
                lhs: Packed::unpack(u),
                rhs: Packed::unpack(u),
            },
            10 => ExprKind::Range {
                lo: Packed::unpack(u),
                hi: Packed::unpack(u),
            },
            11 => ExprKind::Tuple(Packed::unpack(u)),
            12 => ExprKind::List(Packed::unpack(u)),
            13 => ExprKind::Closure {
                params: Packed::unpack(u),
                body: Packed::unpack(u),
            },
            14 => ExprKind::If(Packed::unpack(u)),
            15 => ExprKind::Scan(Packed::unpack(u)),
            16 => ExprKind::Block(Packed::unpack(u)),
            tag => unreachable!("expression tag {tag}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body with every kind of node, and numbers packed each way.
    const BODY: &str = r#"{
  param w, b: [4, n] = zeros
  param v: f32[..S, 3]
  state m: (f32, i32[2]) = zeros
  state c = 0
  let a, (b2, c2) = (1, 2.5)
  let s = "héllo\n"
  let t = training and not true or false
  let r = 0..10
  let l = [1, 2, ..rest]
  let g = |p, (q, z)| p + q * z ^ 2 // 3 % 4 @ w - -p
  let h = if a < 1 { 1e309 } else if a >= 2 { 0.5 } else { 9007199254740993 }
  let k = x.field |> Dense(64, act: relu) |> f(1)(2)
  let y = scan(xs, axis: 1, init: c0) |u, v| {
    yield u, v
  }
  m = { let z = 1e-2
    z + 1 }
  a == b and a != b or a <= b and a > b
}"#;

    /// A definition's body unpacks to the tree the parser builds for the same text unpacked:
    /// the same block as an expression in a `train` block, at the same offset.
    #[test]
    fn a_body_unpacks_to_the_tree_it_was_packed_from() {
        let train = "train M on d {\n  let v = ";
        let def = format!("fn f(){}{BODY}\n", " ".repeat(train.len() - "fn f()".len()));
        let (module, diags) = crate::syntax::parse(FileId(0), &def);
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Item::Def(d)) = module.items.first() else {
            panic!("a definition");
        };
        let (module, diags) = crate::syntax::parse(FileId(0), &format!("{train}{BODY}\n}}\n"));
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Item::Train(t)) = module.items.first() else {
            panic!("a train block");
        };
        let Some(TrainStmt::Let(Stmt {
            kind: StmtKind::Let { value, .. },
            ..
        })) = t.stmts.first()
        else {
            panic!("a let");
        };
        let ExprKind::Block(block) = &value.kind else {
            panic!("a block");
        };
        assert_eq!(d.body.unpack(), **block);
        assert_eq!(Body::pack(block), d.body);
    }
}
