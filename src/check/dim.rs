//! Symbolic dimensions: integer polynomials over dimension symbols, kept in a normal form so
//! that equal dimensions compare equal (`2 * (N + 1)` == `2 * N + 2`). Division and remainder
//! that do not simplify become opaque atoms.
//!
//! Coefficients are 64-bit and every operation on them is checked: a result that does not fit
//! is marked as overflowed (and stays so through later operations), and the checker reports it
//! at the expression that produced it instead of computing with a wrapped number.

use std::collections::BTreeMap;
use std::fmt;

/// A symbol: a dimension like `B` or an integer attribute like `hidden`, rigid while a definition
/// is checked on its own. The name is for display; the id keeps same-named symbols apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sym {
    pub id: u32,
    pub name: std::rc::Rc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Sym(Sym),
    Div(Box<Dim>, Box<Dim>),
    Rem(Box<Dim>, Box<Dim>),
    /// The product of a pack's dimensions (`flatten` of `[B, ..S]`).
    Prod(Sym),
}

/// A product of atoms with multiplicities; the empty monomial is the constant 1.
type Monomial = Vec<(Atom, u32)>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dim {
    /// Sorted by monomial, each once, no zero coefficient.
    terms: Terms,
    /// Some coefficient did not fit in 64 bits; the terms are then meaningless.
    overflow: bool,
}

/// The terms of a dimension. Most dimensions are one term (a constant or a symbol) and types
/// are cloned often, so one term is held inline: a constant is then no allocation at all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
enum Terms {
    #[default]
    Zero,
    One([(Monomial, i64); 1]),
    /// Two or more.
    Many(Vec<(Monomial, i64)>),
}

impl From<Vec<(Monomial, i64)>> for Terms {
    fn from(mut terms: Vec<(Monomial, i64)>) -> Terms {
        match terms.len() {
            0 => Terms::Zero,
            1 => Terms::One([terms.pop().expect("one term")]),
            _ => Terms::Many(terms),
        }
    }
}

impl std::ops::Deref for Terms {
    type Target = [(Monomial, i64)];

    fn deref(&self) -> &[(Monomial, i64)] {
        match self {
            Terms::Zero => &[],
            Terms::One(t) => t,
            Terms::Many(ts) => ts,
        }
    }
}

impl Dim {
    pub fn constant(c: i64) -> Dim {
        Dim {
            terms: if c == 0 {
                Terms::Zero
            } else {
                Terms::One([(Vec::new(), c)])
            },
            overflow: false,
        }
    }

    /// A dimension whose value does not fit in 64 bits.
    pub fn overflowed() -> Dim {
        Dim {
            terms: Terms::Zero,
            overflow: true,
        }
    }

    /// True when computing this dimension overflowed 64-bit integers.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }

    fn atom(a: Atom) -> Dim {
        Dim {
            terms: Terms::One([(vec![(a, 1)], 1)]),
            overflow: false,
        }
    }

    pub fn sym(s: Sym) -> Dim {
        Dim::atom(Atom::Sym(s))
    }

    pub fn prod_of_pack(s: Sym) -> Dim {
        Dim::atom(Atom::Prod(s))
    }

