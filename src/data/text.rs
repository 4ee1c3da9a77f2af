//! Text for language models: tokenizers, and the windows the `text` source cuts from the token
//! stream of each split.
//!
//! # Text
//!
//! A `text` file's documents are its lines (a `\r` before a line break dropped, blank lines
//! skipped); splits take whole documents, so a validation split holds text the training split
//! never saw. The tokenizer is fitted on the training split's documents once the splits are
//! made. Each split's documents, in file order, become one stream of ids, each document
//! preceded by the end-of-document id and the last one followed by it:
//! `⏎ d₁ ⏎ d₂ ⏎ … dₙ ⏎`. A window starts every `stride` ids (default: `context`, so that windows
//! do not overlap): window `k` is `x = s[k·stride .. k·stride + context]` and the next-token
//! target `y = s[k·stride + 1 .. k·stride + context + 1]`; ids after the last whole window are
//! not used.

use super::DataError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A tokenizer as the `.nnl` file declares it, before it is fitted.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSpec {
    /// `chars(vocab: N)`: one id per character of the training split.
    Chars { vocab: Option<usize> },
    /// `bpe(vocab: N)`: a byte-level BPE of `N` ids trained on the training split.
    Bpe { vocab: usize },
    /// `bpe(file: "tokenizer.json")`: a Hugging Face tokenizer file, with an optional declared
    /// vocabulary; `json` is filled in when the source is opened.
    File {
        path: String,
        vocab: Option<usize>,
        json: Option<String>,
    },
}

impl TokenizerSpec {
    /// The vocabulary size the file declares, if it does.
    pub fn declared_vocab(&self) -> Option<usize> {
        match self {
            TokenizerSpec::Chars { vocab } | TokenizerSpec::File { vocab, .. } => *vocab,
            TokenizerSpec::Bpe { vocab } => Some(*vocab),
        }
    }

    /// Fits the tokenizer on the training split's documents.
    pub fn fit(&self, documents: &[&str]) -> Result<Tokenizer, String> {
        match self {
            TokenizerSpec::Chars { vocab } => {
                let chars: BTreeSet<char> = documents.iter().flat_map(|d| d.chars()).collect();
                let needed = chars.len() + Chars::FIRST as usize;
                let size = vocab.unwrap_or(needed);
                if size < needed {
                    return Err(format!(
                        "the training split holds {} distinct characters, so `chars` needs a vocabulary of at least {needed} (with `<unk>` and the end of a document), but it declares `vocab: {size}`",
                        chars.len()
                    ));
                }
                Ok(Tokenizer::Chars(Chars {
                    vocab: size,
                    chars: chars.into_iter().collect(),
                }))
            }
            TokenizerSpec::Bpe { vocab } => Bpe::train(*vocab, documents).map(Tokenizer::Bpe),
            TokenizerSpec::File { path, vocab, json } => {
                let json = json.as_deref().ok_or("the tokenizer file was not read")?;
                let bpe = Bpe::load(json).map_err(|e| format!("`{path}`: {e}"))?;
                match vocab {
                    Some(v) if *v < bpe.vocab => Err(format!(
                        "`{path}` has {} ids, more than the declared `vocab: {v}`",
                        bpe.vocab
                    )),
                    Some(v) => Ok(Tokenizer::Bpe(Bpe { vocab: *v, ..bpe })),
                    None => Ok(Tokenizer::Bpe(bpe)),
                }
            }
        }
    }
}

/// The token that ends a document in a BPE vocabulary (GPT-2's).
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A Hugging Face tokenizer (its own JSON) whose `<|endoftext|>` token ends a document. A line
/// break in a text is that token; each line is encoded alone.
#[derive(Clone, Serialize, Deserialize)]
pub struct Bpe {
    vocab: usize,
    end: u32,
    json: String,
    #[serde(skip)]
    hf: Option<Box<tokenizers::Tokenizer>>,
}

impl std::fmt::Debug for Bpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bpe {{ vocab: {}, end: {} }}", self.vocab, self.end)
    }
}

impl PartialEq for Bpe {
    fn eq(&self, other: &Bpe) -> bool {
        (self.vocab, self.end, &self.json) == (other.vocab, other.end, &other.json)
    }
}

