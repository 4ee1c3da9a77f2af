//! The stdio transport: `Content-Length` frames read and written here rather than by
//! lsp-server's, so that no input ends the server. A frame whose body is not JSON is answered
//! with a JSON-RPC parse error (−32700), JSON that is not a message with an invalid-request
//! error (−32600); a frame larger than [`MAX_FRAME`], or one with a malformed header, is refused
//! without reading its body into memory, and the reader finds the next frame by its
//! `Content-Length` header. Either way the server goes on.

use crossbeam_channel::{Receiver, Sender};
use lsp_server::{Connection, Message};
use serde_json::{Value, json};
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};

/// The largest frame read: a document of the largest source file nnl reads, escaped in JSON.
pub const MAX_FRAME: u64 = 2 * crate::fs::MAX_SOURCE_BYTES + (1 << 20);

/// The longest header line read.
const MAX_HEADER_LINE: u64 = 1024;

const HEADER: &[u8] = b"Content-Length:";

/// What the reader found in the stream.
#[derive(Debug, PartialEq)]
enum Frame {
    Body(Vec<u8>),
    /// A frame that cannot be read (why); the stream is at the next `Content-Length` header.
    Refused(String),
    End,
}

/// A connection over stdin and stdout, and the thread that writes to stdout (join it after the
/// server ends, so that everything sent is written). The reader thread ends with stdin.
pub fn stdio() -> (Connection, std::thread::JoinHandle<()>) {
    streams(|| std::io::stdin().lock(), std::io::stdout())
}

/// A connection over the byte stream `open_input` opens (on the reader thread) and `output`,
/// and the thread that writes to `output`.
pub fn streams<R: BufRead>(
    open_input: impl FnOnce() -> R + Send + 'static,
    output: impl Write + Send + 'static,
) -> (Connection, std::thread::JoinHandle<()>) {
    let out: Arc<Mutex<Box<dyn Write + Send>>> = Arc::new(Mutex::new(Box::new(output)));
    let (to_server, from_client) = crossbeam_channel::unbounded();
    let (to_client, from_server) = crossbeam_channel::unbounded();
    let reader_out = Arc::clone(&out);
    std::thread::Builder::new()
        .name("lsp-reader".into())
        .spawn(move || read_messages(open_input(), &to_server, &reader_out))
        .expect("a thread starts");
    let writer = std::thread::Builder::new()
        .name("lsp-writer".into())
        .spawn(move || write_messages(&from_server, &out))
        .expect("a thread starts");
    (
        Connection {
            sender: to_client,
            receiver: from_client,
        },
        writer,
    )
}

/// Reads frames until the input ends or the server stops listening, handing messages to the
/// server and answering what is not a message itself.
fn read_messages<W: Write + ?Sized>(
    input: impl BufRead,
    to_server: &Sender<Message>,
    out: &Mutex<Box<W>>,
) {
    let mut frames = FrameReader::new(input);
    loop {
        let (id, code, message) = match frames.next() {
            Frame::End => return,
            Frame::Refused(why) => (Value::Null, -32600, why),
            Frame::Body(body) => match serde_json::from_slice::<Value>(&body) {
                Err(e) => (Value::Null, -32700, format!("the message is not JSON: {e}")),
                Ok(value) => {
                    let id = match value.get("id") {
                        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
                        _ => Value::Null,
                    };
                    let message = is_message(&value).and_then(|()| {
                        serde_json::from_value::<Message>(value).map_err(|e| e.to_string())
                    });
                    match message {
                        Ok(msg) => {
                            if to_server.send(msg).is_err() {
                                return;
                            }
                            continue;
                        }
                        Err(e) => (
                            id,
                            -32600,
                            format!("not a JSON-RPC request, response or notification: {e}"),
                        ),
                    }
                }
            },
        };
        let error =
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        if write_frame(out, &error.to_string()).is_err() {
            return;
        }
    }
}