    pub fn as_const(&self) -> Option<i64> {
        if self.overflow {
            return None;
        }
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms[0].0.is_empty().then_some(self.terms[0].1),
            _ => None,
        }
    }

    /// The symbol, when the dimension is exactly one symbol.
    pub fn as_sym(&self) -> Option<&Sym> {
        match self.terms.iter().next() {
            Some((m, 1)) if self.terms.len() == 1 && m.len() == 1 && m[0].1 == 1 => match &m[0].0 {
                Atom::Sym(s) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// True when every atom is a plain symbol: equality of normal forms is then decisive.
    pub fn is_polynomial(&self) -> bool {
        self.terms
            .iter()
            .map(|(m, _)| m)
            .all(|m| m.iter().all(|(a, _)| matches!(a, Atom::Sym(_))))
    }

    pub fn add(&self, other: &Dim) -> Dim {
        if self.overflow || other.overflow {
            return Dim::overflowed();
        }
        // Both lists are sorted: merged in one pass.
        let mut terms = Vec::with_capacity(self.terms.len() + other.terms.len());
        let (mut a, mut b) = (self.terms.iter().peekable(), other.terms.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    std::cmp::Ordering::Less => a.next().cloned(),
                    std::cmp::Ordering::Greater => b.next().cloned(),
                    std::cmp::Ordering::Equal => {
                        let (m, c1) = a.next().expect("peeked");
                        let (_, c2) = b.next().expect("peeked");
                        let Some(sum) = c1.checked_add(*c2) else {
                            return Dim::overflowed();
                        };
                        (sum != 0).then(|| (m.clone(), sum))
                    }
                },
                (Some(_), None) => a.next().cloned(),
                (None, Some(_)) => b.next().cloned(),
                (None, None) => break,
            };
            terms.extend(next);
        }
        Dim {
            terms: terms.into(),
            overflow: false,
        }
    }

    pub fn neg(&self) -> Dim {
        let terms: Option<Vec<(Monomial, i64)>> = self
            .terms
            .iter()
            .map(|(m, c)| Some((m.clone(), c.checked_neg()?)))
            .collect();
        match terms {
            Some(terms) if !self.overflow => Dim {
                terms: terms.into(),
                overflow: false,
            },
            _ => Dim::overflowed(),
        }
    }

    pub fn sub(&self, other: &Dim) -> Dim {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        if self.overflow || other.overflow {
            return Dim::overflowed();
        }
        let mut out = Dim::default();
        for (m1, c1) in self.terms.iter() {
            for (m2, c2) in other.terms.iter() {
                let Some(c) = c1.checked_mul(*c2) else {
                    return Dim::overflowed();
                };
                let t = Dim {
                    terms: Terms::One([(mul_monomials(m1, m2), c)]),
                    overflow: false,
                };
                out = out.add(&t);
            }
        }
        out
    }

    /// Floor division. Exact divisions by a constant or a monomial simplify; others stay atoms.
    pub fn div(&self, other: &Dim) -> Option<Dim> {
        if self.overflow || other.overflow {
            return Some(Dim::overflowed());
        }
        if let (Some(a), Some(b)) = (self.as_const(), other.as_const()) {
            // Only `i64::MIN / -1` fails besides a zero divisor.
            return (b != 0).then(|| {
                a.checked_div_euclid(b)
                    .map_or_else(Dim::overflowed, Dim::constant)
            });
        }
        if other.as_const() == Some(0) {
            return None;
        }
        if let Some(q) = self.exact_div(other) {
            return Some(q);
        }
        Some(Dim::atom(Atom::Div(
            Box::new(self.clone()),
            Box::new(other.clone()),
        )))
    }

    pub fn rem(&self, other: &Dim) -> Option<Dim> {
        if self.overflow || other.overflow {
            return Some(Dim::overflowed());
        }
        if let (Some(a), Some(b)) = (self.as_const(), other.as_const()) {
            return (b != 0).then(|| {
                a.checked_rem_euclid(b)
                    .map_or_else(Dim::overflowed, Dim::constant)
            });
        }
        if other.as_const() == Some(0) {
            return None;
        }
        if self.exact_div(other).is_some() {
            return Some(Dim::constant(0));
        }
        Some(Dim::atom(Atom::Rem(
            Box::new(self.clone()),
            Box::new(other.clone()),
        )))
    }

    /// `self / other` when `other` is a single term dividing every term of `self`.
    fn exact_div(&self, other: &Dim) -> Option<Dim> {
        if other.terms.len() != 1 {
            return if self == other {
                Some(Dim::constant(1))
            } else {
                None
            };
        }
        let (dm, dc) = other.terms.first()?;
        let mut out = Vec::with_capacity(self.terms.len());
        for (m, c) in self.terms.iter() {
            if c.checked_rem(*dc)? != 0 {
                return None;
            }
            out.push((div_monomial(m, dm)?, c.checked_div(*dc)?));
        }
        // Dividing every monomial by the same one keeps them distinct, not in order.
        out.sort_by(|x, y| x.0.cmp(&y.0));
        Some(Dim {
            terms: out.into(),
            overflow: false,
        })
    }

    /// Substitutes symbols (by id) with dimensions.
    pub fn subst(&self, f: &dyn Fn(&Sym) -> Option<Dim>) -> Dim {
        if self.overflow {
            return Dim::overflowed();
        }
        let mut out = Dim::default();
        for (m, c) in self.terms.iter() {
            let mut t = Dim::constant(*c);
            for (a, pow) in m {
                let base = match a {
                    Atom::Sym(s) => f(s).unwrap_or_else(|| Dim::sym(s.clone())),
                    Atom::Div(x, y) => x
                        .subst(f)
                        .div(&y.subst(f))
                        .unwrap_or_else(|| Dim::atom(a.clone())),
                    Atom::Rem(x, y) => x
                        .subst(f)
                        .rem(&y.subst(f))
                        .unwrap_or_else(|| Dim::atom(a.clone())),
                    Atom::Prod(_) => Dim::atom(a.clone()),
                };
                for _ in 0..*pow {
                    t = t.mul(&base);
                }
            }
            out = out.add(&t);
        }
        out
    }
}

fn mul_monomials(a: &Monomial, b: &Monomial) -> Monomial {
    let mut map: BTreeMap<Atom, u32> = a.iter().cloned().collect();
    for (atom, p) in b {
        let e = map.entry(atom.clone()).or_insert(0);
        *e = e.saturating_add(*p);
    }
    map.into_iter().collect()
}

fn div_monomial(a: &Monomial, d: &Monomial) -> Option<Monomial> {
    let mut map: BTreeMap<Atom, u32> = a.iter().cloned().collect();
    for (atom, p) in d {
        let e = map.get_mut(atom)?;
        if *e < *p {
            return None;
        }
        *e -= p;
        if *e == 0 {
            map.remove(atom);
        }
    }
    Some(map.into_iter().collect())
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => write!(f, "{}", s.name),
            Atom::Div(a, b) => write!(f, "{} / {}", Operand(a), Operand(b)),
            Atom::Rem(a, b) => write!(f, "{} % {}", Operand(a), Operand(b)),
            Atom::Prod(s) => write!(f, "prod({})", s.name),
        }
    }
}

