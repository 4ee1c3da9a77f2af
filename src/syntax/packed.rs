//! Definition bodies, packed. A body's tree spends tens of bytes on each node (a box per
//! expression, a span in every node); packed, a node is a tag byte and a few LEB128 numbers (a
//! span as its difference from the span packed before it), about a ninth of the bytes. Bodies
//! are most of a large file's syntax tree, so a module holds them packed ([`Body`]) and a stage
//! that walks one unpacks it for the walk ([`Body::unpack`], about a thirtieth of the time
//! parsing it takes): checking a 50 MB file holds about half the memory it did.
//!
//! Each node type is packed by one `impl Packed`, most of them written by `packed_struct!` and
//! `packed_enum!`: they name every field and variant (each variant's tag once, for packing and
//! unpacking), so a new field or variant does not compile until it is packed.

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

/// Number literals: most are small whole numbers (`2`, `64`, `1.0`), packed as one; the rest
/// as their eight bytes, after a byte saying which.
impl Packed for f64 {
    fn pack(&self, p: &mut Packer) {
        let whole = self.fract() == 0.0 && (0.0..9.0e15).contains(self) && self.is_sign_positive();
        p.byte(u8::from(whole));
        if whole {
            p.number(*self as u64);
        } else {
            p.bytes.extend_from_slice(&self.to_bits().to_le_bytes());
        }
    }

    fn unpack(u: &mut Unpacker) -> f64 {
        if u.byte() != 0 {
            return u.number() as f64;
        }
        let (bits, rest) = u.bytes.split_at(8);
        u.bytes = rest;
        f64::from_bits(u64::from_le_bytes(bits.try_into().expect("eight bytes")))
    }
}

/// The one `u32` in a body is a byte offset (where a binary operator starts), packed like a
/// span's start.
impl Packed for u32 {
    fn pack(&self, p: &mut Packer) {
        p.offset(*self);
    }

    fn unpack(u: &mut Unpacker) -> u32 {
        u.offset()
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

/// Lists: their length, then their items.
macro_rules! packed_list {
    ($($list:ident),*) => {
        $(impl<T: Packed> Packed for $list<T> {
            fn pack(&self, p: &mut Packer) {
                p.len(self.len());
                self.iter().for_each(|item| item.pack(p));
            }

            fn unpack(u: &mut Unpacker) -> $list<T> {
                let len = u.len();
                let mut items = $list::with_capacity(len);
                items.extend((0..len).map(|_| T::unpack(u)));
                items
            }
        })*
    };
}

packed_list!(Vec, ThinVec);

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

/// Packs an enum as its variant's tag byte, then the variant's parts in order. Each variant is
/// listed once with its tag, for packing and unpacking alike; the `match` in `pack` is
/// exhaustive, so a new variant must be listed.
macro_rules! packed_enum {
    ($name:ident {
        $($tag:literal => $variant:ident $({ $($field:ident),* })? $(( $($part:ident),* ))?),* $(,)?
    }) => {
        impl Packed for $name {
            fn pack(&self, p: &mut Packer) {
                match self {
                    $($name::$variant $({ $($field),* })? $(( $($part),* ))? => {
                        p.byte($tag);
                        $($($field.pack(p);)*)?
                        $($($part.pack(p);)*)?
                    })*
                }
            }

            fn unpack(u: &mut Unpacker) -> $name {
                match u.byte() {
                    $($tag => $name::$variant
                        $({ $($field: Packed::unpack(u)),* })?
                        $(( $(unpack_part!($part, u)),* ))?,)*
                    tag => unreachable!("{} tag {tag}", stringify!($name)),
                }
            }
        }
    };
}

/// One part of a tuple variant (the name only drives the repetition).
macro_rules! unpack_part {
    ($part:ident, $u:expr) => {
        Packed::unpack($u)
    };
}

packed_enum!(Dtype {
    0 => F32,
    1 => F64,
    2 => I32,
    3 => Bool,
});
packed_enum!(UnOp {
    0 => Neg,
    1 => Not,
});
packed_enum!(BinOp {
    0 => Add,
    1 => Sub,
    2 => Mul,
    3 => Div,
    4 => FloorDiv,
    5 => Rem,
    6 => MatMul,
    7 => Pow,
    8 => Eq,
    9 => Ne,
    10 => Lt,
    11 => Le,
    12 => Gt,
    13 => Ge,
    14 => And,
    15 => Or,
});
packed_enum!(StmtKind {
    0 => Let { pats, value },
    1 => Param { names, ty, init },
    2 => State { names, ty, init },
    3 => Assign { target, value },
    4 => Yield(values),
    5 => Expr(e),
});
packed_enum!(Pattern {
    0 => Name(name),
    1 => Tuple(parts, span),
});
packed_enum!(TypeKind {
    0 => Tensor { dtype, shape },
    1 => Shape(shape),
    2 => Tuple(parts),
    3 => Named(name),
});
packed_enum!(ShapeItem {
    0 => Dim(e),
    1 => Pack(name),
});
packed_enum!(ListItem {
    0 => Expr(e),
    1 => Spread(name),
});
packed_enum!(ExprKind {
    0 => Number { value, is_int },
    1 => Str(text),
    2 => Bool(value),
    3 => Training,
    4 => Name(name),
    5 => Member(member),
    6 => Call(call),
    7 => Binary { op, op_at, lhs, rhs },
    8 => Unary { op, expr },
    9 => Pipe { lhs, rhs },
    10 => Range { lo, hi },
    11 => Tuple(items),
    12 => List(items),
    13 => Closure { params, body },
    14 => If(branch),
    15 => Scan(scan),
    16 => Block(block),
});

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
