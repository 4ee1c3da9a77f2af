//! Where graphs run. The runtime asks a backend to prepare each graph once and then runs it per
//! batch: on the reference interpreter, or compiled to native code by the JIT.

use crate::interp;
use crate::ir::{Graph, Verified};
use crate::tensor::{RunError, Tensor};
use std::collections::HashMap;

/// A graph made ready to run by a backend.
pub trait Executable {
    /// Runs the graph on the inputs `input` finds by name; `locate_nonfinite` asks the backend
    /// to stop at the first node that turns finite operands into a NaN or an infinity and name it.
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError>;

    /// Runs a training step: every output named like a value of `state` (a parameter, layer
    /// state, optimizer state) replaces that value, unless the output `loss` is not finite,
    /// when `state` is left as it was; returns the other outputs. Inputs are looked up in
    /// `input`, then in `state`.
    fn run_step<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        state: &mut HashMap<String, Tensor>,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        let mut out = {
            let state: &HashMap<String, Tensor> = state;
            self.run(&|n| input(n).or_else(|| state.get(n)), false)?
        };
        let finite = out
            .get("loss")
            .and_then(Tensor::scalar)
            .is_none_or(f64::is_finite);
        if finite {
            for (name, slot) in state.iter_mut() {
                if let Some(value) = out.remove(name) {
                    *slot = value;
                }
            }
        }
        Ok(out)
    }

    /// Where the time of the runs since the backend was asked to profile went, step by step
    /// (empty when the backend does not profile).
    fn profile(&self) -> Vec<crate::jit::ProfileRow> {
        Vec::new()
    }
}

pub trait Backend {
    fn name(&self) -> &'static str;
    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String>;
}

/// The reference interpreter (`src/interp`).
pub struct Interpreter {
    /// Threads for matrix products.
    pub threads: usize,
}

struct Interpreted {
    graph: Verified,
    threads: usize,
}

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String> {
        Ok(Box::new(Interpreted {
            graph: Verified::new(graph)?,
            threads: self.threads,
        }))
    }
}

impl Executable for Interpreted {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        let opts = interp::Options {
            check_finite: locate_nonfinite,
            threads: self.threads,
        };
        interp::run_verified(&self.graph, input, &opts)
    }
}

/// The Cranelift JIT (`src/jit`). It cannot name the op that made a NaN, so the interpreter
/// runs the graph when asked to locate one.
pub struct Jit {
    /// Threads for matrix products and large loops.
    pub threads: usize,
    /// Time every step of every run (`nnlc run --profile`).
    pub profile: bool,
}

struct Jitted {
    program: crate::jit::Program,
    threads: usize,
}

impl Backend for Jit {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String> {
        let mut program = crate::jit::compile(&graph)?;
        program.set_profiling(self.profile);
        Ok(Box::new(Jitted {
            program,
            threads: self.threads,
        }))
    }
}

impl Executable for Jitted {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        if locate_nonfinite {
            let opts = interp::Options {
                check_finite: true,
                threads: self.threads,
            };
            return interp::run_verified(self.program.graph(), input, &opts);
        }
        self.program.run(input, self.threads)
    }

    fn run_step<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        state: &mut HashMap<String, Tensor>,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        self.program.run_step(input, state, self.threads)
    }

    fn profile(&self) -> Vec<crate::jit::ProfileRow> {
        self.program.profile()
    }
}
