//! The tables the checker fills while it binds calls and expands models, which lowering and
//! `check --summary` read: how each call's arguments were matched to its callee's parameters,
//! and the name and parameters of each layer instance. Matching and naming happen here once.

use crate::builtins::Builtin;
use crate::prim::Initializer;
use crate::resolve::ItemRef;
use crate::source::Span;
use std::collections::HashMap;

/// What a call's arguments were matched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Callee {
    Def(ItemRef, Part),
    Builtin(Builtin),
    Init(Initializer),
    /// `scan(xs, axis:, init:)`.
    Scan,
}

/// Which parameter list of a definition a call binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// A layer's or model's attributes: `Dense(10)`.
    Attrs,
    /// Its inputs: a function, optimizer, schedule or constraint called, or a layer instance
    /// applied.
    Params,
}

/// Each call's binding: for every parameter of the callee, the index of the argument that
/// gives it, or None when its default does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    /// By the call's span, its callee and its number of arguments: a call inside a definition
    /// can reach different callees in different expansions (a layer passed as an argument), and
    /// a pipe's call site binds the attributes (`Dense(10)`) and the input (`x |>`) separately.
    bindings: HashMap<(Span, Callee, usize), Vec<Option<usize>>>,
}

impl Calls {
    /// Records a binding the checker accepted (the first one stands: the rule depends only on
    /// the call's syntax and the callee's parameters, so later ones are the same).
    pub(crate) fn record(
        &mut self,
        call: Span,
        callee: Callee,
        args: usize,
        slots: &[Option<usize>],
    ) {
        self.bindings
            .entry((call, callee, args))
            .or_insert_with(|| slots.to_vec());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Takes in the bindings `later` recorded, except those recorded already.
    pub(crate) fn absorb(&mut self, later: Calls) {
        for (key, slots) in later.bindings {
            self.bindings.entry(key).or_insert(slots);
        }
    }

    /// The binding of the call at `call` to `callee` with `args` arguments.
    pub fn binding(&self, call: Span, callee: Callee, args: usize) -> Option<&[Option<usize>]> {
        self.bindings.get(&(call, callee, args)).map(Vec::as_slice)
    }
}

/// Where a layer instance was created, relative to the instance whose body created it: the
/// spans of the function and closure calls inlined since that body began, then the span of the
/// call that created the instance. A function called twice in one body creates two instances
/// with different sites; where the body itself is applied does not matter (a model is named
/// alike when `check --summary` expands it and when a train block applies it).
pub type Site = Vec<Span>;

/// One layer instance: its path in the model (`Mlp.dense_1`) and what it declares.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFact {
    pub path: String,
    /// The definition's name: `Dense`.
    pub layer: String,
    /// Its parameters' full names (`Mlp.dense_1.w`), in declaration order.
    pub params: Vec<String>,
    /// Its states' full names (`Mlp.batch_norm_1.mean`).
    pub states: Vec<String>,
}

impl InstanceFact {
    /// The full name of its `param` (or, with `state`, its `state`) `name`.
    pub fn declared(&self, name: &str, state: bool) -> Option<&str> {
        let list = if state { &self.states } else { &self.params };
        let full = instance_path(&self.path, name);
        list.iter().find(|n| **n == full).map(String::as_str)
    }
}

/// Every layer instance of the models the checker expanded, by path and by where it was made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instances {
    list: Vec<InstanceFact>,
    by_path: HashMap<String, usize>,
    /// (the parent's path, the site) → the instance.
    by_site: HashMap<(String, Site), usize>,
}

impl Instances {
    /// The instance `parent` made at `site`, which is named here (and nowhere else):
    /// `dense_1`, `dense_2`, … numbered per definition within the parent, in the order the
    /// instances are first applied; an instance outside any other is named by its definition.
    /// `counters` belongs to the parent.
    pub(crate) fn name_child(
        &mut self,
        parent: &str,
        counters: &mut InstanceNames,
        site: &Site,
        layer: &str,
    ) -> String {
        let path = if parent.is_empty() {
            layer.to_string()
        } else {
            instance_path(parent, &counters.child(layer))
        };
        let index = match self.by_path.get(&path) {
            Some(&i) => i,
            None => {
                self.list.push(InstanceFact {
                    path: path.clone(),
                    layer: layer.to_string(),
                    params: Vec::new(),
                    states: Vec::new(),
                });
                self.by_path.insert(path.clone(), self.list.len() - 1);
                self.list.len() - 1
            }
        };
        self.by_site
            .entry((parent.to_string(), site.clone()))
            .or_insert(index);
        path
    }

    /// Records a `param` (or, with `state`, a `state`) of the instance at `path`; returns its
    /// full name.
    pub(crate) fn declare(&mut self, path: &str, name: &str, state: bool) -> String {
        let full = instance_path(path, name);
        if let Some(&i) = self.by_path.get(path) {
            let list = if state {
                &mut self.list[i].states
            } else {
                &mut self.list[i].params
            };
            if !list.contains(&full) {
                list.push(full.clone());
            }
        }
        full
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty() && self.by_site.is_empty()
    }

    /// Takes in the instances `later` recorded, as if they had been recorded here after the
    /// ones already: an instance met again keeps its place and gains the parameters and
    /// states it did not have.
    pub(crate) fn absorb(&mut self, later: Instances) {
        let mut index_here = Vec::with_capacity(later.list.len());
        for fact in later.list {
            let index = match self.by_path.get(&fact.path) {
                Some(&i) => {
                    let here = &mut self.list[i];
                    for p in fact.params {
                        if !here.params.contains(&p) {
                            here.params.push(p);
                        }
                    }
                    for s in fact.states {
                        if !here.states.contains(&s) {
                            here.states.push(s);
                        }
                    }
                    i
                }
                None => {
                    self.by_path.insert(fact.path.clone(), self.list.len());
                    self.list.push(fact);
                    self.list.len() - 1
                }
            };
            index_here.push(index);
        }
        for (key, index) in later.by_site {
            self.by_site.entry(key).or_insert(index_here[index]);
        }
    }

    /// The instance `parent` (a path; empty outside every instance) made at `site`.
    pub fn child(&self, parent: &str, site: &Site) -> Option<&InstanceFact> {
        self.by_site
            .get(&(parent.to_string(), site.clone()))
            .map(|&i| &self.list[i])
    }

    /// The instance at `path`.
    pub fn get(&self, path: &str) -> Option<&InstanceFact> {
        self.by_path.get(path).map(|&i| &self.list[i])
    }

    /// Every instance, parents before their children.
    pub fn iter(&self) -> impl Iterator<Item = &InstanceFact> {
        self.list.iter()
    }
}

/// How many instances of each definition a parent holds so far.
#[derive(Debug, Default)]
pub(crate) struct InstanceNames {
    counters: HashMap<String, usize>,
}

impl InstanceNames {
    /// The next instance of `layer` (a definition's name) in this parent.
    fn child(&mut self, layer: &str) -> String {
        let n = self.counters.entry(layer.to_string()).or_insert(0);
        *n += 1;
        format!("{}_{n}", snake_case(layer))
    }
}

/// `parent.child`; the root's children have no prefix.
fn instance_path(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

pub fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if i > 0 && (prev_lower || next_lower && chars[i - 1].is_uppercase()) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}