/// An operand of `/` or `%`, parenthesized unless it is a single symbol or a constant.
struct Operand<'a>(&'a Dim);

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let simple = self.0.as_const().is_some_and(|c| c >= 0)
            || self.0.terms.iter().all(|(m, c)| {
                *c == 1 && matches!(m.as_slice(), [(Atom::Sym(_) | Atom::Prod(_), 1)])
            });
        if simple {
            write!(f, "{}", self.0)
        } else {
            write!(f, "({})", self.0)
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.overflow {
            return write!(f, "(a number beyond 64 bits)");
        }
        if self.terms.is_empty() {
            return write!(f, "0");
        }
        // Symbolic terms first, the constant last: `N + 1`, `4 * hidden`.
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by_key(|(m, _)| m.is_empty());
        let single_term = terms.len() == 1;
        for (i, (m, c)) in terms.into_iter().enumerate() {
            let (sign, mag) = if *c < 0 {
                ("-", c.unsigned_abs())
            } else {
                ("+", c.unsigned_abs())
            };
            if i == 0 {
                if sign == "-" {
                    write!(f, "-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            // A quotient stands bare only when it is the whole dimension: `D / heads`.
            let bare_quotient = single_term && mag == 1 && m.len() == 1 && m[0].1 == 1;
            let factors: Vec<String> = m
                .iter()
                .map(|(a, p)| {
                    let s = match a {
                        Atom::Sym(_) | Atom::Prod(_) => a.to_string(),
                        _ if bare_quotient => a.to_string(),
                        _ => format!("({a})"),
                    };
                    if *p == 1 { s } else { format!("{s}^{p}") }
                })
                .collect();
            match (factors.is_empty(), mag) {
                (true, _) => write!(f, "{mag}")?,
                (false, 1) => write!(f, "{}", factors.join(" * "))?,
                (false, _) => write!(f, "{mag} * {}", factors.join(" * "))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u32, name: &str) -> Dim {
        Dim::sym(Sym {
            id,
            name: name.into(),
        })
    }

    #[test]
    fn normal_form_makes_equal_things_equal() {
        let n = s(0, "N");
        let two = Dim::constant(2);
        let lhs = two.mul(&n.add(&Dim::constant(1)));
        let rhs = two.mul(&n).add(&two);
        assert_eq!(lhs, rhs);
        assert_eq!(lhs.to_string(), "2 * N + 2");
    }

    #[test]
    fn exact_division_simplifies_and_inexact_stays_symbolic() {
        let d = s(0, "D");
        let h = s(1, "heads");
        let four_d = Dim::constant(4).mul(&d);
        assert_eq!(
            four_d.div(&Dim::constant(2)).unwrap(),
            Dim::constant(2).mul(&d)
        );
        let q = d.div(&h).unwrap();
        assert_eq!(q.to_string(), "D / heads");
        assert_eq!(Dim::constant(2).mul(&q).to_string(), "2 * (D / heads)");
        let sum = d.add(&Dim::constant(1)).div(&h).unwrap();
        assert_eq!(sum.to_string(), "(D + 1) / heads");
        assert_eq!(
            q.subst(&|x| (&*x.name == "D").then(|| Dim::constant(64)))
                .subst(&|x| { (&*x.name == "heads").then(|| Dim::constant(8)) }),
            Dim::constant(8)
        );
        assert_eq!(
            Dim::constant(7).div(&Dim::constant(2)),
            Some(Dim::constant(3))
        );
        assert_eq!(Dim::constant(7).rem(&Dim::constant(0)), None);
    }

    #[test]
    fn arithmetic_that_does_not_fit_in_64_bits_is_marked_and_stays_marked() {
        let n = s(0, "N");
        let max = Dim::constant(i64::MAX);
        assert!(max.add(&Dim::constant(1)).is_overflow());
        assert!(
            Dim::constant(1 << 32)
                .mul(&Dim::constant(1 << 32))
                .is_overflow()
        );
        let min = Dim::constant(i64::MIN);
        assert!(min.neg().is_overflow());
        assert!(min.div(&Dim::constant(-1)).unwrap().is_overflow());
        assert!(min.rem(&Dim::constant(-1)).unwrap().is_overflow());
        // Symbolic coefficients too, and everything computed from an overflow.
        let big = max.mul(&n);
        assert!(!big.is_overflow());
        let wrapped = big.add(&big);
        assert!(wrapped.is_overflow() && wrapped.as_const().is_none());
        assert!(wrapped.sub(&big).is_overflow());
        assert!(wrapped.subst(&|_| Some(Dim::constant(0))).is_overflow());
        assert_eq!(min.to_string(), "-9223372036854775808");
    }

    #[test]
    fn remainder_of_a_multiple_is_zero() {
        let h = s(1, "heads");
        assert_eq!(Dim::constant(3).mul(&h).rem(&h), Some(Dim::constant(0)));
    }
}
