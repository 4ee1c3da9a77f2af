//! `nnlc lsp`: a language server over stdio. Full-text sync; every open document is checked on
//! open and on each change, with the same diagnostics as `nnlc check`; hover shows the type of
//! the expression under the cursor or the signature of the definition named there; go to
//! definition reaches the standard library through copies of its files written to the user's
//! cache directory (editors open real files most easily); document symbols; completion of
//! definition and builtin names with their signatures.
//!
//! `use "./file.nnl"` resolves against the document's directory; open documents are read from
//! the editor's buffers rather than the disk.

mod analysis;
mod text;

use analysis::{Analysis, Locate};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse, Hover,
    HoverContents, HoverProviderCapability, MarkupContent, MarkupKind, OneOf,
    PublishDiagnosticsParams, ServerCapabilities, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, Url,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::CheckOutput;
use crate::source::FileId;

/// Serves the editor on stdin and stdout until it says `exit`.
pub fn run_stdio() -> Result<(), String> {
    let (connection, io_threads) = Connection::stdio();
    serve(connection, None)?;
    io_threads.join().map_err(|e| e.to_string())
}

pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions::default()),
        ..Default::default()
    }
}

/// Runs the protocol on a connection: the initialize handshake, then requests and
/// notifications until shutdown and exit. The standard library's files are written under
/// `cache_dir` (default: `$XDG_CACHE_HOME`, else `~/.cache`).
pub fn serve(connection: Connection, cache_dir: Option<PathBuf>) -> Result<(), String> {
    let caps = serde_json::to_value(capabilities()).map_err(|e| e.to_string())?;
    connection.initialize(caps).map_err(|e| e.to_string())?;
    let mut server = Server {
        docs: HashMap::new(),
        stdlib: StdlibFiles {
            cache: cache_dir,
            dir: std::sync::OnceLock::new(),
        },
    };
    for msg in &connection.receiver {
        match msg {
            Message::Request(req) => {
                if connection
                    .handle_shutdown(&req)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(());
                }
                let response = server.request(req);
                send(&connection, Message::Response(response))?;
            }
            Message::Notification(n) => {
                for out in server.notification(n) {
                    send(&connection, Message::Notification(out))?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn send(connection: &Connection, msg: Message) -> Result<(), String> {
    connection.sender.send(msg).map_err(|e| e.to_string())
}

struct Server {
    docs: HashMap<Url, String>,
    stdlib: StdlibFiles,
}

type Failure = (ErrorCode, String);

fn params<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Failure> {
    serde_json::from_value(v).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
}

fn json(v: impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

impl Server {
    fn request(&mut self, req: Request) -> Response {
        let id: RequestId = req.id.clone();
        // The stages never panic by design; this keeps the editor's session alive if one does.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.answer(&req.method, req.params)
        }));
        match outcome {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code as i32, message),
            Err(_) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                "internal error".to_string(),
            ),
        }
    }

    fn answer(&mut self, method: &str, p: Value) -> Result<Value, Failure> {
        match method {
            "textDocument/hover" => {
                let p: lsp_types::HoverParams = params(p)?;
                let hover = self
                    .at(&p.text_document_position_params)
                    .and_then(|(a, offset)| a.hover(offset))
                    .map(|(value, range)| Hover {
                        contents: HoverContents::Markup(MarkupContent {
                            kind: MarkupKind::Markdown,
                            value,
                        }),
                        range: Some(range),
                    });
                json(hover)
            }
            "textDocument/definition" => {
                let p: lsp_types::GotoDefinitionParams = params(p)?;
                let location = self
                    .at(&p.text_document_position_params)
                    .and_then(|(a, offset)| a.definition(&self.stdlib, offset));
                json(location.map(GotoDefinitionResponse::Scalar))
            }
            "textDocument/documentSymbol" => {
                let p: lsp_types::DocumentSymbolParams = params(p)?;
                let symbols = self
                    .analyze(&p.text_document.uri)
                    .map(|a| DocumentSymbolResponse::Nested(a.symbols()));
                json(symbols)
            }
            "textDocument/completion" => {
                let p: lsp_types::CompletionParams = params(p)?;
                let items = self
                    .analyze(&p.text_document_position.text_document.uri)
                    .map(|a| CompletionResponse::Array(a.completions()));
                json(items)
            }
            _ => Err((
                ErrorCode::MethodNotFound,
                format!("`{method}` is not supported"),
            )),
        }
    }

    fn notification(&mut self, n: Notification) -> Vec<Notification> {
        let uri = match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = params::<lsp_types::DidOpenTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                self.docs
                    .insert(p.text_document.uri.clone(), p.text_document.text);
                p.text_document.uri
            }
            "textDocument/didChange" => {
                let Ok(p) = params::<lsp_types::DidChangeTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                // Full sync: the last change holds the whole text.
                let Some(change) = p.content_changes.into_iter().last() else {
                    return Vec::new();
                };
                self.docs.insert(p.text_document.uri.clone(), change.text);
                p.text_document.uri
            }
            "textDocument/didClose" => {
                let Ok(p) = params::<lsp_types::DidCloseTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                self.docs.remove(&p.text_document.uri);
                return vec![publish(p.text_document.uri, Vec::new())];
            }
            _ => return Vec::new(),
        };
        let diagnostics = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.analyze(&uri)
                .map(|a| a.diagnostics(&self.stdlib))
                .unwrap_or_default()
        }))
        .unwrap_or_default();
        vec![publish(uri, diagnostics)]
    }

    fn analyze(&self, uri: &Url) -> Option<Analysis> {
        let text = self.docs.get(uri)?;
        let loader = Buffers { docs: &self.docs };
        Some(Analysis::new(&file_name(uri), text, &loader))
    }

    fn at(&self, p: &TextDocumentPositionParams) -> Option<(Analysis, usize)> {
        let a = self.analyze(&p.text_document.uri)?;
        let text = self.docs.get(&p.text_document.uri)?;
        Some((a, text::offset(text, p.position)))
    }
}

