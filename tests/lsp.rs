//! `nnlc lsp`, driven in-process through an in-memory connection and over real stdio with
//! Content-Length framing: the same session both ways; and a recorded session fed as bytes.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The client side of a session: JSON-RPC messages out and in.
trait Client {
    fn send(&mut self, msg: Value);
    fn recv(&mut self) -> Value;
}

struct Session<'a> {
    client: &'a mut dyn Client,
    next_id: i64,
}

impl Session<'_> {
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.client
            .send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self.client.recv();
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.client
            .send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn diagnostics_for(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let msg = self.client.recv();
            if msg["method"] == "textDocument/publishDiagnostics" && msg["params"]["uri"] == uri {
                return msg["params"]["diagnostics"]
                    .as_array()
                    .expect("a list")
                    .clone();
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "nnl", "version": 1, "text": text}}),
        );
        self.diagnostics_for(uri)
    }

    fn change(&mut self, uri: &str, version: i64, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version},
                   "contentChanges": [{"text": text}]}),
        );
        self.diagnostics_for(uri)
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        self.request(
            method,
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}),
        )
    }
}

const BROKEN: &str = "use std.nn.{Dense}

model Net()(x: f32[B, 4]) -> f32[B, 3] {
  let h = x |> Dense(8)
  h |> Dense(2)
}
";

fn position_of(text: &str, needle: &str) -> (u32, u32) {
    let offset = text.find(needle).expect("needle in text");
    let line = text[..offset].matches('\n').count() as u32;
    let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1);
    (line, col as u32)
}