/// Whether `v` has the form of a JSON-RPC 2.0 message: an object with a `method` (a request or
/// a notification), or with an `id` and a `result` or an `error` (a response).
fn is_message(v: &Value) -> Result<(), String> {
    let Some(fields) = v.as_object() else {
        return Err("a message is a JSON object".into());
    };
    if fields.get("jsonrpc").is_some_and(|j| j != "2.0") {
        return Err("`jsonrpc` must be \"2.0\"".into());
    }
    match fields.get("method") {
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err("`method` must be a string".into()),
        None if fields.contains_key("id")
            && (fields.contains_key("result") || fields.contains_key("error")) =>
        {
            Ok(())
        }
        None => Err("it has no `method`, and no `id` with a `result` or an `error`".into()),
    }
}

fn write_messages<W: Write + ?Sized>(from_server: &Receiver<Message>, out: &Mutex<Box<W>>) {
    for msg in from_server {
        let Ok(body) = serde_json::to_string(&msg) else {
            continue;
        };
        if write_frame(out, &body).is_err() {
            return;
        }
    }
}

fn write_frame<W: Write + ?Sized>(out: &Mutex<Box<W>>, body: &str) -> std::io::Result<()> {
    let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    write!(out, "Content-Length: {}\r\n\r\n{body}", body.len())?;
    out.flush()
}

/// Reads frames from a byte stream.
struct FrameReader<R> {
    input: R,
    /// Resynchronizing consumed a `Content-Length:` that began in an earlier read: the stream
    /// continues with its value.
    header_consumed: bool,
    /// The last frame was refused: skip to the next header before reading.
    skip_pending: bool,
}

impl<R: BufRead> FrameReader<R> {
    fn new(input: R) -> Self {
        FrameReader {
            input,
            header_consumed: false,
            skip_pending: false,
        }
    }