fn publish(uri: Url, diagnostics: Vec<lsp_types::Diagnostic>) -> Notification {
    Notification::new(
        "textDocument/publishDiagnostics".to_string(),
        PublishDiagnosticsParams {
            uri,
            diagnostics,
            version: None,
        },
    )
}

/// The name a document has in the source map: its path for `file:` URIs (so that relative
/// `use`s resolve against its directory), the URI itself otherwise.
fn file_name(uri: &Url) -> String {
    match uri.to_file_path() {
        Ok(p) if uri.scheme() == "file" => p.to_string_lossy().into_owned(),
        _ => uri.to_string(),
    }
}

/// Serves `use`d files from the editor's open buffers, then from the disk.
struct Buffers<'a> {
    docs: &'a HashMap<Url, String>,
}

impl crate::resolve::Loader for Buffers<'_> {
    fn load(&self, path: &str) -> Result<String, String> {
        let open = self
            .docs
            .iter()
            .find(|(uri, _)| uri.to_file_path().is_ok_and(|p| p == Path::new(path)));
        match open {
            Some((_, text)) => Ok(text.clone()),
            None => std::fs::read_to_string(path).map_err(|e| e.to_string()),
        }
    }
}

/// The standard library's files, written once to `$XDG_CACHE_HOME/nnl/stdlib/<version>/` (or
/// `~/.cache/…`) so that "go to definition" can open them.
struct StdlibFiles {
    cache: Option<PathBuf>,
    dir: std::sync::OnceLock<Option<PathBuf>>,
}

impl StdlibFiles {
    fn dir(&self) -> Option<&Path> {
        self.dir
            .get_or_init(|| {
                let cache = self
                    .cache
                    .clone()
                    .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from))
                    .filter(|p| p.is_absolute())
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(std::env::temp_dir);
                let dir = cache
                    .join("nnl")
                    .join("stdlib")
                    .join(env!("CARGO_PKG_VERSION"));
                std::fs::create_dir_all(&dir).ok()?;
                for (_, name, text) in crate::resolve::STDLIB {
                    let path = dir.join(name.trim_start_matches("std/"));
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(*text) {
                        crate::store::write_atomically(&path, text.as_bytes()).ok()?;
                    }
                }
                Some(dir)
            })
            .as_deref()
    }
}

impl Locate for StdlibFiles {
    fn uri(&self, out: &CheckOutput, file: FileId) -> Option<Url> {
        let f = out.sources.file(file);
        if f.is_std {
            let path = self.dir()?.join(f.name.trim_start_matches("std/"));
            return Url::from_file_path(path).ok();
        }
        Url::from_file_path(&f.name)
            .ok()
            .or_else(|| Url::parse(&f.name).ok())
    }
}