/// The whole session: what the issue asks the server to show.
fn session(client: &mut dyn Client, dir: &std::path::Path) {
    let mut s = Session { client, next_id: 0 };
    let init = s.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}}),
    );
    let caps = &init["result"]["capabilities"];
    assert_eq!(caps["hoverProvider"], true, "{init}");
    assert_eq!(caps["definitionProvider"], true);
    s.notify("initialized", json!({}));

    let path = dir.join("net.nnl");
    let uri = format!("file://{}", path.display());

    // A shape error: the diagnostic of `nnlc check`, at the tail expression.
    let diags = s.open(&uri, BROKEN);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "E0206");
    assert_eq!(diags[0]["severity"], 1);
    let (line, col) = position_of(BROKEN, "h |> Dense(2)");
    assert_eq!(
        diags[0]["range"],
        json!({"start": {"line": line, "character": col},
               "end": {"line": line, "character": col + "h |> Dense(2)".len() as u32}})
    );
    assert!(
        diags[0]["message"]
            .as_str()
            .expect("message")
            .starts_with("`Net` returns f32[B, 2], but its declared type is f32[B, 3]"),
        "{}",
        diags[0]["message"]
    );
    assert!(diags[0]["relatedInformation"].as_array().is_some());

    // Hover on a value: its shape.
    let hover = s.at("textDocument/hover", &uri, line, col);
    let shown = hover["result"]["contents"]["value"]
        .as_str()
        .expect("hover text");
    assert!(shown.contains("h: f32[B, 8]"), "{shown}");

    // Hover on a layer: its signature and doc comment.
    let (dl, dc) = position_of(BROKEN, "Dense(8)");
    let hover = s.at("textDocument/hover", &uri, dl, dc + 2);
    let shown = hover["result"]["contents"]["value"]
        .as_str()
        .expect("hover text");
    assert!(shown.contains("layer Dense(units: int"), "{shown}");

    // Go to the definition of `Dense`: the stdlib file, at the `layer Dense` line.
    let def = s.at("textDocument/definition", &uri, dl, dc + 1);
    let target = def["result"]["uri"].as_str().expect("a location");
    assert!(target.ends_with("/nnl/stdlib/0.1.0/nn.nnl"), "{target}");
    let nn_path = url_path(target);
    let nn = std::fs::read_to_string(&nn_path).expect("the stdlib file exists on disk");
    assert_eq!(nn, include_str!("../stdlib/nn.nnl"));
    let (layer_line, _) = position_of(&nn, "layer Dense(");
    assert_eq!(def["result"]["range"]["start"]["line"], layer_line);

    // Go to the definition of a local.
    let def = s.at("textDocument/definition", &uri, line, col);
    let (let_line, let_col) = position_of(BROKEN, "h = x");
    assert_eq!(
        def["result"]["range"]["start"],
        json!({"line": let_line, "character": let_col})
    );

    // Document symbols.
    let symbols = s.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let names: Vec<&str> = symbols["result"]
        .as_array()
        .expect("symbols")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Net"]);

    // Completion: `Dense` with its parameters.
    let completion = s.at("textDocument/completion", &uri, line, col);
    let items = completion["result"].as_array().expect("items");
    let dense = items
        .iter()
        .find(|i| i["label"] == "Dense")
        .expect("Dense is offered");
    let detail = dense["detail"].as_str().expect("detail");
    assert!(detail.starts_with("layer Dense(units: int"), "{detail}");
    assert!(items.iter().any(|i| i["label"] == "adam"));
    assert!(items.iter().any(|i| i["label"] == "reshape"));

    // Fixed: the diagnostics are cleared.
    let fixed = BROKEN.replace("Dense(2)", "Dense(3)");
    assert_eq!(s.change(&uri, 2, &fixed), Vec::<Value>::new());

    // A relative `use` of an unsaved buffer.
    let blocks_uri = format!("file://{}", dir.join("blocks.nnl").display());
    let blocks =
        "use std.nn.{Dense}\nlayer Block(w: int)(x: f32[B, D]) -> f32[B, w] { x |> Dense(w) }\n";
    assert_eq!(s.open(&blocks_uri, blocks), Vec::<Value>::new());
    let main_uri = format!("file://{}", dir.join("main.nnl").display());
    let main =
        "use \"./blocks.nnl\".{Block}\nmodel M()(x: f32[B, 2]) -> f32[B, 5] { x |> Block(5) }\n";
    assert_eq!(s.open(&main_uri, main), Vec::<Value>::new());
    let (bl, bc) = position_of(main, "Block(5)");
    let def = s.at("textDocument/definition", &main_uri, bl, bc);
    assert_eq!(def["result"]["uri"], blocks_uri);

    // Garbage and unknown requests do not stop the server.
    let garbage = s.change(&uri, 3, "model (((( \u{1F600} ]]] \"");
    assert!(!garbage.is_empty());
    let hover = s.at("textDocument/hover", &uri, 0, 12);
    assert!(hover.get("error").is_none(), "{hover}");
    let unknown = s.request("nnl/unknown", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    let bad = s.request("textDocument/hover", json!({"nonsense": true}));
    assert_eq!(bad["error"]["code"], -32602);
    assert_eq!(s.change(&uri, 4, &fixed), Vec::<Value>::new());

    let shutdown = s.request("shutdown", Value::Null);
    assert!(shutdown.get("error").is_none(), "{shutdown}");
    s.notify("exit", Value::Null);
}