impl Bpe {
    /// Trains a byte-level BPE (GPT-2's pre-tokenizer and decoder, so every text round-trips)
    /// of `vocab` ids, `<|endoftext|>` first, on the documents.
    fn train(vocab: usize, documents: &[&str]) -> Result<Bpe, String> {
        use tokenizers::models::TrainerWrapper;
        use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let alphabet = ByteLevel::alphabet();
        if vocab < alphabet.len() + 1 {
            return Err(format!(
                "a byte-level BPE needs at least {} ids (256 bytes and `{END_OF_TEXT}`), but `bpe` declares `vocab: {vocab}`",
                alphabet.len() + 1
            ));
        }
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab)
            .min_frequency(0)
            .special_tokens(vec![tokenizers::AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(alphabet.into_iter().collect())
            .build()
            .into();
        let mut hf = tokenizers::Tokenizer::new(BPE::default());
        hf.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        hf.with_decoder(Some(ByteLevel::default()));
        hf.train(&mut trainer, documents.iter())
            .map_err(|e| format!("training the BPE failed: {e}"))?;
        let json = hf.to_string(false).map_err(|e| e.to_string())?;
        let mut bpe = Bpe::load(&json)?;
        bpe.vocab = vocab;
        Ok(bpe)
    }

    /// A tokenizer from its JSON (`tokenizer.json`, or a checkpoint's copy).
    fn load(json: &str) -> Result<Bpe, String> {
        let hf: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| format!("not a tokenizer file: {e}"))?;
        let end = hf.token_to_id(END_OF_TEXT).ok_or_else(|| {
            format!("the tokenizer has no `{END_OF_TEXT}` token to end a document")
        })?;
        Ok(Bpe {
            vocab: hf.get_vocab_size(true),
            end,
            json: json.to_string(),
            hf: Some(Box::new(hf)),
        })
    }

    fn hf(&self) -> &tokenizers::Tokenizer {
        self.hf.as_deref().expect("a BPE is made by `load`")
    }

    fn encode(&self, text: &str) -> Vec<i32> {
        let mut ids = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                ids.push(self.end as i32);
            }
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Ok(e) = self.hf().encode(line, false) {
                ids.extend(e.get_ids().iter().map(|&i| i as i32));
            }
        }
        ids
    }

    fn decode(&self, ids: &[i32]) -> String {
        ids.split(|&i| i == self.end as i32)
            .map(|part| {
                let part: Vec<u32> = part.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
                self.hf().decode(&part, false).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A fitted tokenizer, saved with a checkpoint as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tokenizer {
    Chars(Chars),
    Bpe(Bpe),
}

/// Character ids: `<unk>` is 0, the end of a document 1, then the training split's characters
/// in code-point order from 2. Ids past the last character (up to a declared `vocab`) are never
/// produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chars {
    vocab: usize,
    chars: Vec<char>,
}

impl Chars {
    const UNKNOWN: i32 = 0;
    const END: i32 = 1;
    const FIRST: i32 = 2;
}

impl Tokenizer {
    /// The number of ids (what a model's embedding and output layer must hold).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Chars(c) => c.vocab,
            Tokenizer::Bpe(b) => b.vocab,
        }
    }

    /// The id that ends (and starts) a document.
    pub fn end_of_document(&self) -> i32 {
        match self {
            Tokenizer::Chars(_) => Chars::END,
            Tokenizer::Bpe(b) => b.end as i32,
        }
    }

    /// The ids of a text; a line break is the end-of-document id, a character the training
    /// split did not hold is `<unk>`.
    pub fn encode(&self, text: &str) -> Vec<i32> {
        match self {
            Tokenizer::Chars(c) => text
                .chars()
                .filter(|&ch| ch != '\r')
                .map(|ch| match ch {
                    '\n' => Chars::END,
                    _ => c
                        .chars
                        .binary_search(&ch)
                        .map_or(Chars::UNKNOWN, |i| i as i32 + Chars::FIRST),
                })
                .collect(),
            Tokenizer::Bpe(b) => b.encode(text),
        }
    }

    /// The text of one id: a line break for the end of a document, `�` for `<unk>` and for an
    /// id the tokenizer never produces.
    pub fn decode_one(&self, id: i32) -> String {
        match self {
            Tokenizer::Chars(c) => match id {
                Chars::END => "\n".into(),
                _ => usize::try_from(id - Chars::FIRST)
                    .ok()
                    .and_then(|i| c.chars.get(i))
                    .map_or('\u{fffd}', |&ch| ch)
                    .to_string(),
            },
            Tokenizer::Bpe(b) => b.decode(&[id]),
        }
    }

    /// The text of a sequence of ids.
    pub fn decode(&self, ids: &[i32]) -> String {
        match self {
            Tokenizer::Chars(_) => ids.iter().map(|&id| self.decode_one(id)).collect(),
            Tokenizer::Bpe(b) => b.decode(ids),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a tokenizer serializes")
    }

    pub fn from_json(s: &str) -> Result<Tokenizer, String> {
        let mut t: Tokenizer = serde_json::from_str(s).map_err(|e| format!("unreadable: {e}"))?;
        if let Tokenizer::Bpe(b) = &t {
            let loaded = Bpe::load(&b.json)?;
            if loaded.end != b.end || loaded.vocab > b.vocab {
                return Err("its ids do not match its tokenizer".into());
            }
            t = Tokenizer::Bpe(Bpe {
                vocab: b.vocab,
                ..loaded
            });
        }
        match &t {
            Tokenizer::Chars(c) => {
                if c.vocab < c.chars.len() + Chars::FIRST as usize
                    || c.chars.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err("its characters are not sorted or do not fit its vocabulary".into());
                }
            }
            Tokenizer::Bpe(_) => {}
        }
        Ok(t)
    }
}

