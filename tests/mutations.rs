//! No input makes the pipeline panic: every example is mutated thousands of times (tokens
//! deleted, duplicated, swapped; the file truncated) and each mutant must be checked to the end;
//! a mutant that checks clean must also compile: it is lowered (a refusal fails the test),
//! differentiated, optimized and verified.

mod common;
#[path = "common/stages.rs"]
mod stages;

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte ranges of tokens: words, numbers, strings, single punctuation characters.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
            {
                i += 1;
            }
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                i += 1;
            }
            i = (i + 1).min(bytes.len());
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push((start, i));
    }
    out
}

fn mutate(text: &str, rng: &mut Rng) -> String {
    let toks = tokens(text);
    if toks.is_empty() {
        return String::new();
    }
    let (s, e) = toks[rng.below(toks.len())];
    match rng.below(4) {
        0 => format!("{}{}", &text[..s], &text[e..]),
        1 => format!("{}{} {}", &text[..e], &text[s..e], &text[e..]),
        2 => {
            let j = rng.below(toks.len());
            let (s2, e2) = toks[j];
            if s2 <= e {
                return text.to_string();
            }
            format!(
                "{}{}{}{}{}",
                &text[..s],
                &text[s2..e2],
                &text[e..s2],
                &text[s..e],
                &text[e2..]
            )
        }
        _ => text[..s].to_string(),
    }
}

#[test]
fn mutated_examples_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    let mut with_diagnostics = 0;
    let mut lowered = 0;
    for path in common::nnl_files(&common::root().join("examples")) {
        let original = std::fs::read_to_string(&path).expect("example");
        assert!(
            common::check_path(&path).diagnostics.is_empty(),
            "{} must start clean",
            path.display()
        );
        // Named as the example, so that its data paths resolve as they do for it.
        let name = path.to_string_lossy().into_owned();
        for round in 0..300 {
            let mut text = original.clone();
            for _ in 0..1 + round % 3 {
                text = mutate(&text, &mut rng);
            }
            let result = std::panic::catch_unwind(|| stages::all_stages(&name, &text));
            match result {
                Ok((diagnostics, _, compiled)) => {
                    checked += 1;
                    with_diagnostics += usize::from(diagnostics > 0);
                    lowered += usize::from(compiled);
                }
                Err(_) => panic!(
                    "the pipeline panicked on this mutant of {}:\n{text}",
                    path.display()
                ),
            }
        }
    }
    eprintln!(
        "{checked} mutants, {with_diagnostics} with diagnostics, {lowered} through the back end"
    );
    assert!(checked >= 3000, "only {checked} mutants");
    assert!(
        lowered >= 100,
        "only {lowered} mutants went through the back end"
    );
    // Most mutants are broken; the checker must notice (a sanity bound, not an exact count).
    assert!(
        with_diagnostics * 2 > checked,
        "only {with_diagnostics} of {checked} mutants got a diagnostic"
    );
}
