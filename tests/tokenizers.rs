//! Subword tokenizers through the Hugging Face `tokenizers` crate: a BPE trained by nnl
//! round-trips every validation word, a `tokenizer.json` written by Python's `tokenizers`
//! (tests/fixtures/bpe, made offline by tools/bpe_fixture.py) gives Python's ids, and both
//! survive the checkpoint's JSON.

use nnl::data::text::{Tokenizer, TokenizerSpec};
use std::io::Read;

fn words() -> Vec<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open("examples/data/words/american-english.txt.gz").unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_bpe_trained_on_the_training_words_round_trips_every_validation_word() {
    let all = words();
    // Every tenth word is held out.
    let train: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, w)| w.as_str())
        .collect();
    let val: Vec<&String> = all.iter().step_by(10).collect();
    let tok = TokenizerSpec::Bpe { vocab: 512 }.fit(&train).unwrap();
    assert_eq!(tok.vocab_size(), 512);
    let mut ids = 0;
    for w in &val {
        let e = tok.encode(w);
        assert!(e.iter().all(|&i| (0..512).contains(&i)), "{w}: {e:?}");
        assert_eq!(tok.decode(&e), **w, "{e:?}");
        ids += e.len();
    }
    // Subwords: fewer ids than characters.
    let chars: usize = val.iter().map(|w| w.chars().count()).sum();
    assert!(ids * 10 < chars * 7, "{ids} ids for {chars} characters");
    // Documents are separated by the end-of-text id, which decodes to a line break.
    let doc = "first line\nsecond, Ångström";
    let e = tok.encode(doc);
    assert_eq!(e.iter().filter(|&&i| i == tok.end_of_document()).count(), 1);
    assert_eq!(tok.decode(&e), doc);
    assert_eq!(Tokenizer::from_json(&tok.to_json()).unwrap(), tok);

    let e = TokenizerSpec::Bpe { vocab: 100 }.fit(&train).unwrap_err();
    assert!(e.contains("at least 257"), "{e}");
}

#[test]
fn a_python_tokenizer_json_gives_pythons_ids() {
    let json = std::fs::read_to_string("tests/fixtures/bpe/tokenizer.json").unwrap();
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/bpe/expected.json").unwrap())
            .unwrap();
    let spec = |vocab| TokenizerSpec::File {
        path: "tokenizer.json".into(),
        vocab,
        json: Some(json.clone()),
    };
    let tok = spec(None).fit(&[]).unwrap();
    assert_eq!(tok.vocab_size(), 400);
    assert!(expected.len() > 100);
    for case in &expected {
        let text = case["text"].as_str().unwrap();
        let want: Vec<i32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() as i32)
            .collect();
        assert_eq!(tok.encode(text), want, "{text:?}");
        assert_eq!(tok.decode(&want), text);
    }
    let back = Tokenizer::from_json(&tok.to_json()).unwrap();
    assert_eq!(back.encode("Ångström"), tok.encode("Ångström"));
    assert_eq!(spec(Some(512)).fit(&[]).unwrap().vocab_size(), 512);
    let e = spec(Some(300)).fit(&[]).unwrap_err();
    assert!(e.contains("400 ids"), "{e}");
    let e = TokenizerSpec::File {
        path: "x.json".into(),
        vocab: None,
        json: Some("{}".into()),
    }
    .fit(&[])
    .unwrap_err();
    assert!(e.contains("not a tokenizer file"), "{e}");
}