fn url_path(uri: &str) -> std::path::PathBuf {
    let url = lsp_types::Url::parse(uri).expect("a URI");
    url.to_file_path().expect("a file URI")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-lsp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

struct InProcess(lsp_server::Connection);

impl Client for InProcess {
    fn send(&mut self, msg: Value) {
        let msg: lsp_server::Message = serde_json::from_value(msg).expect("a message");
        self.0.sender.send(msg).expect("server alive");
    }

    fn recv(&mut self) -> Value {
        let msg = self
            .0
            .receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a message from the server");
        serde_json::to_value(msg).expect("json")
    }
}

#[test]
fn in_process() {
    let dir = temp_dir("mem");
    let (server, client) = lsp_server::Connection::memory();
    let cache = dir.join("cache");
    let thread = std::thread::spawn(move || nnl::lsp::serve(server, Some(cache)));
    session(&mut InProcess(client), &dir);
    thread
        .join()
        .expect("the server thread does not panic")
        .expect("the server ends cleanly");
}

/// A message in the Content-Length framing a client writes.
fn frame(msg: Value) -> String {
    let body = msg.to_string();
    format!("Content-Length: {}\r\n\r\n{body}", body.len())
}

/// An output the test can read after the server ends.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A whole session written out beforehand as bytes (as the fuzz target feeds it), including a
/// frame that is not JSON and no `exit`: every request is answered and the server ends with
/// its input.
#[test]
fn over_byte_streams_until_the_input_ends() {
    let dir = temp_dir("streams");
    let uri = format!("file://{}", dir.join("m.nnl").display());
    let input = [
        frame(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"capabilities": {}, "rootUri": format!("file://{}", dir.display())}})),
        frame(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}})),
        "Content-Length: 5\r\n\r\n{oops".to_string(),
        frame(
            json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument":
            {"uri": uri, "languageId": "nnl", "version": 1,
             "text": "fn twice(x: f32[4]) -> f32[4] { x * 2 }\n"}}}),
        ),
        frame(
            json!({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params":
            {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 4}}}),
        ),
    ]
    .concat();
    let output = Shared::default();
    nnl::lsp::run_streams(
        std::io::Cursor::new(input.into_bytes()),
        output.clone(),
        Some(dir.join("cache")),
    )
    .expect("the server ends cleanly when its input ends");
    let written = String::from_utf8(output.0.lock().unwrap().clone()).expect("UTF-8");
    let bodies: Vec<Value> = written
        .split("Content-Length: ")
        .filter_map(|frame| frame.split_once("\r\n\r\n"))
        .map(|(_, body)| serde_json::from_str(body).expect("a JSON body"))
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b["id"] == 1 && b["result"]["capabilities"].is_object())
    );
    assert!(
        bodies.iter().any(|b| b["error"]["code"] == -32700),
        "{written}"
    );
    let hover = bodies
        .iter()
        .find(|b| b["id"] == 2)
        .expect("the hover is answered");
    assert!(
        hover["result"]["contents"].to_string().contains("twice"),
        "{hover}"
    );
}

struct StdioClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client for StdioClient {
    fn send(&mut self, msg: Value) {
        self.stdin.write_all(frame(msg).as_bytes()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn recv(&mut self) -> Value {
        let mut length = None;
        loop {
            let mut header = String::new();
            self.stdout.read_line(&mut header).expect("a header line");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(n) = header.strip_prefix("Content-Length: ") {
                length = Some(n.parse::<usize>().expect("a length"));
            }
        }
        let mut body = vec![0; length.expect("Content-Length")];
        self.stdout.read_exact(&mut body).expect("the body");
        serde_json::from_slice(&body).expect("json")
    }
}

#[test]
fn over_stdio() {
    let dir = temp_dir("stdio");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .arg("lsp")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nnlc lsp starts");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut client = StdioClient {
        child,
        stdin,
        stdout,
    };
    session(&mut client, &dir);
    let status = client.child.wait().expect("nnlc lsp exits");
    assert!(status.success(), "{status}");
}

impl StdioClient {
    fn spawn(dir: &std::path::Path) -> StdioClient {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nnlc"))
            .arg("lsp")
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env_remove("NNL_ALLOW_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("nnlc lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        StdioClient {
            child,
            stdin,
            stdout,
        }
    }

    /// Bytes as they are, framed or not.
    fn send_raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("write");
        self.stdin.flush().expect("flush");
    }
}

/// Messages until `done` accepts one; all of them.
fn recv_until(client: &mut dyn Client, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = client.recv();
        let last = done(&msg);
        seen.push(msg);
        if last {
            return seen;
        }
    }
}

