//! Matching a call's arguments to a definition's signature: attributes and inputs bound,
//! dimension symbols unified (with where each was bound), `where` constraints evaluated.

use super::ty::{Shape, ShapeElem, Ty};
use super::{ArgVal, Bindings, Callee, Checker, Part, Slot};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::resolve::ItemRef;
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::HashMap;

impl Checker<'_> {
    /// Binds `args` to `params` of definition `r`, checking each against its declared type.
    pub(super) fn bind_params(
        &mut self,
        r: ItemRef,
        part: Part,
        args: &[ArgVal],
        span: Span,
        preset: Option<Bindings>,
    ) -> Option<Bindings> {
        let def = self.program.def(r).expect("a def");
        let params = match part {
            Part::Attrs => &def.attrs,
            Part::Params => &def.params,
        };
        let what = def.name.name;
        let slots: Vec<Slot> = params
            .iter()
            .map(|p| Slot {
                name: &p.name.name,
                optional: p.default.is_some(),
            })
            .collect();
        let matched = self.bind_call(&slots, args, &what, span, Callee::Def(r, part))?;
        if self.report_swapped(&what, params, &matched) {
            return None;
        }
        let mut b = preset.unwrap_or(Bindings {
            vals: Vec::new(),
            bound_at: HashMap::new(),
        });
        let mut ok = true;
        for (p, a) in params.iter().zip(matched) {
            let (ty, arg_span) = match a {
                Some(a) => (a.ty, a.span),
                None => {
                    let mut f = self.frame_from_bindings(r, &b);
                    let default = p.default.as_ref().expect("optional slots have defaults");
                    (self.expr(&mut f, default), span)
                }
            };
            if let Some(t) = &p.ty
                && !self.match_type(r, t, &ty, arg_span, &p.name.name, &mut b)
            {
                ok = false;
            }
            b.vals.push((p.name.name, ty));
        }
        ok.then_some(b)
    }

    /// Two tensor arguments whose dtypes each fit the other's parameter but not their own:
    /// `sparse_cross_entropy(y, out)`. One error saying so beats two dtype errors.
    fn report_swapped(&mut self, what: &str, params: &[Param], matched: &[Option<ArgVal>]) -> bool {
        let dtype_of = |p: &Param| match p.ty.as_ref().map(|t| &t.kind) {
            Some(TypeKind::Tensor { dtype, .. }) => Some(*dtype),
            _ => None,
        };
        let given: Vec<(usize, Dtype, &ArgVal)> = params
            .iter()
            .zip(matched)
            .enumerate()
            .filter_map(|(i, (p, a))| {
                let a = a.as_ref()?;
                let (Some(want), Ty::Tensor(got, _)) = (dtype_of(p), &a.ty) else {
                    return None;
                };
                (want != *got).then_some((i, *got, a))
            })
            .collect();
        let [(i, got_i, a), (j, got_j, b)] = given.as_slice() else {
            return false;
        };
        if dtype_of(&params[*i]) != Some(*got_j) || dtype_of(&params[*j]) != Some(*got_i) {
            return false;
        }
        let (pi, pj) = (&params[*i].name.name, &params[*j].name.name);
        let (ti, tj) = (self.sources.text(a.span), self.sources.text(b.span));
        self.emit(
            Diagnostic::error(codes::DTYPE_MISMATCH, format!("the arguments of `{what}` look swapped"))
                .with_primary(a.span, format!("this is {}, given as `{pi}`", a.ty))
                .with_secondary(b.span, format!("this is {}, given as `{pj}`", b.ty))
                .with_help(format!(
                    "`{what}` takes `{pi}` first, then `{pj}`: write `{what}({tj}, {ti})`, or name them: `{pi}: {tj}, {pj}: {ti}`"
                )),
        );
        true
    }

    /// Evaluates the `where` constraints of `r` under the bindings. `attrs_only` skips the ones
    /// that mention names not bound yet (inputs, when only attributes are known).
    pub(super) fn check_wheres(
        &mut self,
        r: ItemRef,
        b: &Bindings,
        span: Span,
        attrs_only: bool,
    ) -> bool {
        let def = self.program.def(r).expect("a def");
        let mut ok = true;
        for w in &def.wheres {
            let mut names = Vec::new();
            collect_names(&w.cond, &mut names);
            if attrs_only && names.iter().any(|n| b.get(n).is_none()) {
                continue;
            }
            let mut f = self.frame_from_bindings(r, b);
            let mark = self.diags.len();
            let v = self.expr(&mut f, &w.cond);
            self.diags.truncate(mark);
            if let Ty::Bool(Some(false)) = v {
                ok = false;
                let written = self.sources.text(w.cond.span).to_string();
                let message = match &w.message {
                    Some(m) => format_message(&m.value, b),
                    None => format!("`{}` requires `{written}`", def.name.name),
                };
                let values: Vec<String> = names
                    .iter()
                    .filter_map(|n| b.get(n).map(|t| format!("{n} = {}", show_value(t))))
                    .collect();
                let mut d = Diagnostic::error(codes::WHERE_FAILED, message)
                    .with_primary(
                        span,
                        format!("the `where` condition of `{}` fails here", def.name.name),
                    )
                    .with_secondary(w.cond.span, "this condition is false");
                if !values.is_empty() {
                    d = d.with_note(format!("with {}", values.join(", ")));
                }
                // A model checked with its defaults is not called: its defaults are at fault.
                let what = if span == def.name.span {
                    "default attributes"
                } else {
                    "arguments"
                };
                self.emit(d.with_help(format!(
                    "change the {what} of `{}` so that the condition holds",
                    def.name.name
                )));
            }
        }
        ok
    }

    /// Matches a value against a declared type, binding the symbols it introduces.
    fn match_type(
        &mut self,
        r: ItemRef,
        t: &TypeExpr,
        actual: &Ty,
        arg_span: Span,
        param: &str,
        b: &mut Bindings,
    ) -> bool {
        if actual.is_unknown() {
            return true;
        }
        let def_name = self.def_name(r);
        let mismatch = |this: &mut Self, expected: String, extra: Option<String>| {
            let mut d = Diagnostic::error(
                codes::DECLARATION_MISMATCH,
                format!("`{def_name}` expects `{param}` to be {expected}, found {actual}"),
            )
            .with_primary(arg_span, format!("this is {actual}"))
            .with_secondary(t.span, format!("`{param}` is declared here"));
            if let Some(x) = extra {
                d = d.with_note(x);
            }
            this.emit(d);
            false
        };
        match &t.kind {
            TypeKind::Tensor { dtype, shape } => {
                let (adt, ashape) = match actual {
                    Ty::Tensor(d, s) => (*d, s.clone()),
                    // Weak scalars take the declared dtype; their shape is `[]`.
                    Ty::Float(_) if dtype.is_float() => (*dtype, Shape::scalar()),
                    Ty::Int(_) if *dtype != Dtype::Bool => (*dtype, Shape::scalar()),
                    Ty::Bool(_) if shape.is_none() && *dtype == Dtype::Bool => return true,
                    _ => return mismatch(self, describe_type_expr(self, t), None),
                };
                if adt != *dtype {
                    let given = Given {
                        ty: actual,
                        span: arg_span,
                        param,
                    };
                    return self.dtype_mismatch(
                        r,
                        t,
                        (*dtype, shape.as_ref()),
                        &given,
                        (adt, &ashape),
                    );
                }
                match shape {
                    None if ashape.0.is_empty() => true,
                    None => {
                        self.emit(
                            Diagnostic::error(
                                codes::RANK,
                                format!(
                                    "`{def_name}` expects `{param}` to be a scalar, found {actual}"
                                ),
                            )
                            .with_primary(arg_span, format!("this has rank {}", ashape.0.len()))
                            .with_secondary(t.span, format!("`{param}` is declared here"))
                            .with_help("reduce it first, e.g. with `mean(…)` or `sum(…)`"),
                        );
                        false
                    }
                    Some(s) => self.unify_shape(
                        r,
                        s,
                        &ashape,
                        &Given {
                            ty: actual,
                            span: arg_span,
                            param,
                        },
                        b,
                    ),
                }
            }
            TypeKind::Shape(s) => match actual {
                Ty::Tensor(_, ashape) => self.unify_shape(
                    r,
                    s,
                    ashape,
                    &Given {
                        ty: actual,
                        span: arg_span,
                        param,
                    },
                    b,
                ),
                _ => mismatch(self, describe_type_expr(self, t), None),
            },
            TypeKind::Tuple(ts) => match actual {
                Ty::Tuple(items) if items.len() == ts.len() => ts
                    .iter()
                    .zip(items)
                    .all(|(t, a)| self.match_type(r, t, a, arg_span, param, b)),
                _ => mismatch(self, describe_type_expr(self, t), None),
            },
            TypeKind::Named(n) => {
                let fits = match n.name.as_str() {
                    "int" => matches!(actual, Ty::Int(_)),
                    "str" => matches!(actual, Ty::Str(_)),
                    "init" => match actual {
                        Ty::Init | Ty::Tensor(..) => true,
                        Ty::Callable(super::ty::Callable::Builtin(b)) => b.initializer().is_some(),
                        _ => false,
                    },
                    "params" => matches!(actual, Ty::ParamSet),
                    _ => true,
                };
                if fits {
                    true
                } else {
                    let extra = matches!(actual, Ty::Float(_))
                        .then(|| format!("`{param}` must be a whole number"));
                    mismatch(self, format!("`{}`", n.name), extra)
                }
            }
        }
    }

    fn dtype_mismatch(
        &mut self,
        r: ItemRef,
        t: &TypeExpr,
        (want, shape): (Dtype, Option<&ShapeExpr>),
        given: &Given,
        (got, ashape): (Dtype, &Shape),
    ) -> bool {
        let Given {
            ty: actual,
            span: arg_span,
            param,
        } = *given;
        let def_name = self.def_name(r);
        let declared_rank = shape.map_or(0, |s| s.items.len());
        let fixed_rank =
            shape.is_none_or(|s| s.items.iter().all(|i| matches!(i, ShapeItem::Dim(_))));
        let class_axis = self.class_axis(r, shape);
        let looks_like_labels = param != "logits"
            && got == Dtype::I32
            && want.is_float()
            && ((fixed_rank && ashape.rank().is_some_and(|k| k + 1 == declared_rank))
                || class_axis.is_some());
        if got.is_float() && want == Dtype::I32 && param == "target" {
            self.emit(
                Diagnostic::error(codes::LABEL_ENCODING, format!("`{def_name}` wants class indices, but `{param}` gets {actual}"))
                    .with_primary(arg_span, format!("this is {actual}: one-hot or probabilities"))
                    .with_secondary(t.span, format!("`{param}` is declared as {}", describe_type_expr(self, t)))
                    .with_help("use `cross_entropy` for one-hot targets, or keep the labels as indices in the data block (`y: i32 = label`)"),
            );
            return false;
        }
        if got == Dtype::I32 && want.is_float() && param == "target" && !looks_like_labels {
            self.emit(
                Diagnostic::error(codes::DTYPE_MISMATCH, format!("`{def_name}` wants float targets, but `{param}` gets {actual}"))
                    .with_primary(arg_span, format!("this is {actual}"))
                    .with_secondary(t.span, format!("`{param}` is declared as {}", describe_type_expr(self, t)))
                    .with_help(format!("if these are class labels, use a classification loss such as `sparse_cross_entropy`; if they are numbers, declare the data field as f32 or convert with `cast(…, {})`", want.name())),
            );
            return false;
        }
        if looks_like_labels {
            self.emit(
                Diagnostic::error(codes::LABEL_ENCODING, format!("`{def_name}` wants one-hot or probability targets, but `{param}` gets integer class labels"))
                    .with_primary(arg_span, format!("this is {actual}: one class index per sample"))
                    .with_secondary(t.span, format!("`{param}` is declared as {}", describe_type_expr(self, t)))
                    .with_help("use `sparse_cross_entropy` for integer labels, or convert them with `one_hot(y, C)` (in the data block: `y: f32[C] = label |> one_hot(C)`)"),
            );
            return false;
        }
        self.emit(
            Diagnostic::error(
                codes::DTYPE_MISMATCH,
                format!(
                    "`{def_name}` expects `{param}` to have dtype {}, found {}",
                    want.name(),
                    got.name()
                ),
            )
            .with_primary(arg_span, format!("this is {actual}"))
            .with_secondary(
                t.span,
                format!("declared as {}", describe_type_expr(self, t)),
            )
            .with_help(format!("convert it with `cast(…, {})`", want.name())),
        );
        false
    }

    fn unify_shape(
        &mut self,
        r: ItemRef,
        s: &ShapeExpr,
        ashape: &Shape,
        given: &Given,
        b: &mut Bindings,
    ) -> bool {
        let Given {
            ty: actual,
            span: arg_span,
            param,
        } = *given;
        let def_name = self.def_name(r);
        let pack_at = s.items.iter().position(|i| matches!(i, ShapeItem::Pack(_)));
        let n = ashape.0.len();
        let a_pack = ashape
            .0
            .iter()
            .position(|e| matches!(e, ShapeElem::Pack(_)));
        let written = self.sources.text(s.span).to_string();
        let rank_error = |this: &mut Self| {
            let expected = match pack_at {
                Some(_) => format!("at least rank {}", s.items.len() - 1),
                None => format!("rank {}", s.items.len()),
            };
            let found = match ashape.rank() {
                Some(k) => format!("rank {k}"),
                None => "a shape of unknown rank".into(),
            };
            this.emit(
                Diagnostic::error(codes::RANK, format!("`{def_name}` expects `{param}` with {expected} ({written}), found {found}: {actual}"))
                    .with_primary(arg_span, format!("this is {actual}"))
                    .with_secondary(s.span, format!("`{param}` is declared as {written}"))
                    .with_help("add or remove axes with `reshape`, `flatten` or a layer that changes rank"),
            );
            false
        };
        // Pair each written item with the actual element(s) it stands for.
        let (prefix, pack, suffix): (usize, Option<&Ident>, usize) = match pack_at {
            Some(k) => match &s.items[k] {
                ShapeItem::Pack(id) => (k, Some(id), s.items.len() - k - 1),
                ShapeItem::Dim(_) => unreachable!("position found a pack"),
            },
            None => (s.items.len(), None, 0),
        };
        let fits = match (pack, a_pack) {
            (None, None) => n == prefix,
            (None, Some(_)) => false,
            (Some(_), None) => n >= prefix + suffix,
            (Some(_), Some(j)) => prefix <= j && suffix < n - j,
        };
        if !fits {
            return rank_error(self);
        }
        let mut ok = true;
        let pairs: Vec<(usize, usize)> = (0..prefix)
            .map(|i| (i, i))
            .chain((0..suffix).map(|i| (prefix + 1 + i, n - suffix + i)))
            .collect();
        if let Some(id) = pack {
            let bound = Shape(ashape.0[prefix..n - suffix].to_vec().into());
            match b.get(&id.name).cloned() {
                Some(Ty::Shape(prev)) if prev != bound => {
                    self.emit(
                        Diagnostic::error(
                            codes::SYMBOL_CONFLICT,
                            format!("`..{}` stands for {prev} and for {bound}", id.name),
                        )
                        .with_primary(arg_span, format!("here `..{}` would be {bound}", id.name))
                        .with_secondary(
                            b.bound_at.get(id.name.as_str()).map_or(s.span, |x| x.0),
                            format!("`..{}` was bound to {prev} here", id.name),
                        )
                        .with_help("the leading dimensions of these inputs must agree"),
                    );
                    ok = false;
                }
                Some(_) => {}
                None => {
                    b.vals.push((id.name, Ty::Shape(bound)));
                    b.bound_at.insert(id.name, (arg_span, id.span));
                }
            }
        }
        for (wi, ai) in pairs {
            let ShapeItem::Dim(e) = &s.items[wi] else {
                continue;
            };
            let ShapeElem::Dim(actual_dim) = &ashape.0[ai] else {
                return rank_error(self);
            };
            if let ExprKind::Name(id) = &e.kind {
                match b.get(&id.name).cloned() {
                    None => {
                        b.vals.push((id.name, Ty::Int(actual_dim.clone())));
                        b.bound_at.insert(id.name, (arg_span, id.span));
                        continue;
                    }
                    Some(Ty::Int(prev)) if prev != *actual_dim => {
                        let mut d = Diagnostic::error(
                            codes::SYMBOL_CONFLICT,
                            format!(
                                "dimension `{}` of `{def_name}` is bound to both {prev} and {actual_dim}",
                                id.name
                            ),
                        );
                        match b.bound_at.get(id.name.as_str()) {
                            Some((first_arg, _)) => {
                                d = d
                                    .with_primary(
                                        arg_span,
                                        format!("here `{}` = {actual_dim}", id.name),
                                    )
                                    .with_secondary(
                                        *first_arg,
                                        format!("`{}` = {prev} was bound here", id.name),
                                    );
                            }
                            None => {
                                d = d.with_primary(
                                    arg_span,
                                    format!(
                                        "here `{}` = {actual_dim}, but the attribute says {prev}",
                                        id.name
                                    ),
                                );
                            }
                        }
                        self.emit(
                            d.with_secondary(
                                id.span,
                                format!("`{}` in the signature of `{def_name}`", id.name),
                            )
                            .with_help(format!(
                                "every use of `{}` must have the same size",
                                id.name
                            )),
                        );
                        ok = false;
                        continue;
                    }
                    Some(_) => continue,
                }
            }
            let mut f = self.frame_from_bindings(r, b);
            let mark = self.diags.len();
            let expected = self.expr(&mut f, e);
            self.diags.truncate(mark);
            if let Ty::Int(want) = expected
                && want != *actual_dim
            {
                self.emit(
                        Diagnostic::error(codes::DECLARATION_MISMATCH, format!("`{def_name}` expects `{param}` with size {want} in dimension {ai}, found {actual_dim}"))
                            .with_primary(arg_span, format!("this is {actual}"))
                            .with_secondary(e.span, format!("`{}` = {want} here", self.sources.text(e.span)))
                            .with_help("reshape the input, or change the attributes that determine this size"),
                    );
                ok = false;
            }
        }
        ok
    }
}