/// A text file's documents: its non-blank lines, without line breaks.
pub(super) fn documents(shown: &str, bytes: &[u8]) -> Result<Vec<String>, DataError> {
    let bytes = bytes
        .strip_prefix(super::formats::UTF8_BOM)
        .unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
        DataError::at(shown, line, column, "the text is not valid UTF-8")
    })?;
    Ok(text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// The windows of a split's documents: `(x, y)` row after row, `context` ids each, and how
/// many windows; an error when the stream is too short for one.
pub(super) fn windows(
    tokenizer: &Tokenizer,
    documents: &[&str],
    context: usize,
    stride: usize,
) -> Result<(Vec<i32>, Vec<i32>, usize), String> {
    let end = tokenizer.end_of_document();
    let mut stream = vec![end];
    for d in documents {
        stream.extend(tokenizer.encode(d));
        stream.push(end);
    }
    if stream.len() < context + 1 {
        return Err(format!(
            "its {} documents make {} ids, fewer than one window needs (context + 1 = {})",
            documents.len(),
            stream.len(),
            context + 1
        ));
    }
    let n = (stream.len() - context - 1) / stride + 1;
    let mut x = Vec::with_capacity(n * context);
    let mut y = Vec::with_capacity(n * context);
    for k in 0..n {
        let s = k * stride;
        x.extend_from_slice(&stream[s..s + context]);
        y.extend_from_slice(&stream[s + 1..s + context + 1]);
    }
    Ok((x, y, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(docs: &[&str], vocab: Option<usize>) -> Tokenizer {
        TokenizerSpec::Chars { vocab }.fit(docs).unwrap()
    }

    #[test]
    fn chars_round_trip_and_unknown_characters() {
        let t = chars(&["abc", "cab"], None);
        assert_eq!(t.vocab_size(), 5);
        assert_eq!(t.encode("ba\nc"), vec![3, 2, 1, 4]);
        assert_eq!(t.decode(&t.encode("ab\ncab")), "ab\ncab");
        assert_eq!(t.encode("az"), vec![2, 0]);
        assert_eq!(t.decode(&[0, 4, 99]), "\u{fffd}c\u{fffd}");
        let back = Tokenizer::from_json(&t.to_json()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn a_declared_vocabulary_must_hold_the_training_characters() {
        assert_eq!(chars(&["ab"], Some(10)).vocab_size(), 10);
        let e = TokenizerSpec::Chars { vocab: Some(3) }
            .fit(&["ab"])
            .unwrap_err();
        assert!(e.contains("at least 4"), "{e}");
    }

    #[test]
    fn windows_follow_the_stride_and_predict_the_next_id() {
        let t = chars(&["ab", "b"], None);
        // stream: ⏎ a b ⏎ b ⏎ = 1 2 3 1 3 1
        let (x, y, n) = windows(&t, &["ab", "b"], 2, 2).unwrap();
        assert_eq!(n, 2);
        assert_eq!(x, vec![1, 2, 3, 1]);
        assert_eq!(y, vec![2, 3, 1, 3]);
        let (x, _, n) = windows(&t, &["ab", "b"], 2, 1).unwrap();
        assert_eq!(n, 4);
        assert_eq!(&x[6..], &[1, 3]);
        assert!(windows(&t, &["ab"], 8, 8).is_err());
    }

    #[test]
    fn documents_are_non_blank_lines_and_bad_utf8_has_a_place() {
        let d = documents("f.txt", b"one\r\n\n  \ntwo\n").unwrap();
        assert_eq!(d, vec!["one", "two"]);
        let e = documents("f.txt", b"ok\nab\xffc\n").unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(3)));
    }
}
