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

#[test]
fn a_csv_column_tokenized_by_a_tokenizer_file_gives_its_ids() {
    // `tokenize(bpe(file: …), length: N)` reads the file (relative to the `.nnl` file) when the
    // data are loaded: each cell gets Python's ids, padded with `<|endoftext|>`.
    let expected: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/bpe/expected.json").unwrap())
            .unwrap();
    let cases: Vec<(&str, Vec<i32>)> = expected
        .iter()
        .take(20)
        .map(|c| {
            let ids = c["ids"].as_array().unwrap();
            (
                c["text"].as_str().unwrap(),
                ids.iter().map(|v| v.as_i64().unwrap() as i32).collect(),
            )
        })
        .collect();
    let csv: String = std::iter::once("text,label\n".to_string())
        .chain(
            cases
                .iter()
                .enumerate()
                .map(|(i, (t, _))| format!("\"{}\",{}\n", t.replace('"', "\"\""), i % 2)),
        )
        .collect();
    let dir = std::env::temp_dir().join(format!("nnl-tokenizers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("texts.csv"), csv).unwrap();
    std::fs::copy(
        "tests/fixtures/bpe/tokenizer.json",
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let source = "data d {\n  source = csv(\"texts.csv\", header: true)\n  x: i32[16] = col(\"text\") |> tokenize(bpe(file: \"tokenizer.json\"), length: 16)\n  y: i32 = col(1)\n}\n";
    let (checked, program) = nnl::check_program("d.nnl", source, &nnl::fs::DiskLoader);
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let decl = program.modules[program.root]
        .ast
        .items
        .iter()
        .find_map(|i| match i {
            nnl::syntax::ast::Item::Data(d) => Some(d),
            _ => None,
        })
        .unwrap();
    let d = nnl::data::load(&program, decl, &dir, 1).unwrap_or_else(|e| panic!("{e}"));
    let x = d.raw_inputs("train", "x").unwrap();
    let x = d.transform_inputs("x", &x).unwrap().to_f64();
    let end = d.pipeline().tokenizer("x").unwrap().end_of_document();
    for ((text, want), got) in cases.iter().zip(x.chunks(16)) {
        let got: Vec<i32> = got.iter().map(|&v| v as i32).collect();
        let n = want.len().min(16);
        assert_eq!(&got[..n], &want[..n], "{text:?}");
        assert!(got[n..].iter().all(|&i| i == end), "{text:?}: {got:?}");
    }
}