/// What the issue asks the server to survive, over the real binary's stdio: invalid JSON, a
/// message of the wrong form, an oversized frame, 600 nested parentheses, a burst of changes;
/// paths that leave the workspace; and `exit` without `shutdown`.
#[test]
fn survives_hostile_input_over_stdio() {
    let dir = temp_dir("hostile");
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(
        dir.join("outside.nnl"),
        "fn twice(x: f32[4]) -> f32[4] { x * 2 }\n",
    )
    .unwrap();
    let mut client = StdioClient::spawn(&dir);
    let root = format!("file://{}", workspace.display());
    let init = Session {
        client: &mut client,
        next_id: 0,
    }
    .request(
        "initialize",
        json!({"processId": null, "rootUri": root, "capabilities": {}}),
    );
    assert!(init["result"]["capabilities"].is_object(), "{init}");
    client.send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));

    // Invalid JSON: a parse error, and the server goes on.
    client.send_raw(b"Content-Length: 9\r\n\r\n{not json");
    let error = client.recv();
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert_eq!(error["id"], Value::Null);
    // JSON that is not a message.
    client.send(json!({"jsonrpc": "2.0", "id": 41, "params": []}));
    let error = client.recv();
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert_eq!(error["id"], 41);
    // A frame that claims a terabyte: refused without reading it, and the next frame is read.
    client.send_raw(b"Content-Length: 1000000000000\r\n\r\n{\"jsonrpc\": \"2.0\"}");
    let error = client.recv();
    assert_eq!(error["error"]["code"], -32600, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000000000000 bytes"),
        "{error}"
    );

    let mut s = Session {
        client: &mut client,
        next_id: 100,
    };
    // 600 nested parentheses: a diagnostic, and hover still answers.
    let uri = format!("file://{}", workspace.join("deep.nnl").display());
    let deep = format!(
        "fn f(x: f32[4]) -> f32[4] {{\n  {}x{}\n}}\n",
        "(".repeat(600),
        ")".repeat(600)
    );
    let diags = s.open(&uri, &deep);
    assert!(diags.iter().any(|d| d["code"] == "E0006"), "{diags:?}");
    let hover = s.at("textDocument/hover", &uri, 1, 300);
    assert!(hover.get("error").is_none(), "{hover}");

    // Paths that leave the workspace, as `nnlc run` refuses them.
    let paths_uri = format!("file://{}", workspace.join("paths.nnl").display());
    let paths = "use \"../outside.nnl\".{twice}\ndata d {\n  source = csv(\"/etc/hostname\", header: false)\n  x: f32 = col(0)\n}\n";
    let diags = s.open(&paths_uri, paths);
    let refused: Vec<&Value> = diags.iter().filter(|d| d["code"] == "E0108").collect();
    assert_eq!(refused.len(), 2, "{diags:?}");

    // A burst of changes is checked once, for the last version.
    let fixed = "fn f(x: f32[4]) -> f32[4] { x }\n";
    for version in 2..=40 {
        let text = if version == 40 { fixed } else { deep.as_str() };
        s.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version},
                   "contentChanges": [{"text": text}]}),
        );
    }
    let published = recv_until(s.client, |m| {
        m["method"] == "textDocument/publishDiagnostics"
    });
    let last = published.last().unwrap();
    assert_eq!(last["params"]["version"], 40, "{last}");
    assert_eq!(last["params"]["diagnostics"], json!([]));
    s.client.send(
        json!({"jsonrpc": "2.0", "id": 999, "method": "textDocument/documentSymbol",
                         "params": {"textDocument": {"uri": uri}}}),
    );
    let after = recv_until(s.client, |m| m["id"] == 999);
    assert_eq!(after.len(), 1, "published again: {after:?}");
    assert!(after[0].get("error").is_none(), "{after:?}");

    // `exit` before `shutdown` ends the server with 1.
    s.notify("exit", Value::Null);
    let status = client.child.wait().expect("nnlc lsp exits");
    assert_eq!(status.code(), Some(1), "{status}");
}
