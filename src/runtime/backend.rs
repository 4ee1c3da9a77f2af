//! Where graphs run. The runtime asks a backend to prepare each graph once and then runs it per
//! batch: on the reference interpreter, or compiled to native code by the JIT.

use crate::interp::{self, InterpError, Tensor};
use crate::ir::Graph;
use std::collections::HashMap;

/// A graph made ready to run by a backend.
pub trait Executable {
    /// Runs the graph on the inputs `input` finds by name; `locate_nonfinite` asks the backend
    /// to stop at the first node that turns finite operands into a NaN or an infinity and name it.
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, InterpError>;
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
    graph: Graph,
    threads: usize,
}

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String> {
        crate::ir::verify(&graph)?;
        Ok(Box::new(Interpreted {
            graph,
            threads: self.threads,
        }))
    }
}

impl Executable for Interpreted {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, InterpError> {
        let opts = interp::Options {
            check_finite: locate_nonfinite,
            threads: self.threads,
        };
        interp::run_with(&self.graph, input, &opts)
    }
}

/// The Cranelift JIT (`src/jit`). It cannot name the op that made a NaN, so the interpreter
/// runs the graph when asked to locate one.
pub struct Jit {
    /// Threads for matrix products and large loops.
    pub threads: usize,
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
        Ok(Box::new(Jitted {
            program: crate::jit::compile(&graph)?,
            threads: self.threads,
        }))
    }
}

impl Executable for Jitted {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, InterpError> {
        if locate_nonfinite {
            let opts = interp::Options {
                check_finite: true,
                threads: self.threads,
            };
            return interp::run_with(self.program.graph(), input, &opts);
        }
        self.program.run(input, self.threads)
    }
}