    /// The next frame: its headers (only `Content-Length` matters), then its body.
    fn next(&mut self) -> Frame {
        let mut length: Option<u64> = None;
        let mut problem: Option<String> = None;
        let mut headers = 0;
        if std::mem::take(&mut self.skip_pending) && !self.skip_to_header() {
            return Frame::End;
        }
        loop {
            let mut line = Vec::new();
            if std::mem::take(&mut self.header_consumed) {
                line.extend_from_slice(HEADER);
            }
            match (&mut self.input)
                .take(MAX_HEADER_LINE)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => return Frame::End,
                Ok(_) => {}
            }
            if !line.ends_with(b"\n") {
                return self.resync(format!("a header line longer than {MAX_HEADER_LINE} bytes"));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                if headers == 0 {
                    // Blank lines between frames are harmless.
                    continue;
                }
                break;
            }
            headers += 1;
            match text.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    match value.trim().parse::<u64>() {
                        Ok(n) => length = Some(n),
                        Err(_) => problem = Some(format!("`{}` is not a length", value.trim())),
                    }
                }
                Some(_) => {}
                None => return self.resync("a header line without `:`".into()),
            }
        }
        if let Some(why) = problem {
            return self.resync(why);
        }
        let Some(length) = length else {
            return self.resync("a frame without `Content-Length`".into());
        };
        if length > MAX_FRAME {
            return self.resync(format!(
                "a frame of {length} bytes is larger than the {} MiB the server reads",
                MAX_FRAME >> 20
            ));
        }
        let mut body = Vec::new();
        match (&mut self.input).take(length).read_to_end(&mut body) {
            Ok(n) if n as u64 == length => Frame::Body(body),
            _ => Frame::End,
        }
    }

    /// Refuses the frame being read; the next read first skips to the next header (not now:
    /// the client may wait for the refusal before it sends more).
    fn resync(&mut self, why: String) -> Frame {
        self.skip_pending = true;
        Frame::Refused(why)
    }

    /// Skips input up to the next `Content-Length` header, keeping none of it; false at the end
    /// of the input.
    fn skip_to_header(&mut self) -> bool {
        // How much of the header the input read so far ends with.
        let mut matched = 0;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok([]) | Err(_) => return false,
                Ok(chunk) => chunk,
            };
            let len = chunk.len();
            for (i, &b) in chunk.iter().enumerate() {
                if b.eq_ignore_ascii_case(&HEADER[matched]) {
                    matched += 1;
                } else {
                    matched = usize::from(b.eq_ignore_ascii_case(&HEADER[0]));
                }
                if matched == HEADER.len() {
                    match (i + 1).checked_sub(HEADER.len()) {
                        // The whole header is in this chunk: leave it in the stream.
                        Some(start) => self.input.consume(start),
                        None => {
                            self.input.consume(i + 1);
                            self.header_consumed = true;
                        }
                    }
                    return true;
                }
            }
            self.input.consume(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        // Small reads, so that headers fall across them.
        let mut reader = FrameReader::new(std::io::BufReader::with_capacity(7, input));
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Frame::End => return out,
                f => out.push(f),
            }
        }
    }

    #[test]
    fn frames_are_read_and_bad_ones_refused_without_losing_the_next() {
        let good = b"Content-Length: 2\r\n\r\n{}";
        let mut input = Vec::new();
        input.extend_from_slice(good);
        // Oversized: refused, and its body skipped up to the next header.
        input.extend_from_slice(b"Content-Length: 1000000000000\r\n\r\n{\"junk\": 1}");
        input.extend_from_slice(good);
        // No length, a bad length, garbage.
        input.extend_from_slice(b"X-Other: 1\r\n\r\n[]");
        input.extend_from_slice(good);
        input.extend_from_slice(b"Content-Length: many\r\n\r\n[]");
        input.extend_from_slice(b"content-length: 3\r\n\r\nnot");
        let got = frames(&input);
        assert_eq!(got[0], Frame::Body(b"{}".to_vec()));
        assert!(
            matches!(&got[1], Frame::Refused(w) if w.contains("1000000000000 bytes")),
            "{got:?}"
        );
        assert_eq!(got[2], Frame::Body(b"{}".to_vec()));
        assert!(
            matches!(&got[3], Frame::Refused(w) if w.contains("without `Content-Length`")),
            "{got:?}"
        );
        assert_eq!(got[4], Frame::Body(b"{}".to_vec()));
        assert!(
            matches!(&got[5], Frame::Refused(w) if w.contains("`many` is not a length")),
            "{got:?}"
        );
        assert_eq!(got[6], Frame::Body(b"not".to_vec()));
        assert_eq!(got.len(), 7);
    }

    #[test]
    fn what_is_not_a_message_is_answered_and_the_rest_passed_on() {
        let mut input = Vec::new();
        for body in [
            "{not json",
            "[1, 2]",
            r#"{"jsonrpc": "2.0", "id": 7, "params": 1}"#,
            r#"{"jsonrpc": "2.0", "method": "initialized", "params": {}}"#,
        ] {
            input.extend_from_slice(
                format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
            );
        }
        let (to_server, from_client) = crossbeam_channel::unbounded();
        let out: Mutex<Box<Vec<u8>>> = Mutex::new(Box::default());
        read_messages(&input[..], &to_server, &out);
        let written = String::from_utf8(*out.into_inner().unwrap()).unwrap();
        let answers: Vec<Value> = written
            .split("Content-Length: ")
            .filter(|s| !s.is_empty())
            .map(|s| serde_json::from_str(s.split_once("\r\n\r\n").unwrap().1).unwrap())
            .collect();
        assert_eq!(answers.len(), 3, "{written}");
        assert_eq!(answers[0]["error"]["code"], -32700);
        assert_eq!(answers[0]["id"], Value::Null);
        assert_eq!(answers[1]["error"]["code"], -32600);
        assert_eq!(answers[2]["error"]["code"], -32600);
        assert_eq!(answers[2]["id"], 7);
        let passed: Vec<Message> = from_client.try_iter().collect();
        assert!(matches!(&passed[..], [Message::Notification(n)] if n.method == "initialized"));
    }
}