impl Checker<'_> {
    /// The class axis `C` of a parameter declared `f32[..S, C]` when another parameter of the
    /// same definition ends with the same `C` (`cross_entropy(logits: f32[..S, C], …)`).
    fn class_axis(&self, r: ItemRef, shape: Option<&ShapeExpr>) -> Option<String> {
        let last_name = |s: &ShapeExpr| match s.items.last() {
            Some(ShapeItem::Dim(Expr {
                kind: ExprKind::Name(id),
                ..
            })) => Some(id.name),
            _ => None,
        };
        let name = last_name(shape?)?;
        let def = self.program.def(r)?;
        let shared = def
            .params
            .iter()
            .filter_map(|p| match p.ty.as_ref().map(|t| &t.kind) {
                Some(TypeKind::Tensor { shape: Some(s), .. }) => last_name(s),
                _ => None,
            })
            .filter(|n| *n == name)
            .count();
        (shared > 1).then_some(name.to_string())
    }
}

/// An argument as given: its value's type, where it is written, and the parameter it binds.
#[derive(Clone, Copy)]
struct Given<'a> {
    ty: &'a Ty,
    span: Span,
    param: &'a str,
}

fn collect_names(e: &Expr, out: &mut Vec<String>) {
    match &e.kind {
        ExprKind::Name(id) if !out.iter().any(|n| n == id.name.as_str()) => {
            out.push(id.name.to_string());
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_names(lhs, out);
            collect_names(rhs, out);
        }
        ExprKind::Unary { expr, .. } => collect_names(expr, out),
        ExprKind::Call(call) => call.args.iter().for_each(|a| collect_names(&a.value, out)),
        _ => {}
    }
}

pub(super) fn show_value(t: &Ty) -> String {
    match t {
        Ty::Int(d) => d.to_string(),
        Ty::Float(Some(v)) => format!("{v}"),
        Ty::Bool(Some(v)) => v.to_string(),
        other => other.to_string(),
    }
}

/// Fills `{name}` in a constraint's message with the bound values.
fn format_message(msg: &str, b: &Bindings) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = after[..close].trim();
                match b.get(name) {
                    Some(t) => out.push_str(&show_value(t)),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn describe_type_expr(c: &Checker, t: &TypeExpr) -> String {
    c.sources.text(t.span).to_string()
}
