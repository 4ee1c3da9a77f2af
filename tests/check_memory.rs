//! Checking a file takes memory in proportion to its size, and a small multiple of it: the
//! heap's peak while a generated file of layers, models and functions (the shape of
//! `tools/check_scaling.py`'s files) is checked, counted by this binary's allocator. Nothing
//! here is timed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One block of the generated file: a residual layer, a function and a model using both
/// (as `tools/check_scaling.py` writes them).
fn block(i: usize) -> String {
    format!(
        "# block {i}: a residual MLP block, a model around it and a helper
layer Block{i}(width: int = 32)(x: f32[B, D]) -> f32[B, width] {{
  let h = x |> Dense(width) |> relu
  let g = h * 2.0 + 1.0 - h / 3.0
  g |> Dense(width) |> tanh
}}

fn scale{i}(x: f32[B, N], k: f32) -> f32[B, N] {{
  let m = mean(x, axis: -1, keep: true)
  (x - m) * k + m
}}

model Net{i}(hidden: int = 64)(x: f32[B, 8]) -> f32[B, 4] {{
  let h = x |> Block{i}(hidden) |> LayerNorm(hidden)
  scale{i}(h, 0.5) |> Dense(4)
}}

"
    )
}

fn generated(bytes: usize) -> String {
    let mut text = String::from("use std.nn.{Dense, Conv2d, LayerNorm}\n\n");
    let mut i = 0;
    while text.len() < bytes {
        text.push_str(&block(i));
        i += 1;
    }
    text
}

/// The heap's peak while `text` is checked keeping what `keep` asks for, beyond what was in
/// use before (the text itself).
fn peak_while_checking(text: &str, keep: nnl::check::Keep) -> usize {
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let (out, program) =
        nnl::check_program_keeping("generated.nnl", text, &nnl::fs::DiskLoader, keep);
    assert!(
        !out.has_errors(),
        "{}",
        nnl::diag::render(&out.sources, &out.diagnostics, false)
    );
    drop((out, program));
    PEAK.load(Ordering::Relaxed) - before
}

/// The bound for a check that keeps everything (the language server, `nnlc run`), in bytes of
/// heap per byte of source. What is counted: the source map's copy of the text, the syntax
/// tree, the resolver's scopes, the checker's types by span, the model summaries and the facts
/// of every call and instance (33–38 bytes per byte on this file when it was written; 25–30
/// since definition bodies are packed).
const ALL_HEAP_PER_SOURCE_BYTE: usize = 36;

/// The bound for `nnlc check`, which keeps the diagnostics alone: the text, the syntax tree
/// and the resolver's scopes (19–20 bytes per byte when it was written; 17.6–18.8 since the
/// pieces of a file are joined a batch at a time; 6.5–8.3 since definition bodies are packed).
const CHECK_HEAP_PER_SOURCE_BYTE: usize = 10;

#[test]
fn checking_takes_a_bounded_multiple_of_the_files_size_in_memory() {
    // Sizes past the point (64 KiB) where the file is parsed a piece per thread.
    let small = generated(250_000);
    let large = generated(1_000_000);
    for (keep, bound) in [
        (nnl::check::Keep::ALL, ALL_HEAP_PER_SOURCE_BYTE),
        (nnl::check::Keep::DIAGNOSTICS, CHECK_HEAP_PER_SOURCE_BYTE),
    ] {
        let small_peak = peak_while_checking(&small, keep);
        let large_peak = peak_while_checking(&large, keep);
        for (text, peak) in [(&small, small_peak), (&large, large_peak)] {
            eprintln!(
                "keeping {keep:?}: {} bytes of source, {peak} bytes of heap at the peak ({:.1} per byte)",
                text.len(),
                peak as f64 / text.len() as f64
            );
            assert!(
                peak <= bound * text.len(),
                "checking {} bytes of source keeping {keep:?} took {peak} bytes of heap at its peak, more than {bound} per byte",
                text.len()
            );
        }
        // Linear: four times the file takes at most five times the memory (the fixed costs,
        // such as the standard library's tree, only make the small file's share larger).
        assert!(
            large_peak <= small_peak * 5,
            "checking 4 times the source keeping {keep:?} took {:.1} times the memory",
            large_peak as f64 / small_peak as f64
        );
    }
}
