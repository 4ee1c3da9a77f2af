//! Where graphs run. The runtime asks a backend to prepare each graph once and then runs it per
//! batch; the reference interpreter is the only backend until the JIT lands.

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
