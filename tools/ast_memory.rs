//! Where the memory of checking a large file goes: bytes held per byte of source after
//! parsing and after checking, counted by a wrapper around the system allocator (requested
//! sizes; the allocator's own rounding and headers come on top, see `tools/check_scaling.py`).
//!
//!     python3 -c "import sys; sys.path.insert(0, 'tools'); import check_scaling as c; c.generate(5, '/tmp/5mb.nnl')"
//!     cargo run --release --example ast_memory -- /tmp/5mb.nnl

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        BLOCKS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn report(stage: &str, source_bytes: usize) {
    let per_byte = |n: usize| n as f64 / source_bytes as f64;
    println!(
        "{stage:>14}: {:>5.1} B held, {:>5.3} allocations held, {:>5.1} B at the peak (per source byte)",
        per_byte(LIVE.load(Relaxed)),
        per_byte(BLOCKS.load(Relaxed)),
        per_byte(PEAK.load(Relaxed)),
    );
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: ast_memory FILE.nnl");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let n = text.len();
    report("source", n);
    let started = std::time::Instant::now();
    let (module, _) = nnl::syntax::parse(nnl::source::FileId(0), &text);
    println!("parsed in {:.2?}", started.elapsed());
    report("syntax tree", n);
    drop(module);
    report("tree dropped", n);
    let started = std::time::Instant::now();
    let (out, _program) = nnl::check_program_keeping(
        &path,
        text,
        &nnl::fs::DiskLoader,
        nnl::check::Keep::DIAGNOSTICS,
    );
    println!(
        "parsed and checked in {:.2?}, {} diagnostics",
        started.elapsed(),
        out.diagnostics.len()
    );
    report("checked", n);
}
