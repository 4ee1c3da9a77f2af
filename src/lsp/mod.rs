//! `nnlc lsp`: a language server over stdio. Full-text sync; every open document is checked on
//! open and on each change, with the same diagnostics as `nnlc check`; hover shows the type of
//! the expression under the cursor or the signature of the definition named there; go to
//! definition reaches the standard library through copies of its files written to the user's
//! cache directory (editors open real files most easily); document symbols; completion of
//! definition and builtin names with their signatures.
//!
//! `use "./file.nnl"` resolves against the document's directory; open documents are read from
//! the editor's buffers rather than the disk. Paths written in a document (`use`, data files,
//! `checkpoint`) must stay inside the workspace (its folders, else the document's directory),
//! as `nnlc run` requires of a project (see [`crate::fs`]).
//!
//! No input ends the server: the transport answers frames that are not messages
//! ([`transport`]); a burst of changes is checked once, for its last version (diagnostics are
//! published when no message has come for [`DEBOUNCE`]); a document's analysis is kept until
//! a document changes, so requests on a large one do not check it again. `exit` before
//! `shutdown` ends the server with exit code 1, as the protocol says.

mod analysis;
mod text;
mod transport;

use analysis::{Analysis, Locate};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::{
    CompletionOptions, CompletionResponse, DocumentSymbolResponse, GotoDefinitionResponse, Hover,
    HoverContents, HoverProviderCapability, MarkupContent, MarkupKind, OneOf,
    PublishDiagnosticsParams, ServerCapabilities, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, Url,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::CheckOutput;
use crate::source::FileId;

/// How long the server waits after a change for another before it checks the document.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Serves the editor on stdin and stdout until it says `exit`.
pub fn run_stdio() -> Result<(), String> {
    finish(transport::stdio(), None)
}

/// Serves a client speaking over any byte streams (a fuzzer's, a test's) until it says `exit`
/// or its input ends; the standard library's files are written under `cache_dir`.
pub fn run_streams(
    input: impl BufRead + Send + 'static,
    output: impl Write + Send + 'static,
    cache_dir: Option<PathBuf>,
) -> Result<(), String> {
    finish(transport::streams(move || input, output), cache_dir)
}

fn finish(
    (connection, writer): (Connection, std::thread::JoinHandle<()>),
    cache_dir: Option<PathBuf>,
) -> Result<(), String> {
    let served = serve(connection, cache_dir);
    // Everything the server sent is written before the server returns.
    let _ = writer.join();
    served
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
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let workspace = workspace_roots(&params);
    let result = serde_json::json!({
        "capabilities": caps,
        "serverInfo": {"name": "nnlc", "version": env!("CARGO_PKG_VERSION")},
    });
    connection
        .initialize_finish(id, result)
        .map_err(|e| e.to_string())?;
    let mut server = Server {
        docs: HashMap::new(),
        analyses: RefCell::new(HashMap::new()),
        workspace,
        stdlib: StdlibFiles {
            cache: cache_dir,
            dir: std::sync::OnceLock::new(),
        },
    };
    // Documents changed since their diagnostics were last published.
    let mut unchecked: Vec<Url> = Vec::new();
    loop {
        let msg = if unchecked.is_empty() {
            match connection.receiver.recv() {
                Ok(msg) => msg,
                Err(_) => return Ok(()),
            }
        } else {
            match connection.receiver.recv_timeout(DEBOUNCE) {
                Ok(msg) => msg,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    for uri in std::mem::take(&mut unchecked) {
                        send(&connection, Message::Notification(server.publish(uri)))?;
                    }
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
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
            Message::Notification(n) if n.method == "exit" => {
                return Err("the client sent `exit` before `shutdown`".into());
            }
            Message::Notification(n) => match server.notification(n) {
                Changed::Document(uri) => {
                    if !unchecked.contains(&uri) {
                        unchecked.push(uri);
                    }
                }
                Changed::Closed(uri) => {
                    unchecked.retain(|u| *u != uri);
                    send(
                        &connection,
                        Message::Notification(publish(uri, None, Vec::new())),
                    )?;
                }
                Changed::Nothing => {}
            },
            Message::Response(_) => {}
        }
    }
}

/// The folders of the workspace the editor opened, from `initialize`'s parameters.
fn workspace_roots(params: &Value) -> Vec<PathBuf> {
    let folders = params["workspaceFolders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["uri"].as_str());
    let root = params["rootUri"].as_str();
    let mut roots: Vec<PathBuf> = folders
        .chain(root)
        .filter_map(|u| Url::parse(u).ok()?.to_file_path().ok())
        .collect();
    if roots.is_empty()
        && let Some(path) = params["rootPath"].as_str()
    {
        roots.push(PathBuf::from(path));
    }
    roots
}

/// What a notification changed.
enum Changed {
    Document(Url),
    Closed(Url),
    Nothing,
}

fn send(connection: &Connection, msg: Message) -> Result<(), String> {
    connection.sender.send(msg).map_err(|e| e.to_string())
}

struct Document {
    text: String,
    version: Option<i32>,
}

struct Server {
    docs: HashMap<Url, Document>,
    /// Each document's analysis, until any document changes (a `use`d buffer changes what the
    /// documents that use it mean).
    analyses: RefCell<HashMap<Url, Rc<Analysis>>>,
    /// Where paths written in documents may lead; empty: each document's own directory.
    workspace: Vec<PathBuf>,
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

    fn notification(&mut self, n: Notification) -> Changed {
        match n.method.as_str() {
            "textDocument/didOpen" => {
                let Ok(p) = params::<lsp_types::DidOpenTextDocumentParams>(n.params) else {
                    return Changed::Nothing;
                };
                let doc = Document {
                    text: p.text_document.text,
                    version: Some(p.text_document.version),
                };
                self.docs.insert(p.text_document.uri.clone(), doc);
                self.analyses.borrow_mut().clear();
                Changed::Document(p.text_document.uri)
            }
            "textDocument/didChange" => {
                let Ok(p) = params::<lsp_types::DidChangeTextDocumentParams>(n.params) else {
                    return Changed::Nothing;
                };
                // Full sync: the last change holds the whole text.
                let Some(change) = p.content_changes.into_iter().last() else {
                    return Changed::Nothing;
                };
                let doc = Document {
                    text: change.text,
                    version: Some(p.text_document.version),
                };
                self.docs.insert(p.text_document.uri.clone(), doc);
                self.analyses.borrow_mut().clear();
                Changed::Document(p.text_document.uri)
            }
            "textDocument/didClose" => {
                let Ok(p) = params::<lsp_types::DidCloseTextDocumentParams>(n.params) else {
                    return Changed::Nothing;
                };
                self.docs.remove(&p.text_document.uri);
                self.analyses.borrow_mut().clear();
                Changed::Closed(p.text_document.uri)
            }
            _ => Changed::Nothing,
        }
    }

    /// The diagnostics of a document's current version.
    fn publish(&self, uri: Url) -> Notification {
        let version = self.docs.get(&uri).and_then(|d| d.version);
        let size = self.docs.get(&uri).map_or(0, |d| d.text.len());
        if let Err(message) = crate::fs::check_fits_in_memory(size) {
            let whole_file = lsp_types::Diagnostic {
                severity: Some(lsp_types::DiagnosticSeverity::ERROR),
                source: Some("nnlc".into()),
                message,
                ..Default::default()
            };
            return publish(uri, version, vec![whole_file]);
        }
        let diagnostics = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.analyze(&uri)
                .map(|a| a.diagnostics(&self.stdlib))
                .unwrap_or_default()
        }))
        .unwrap_or_default();
        publish(uri, version, diagnostics)
    }

    /// The analysis of an open document, computed once per version of the documents.
    fn analyze(&self, uri: &Url) -> Option<Rc<Analysis>> {
        if let Some(a) = self.analyses.borrow().get(uri) {
            return Some(Rc::clone(a));
        }
        let text = &self.docs.get(uri)?.text;
        // Too large to check in the memory there is (its diagnostic says so).
        crate::fs::check_fits_in_memory(text.len()).ok()?;
        let name = file_name(uri);
        let project = self.project(uri);
        let loader = Buffers {
            docs: &self.docs,
            project: &project,
        };
        let mut analysis = Analysis::new(&name, text, &loader);
        if uri.scheme() == "file" {
            analysis.out.diagnostics.extend(crate::fs::check_paths(
                &analysis.program,
                Path::new(&name),
                &project,
            ));
            crate::diag::sort_and_dedup(&mut analysis.out.diagnostics);
        }
        let analysis = Rc::new(analysis);
        self.analyses
            .borrow_mut()
            .insert(uri.clone(), Rc::clone(&analysis));
        Some(analysis)
    }

    /// Where a document's paths may lead: the workspace, else the document's directory.
    fn project(&self, uri: &Url) -> crate::fs::Project {
        if !self.workspace.is_empty() {
            return crate::fs::Project::new(self.workspace.iter().cloned(), &[]);
        }
        let dir = uri
            .to_file_path()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        crate::fs::Project::new(dir, &[])
    }

    fn at(&self, p: &TextDocumentPositionParams) -> Option<(Rc<Analysis>, usize)> {
        let a = self.analyze(&p.text_document.uri)?;
        let text = &self.docs.get(&p.text_document.uri)?.text;
        Some((a, text::offset(text, p.position)))
    }
}

fn publish(
    uri: Url,
    version: Option<i32>,
    diagnostics: Vec<lsp_types::Diagnostic>,
) -> Notification {
    Notification::new(
        "textDocument/publishDiagnostics".to_string(),
        PublishDiagnosticsParams {
            uri,
            diagnostics,
            version,
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

/// Serves `use`d files from the editor's open buffers, then from the disk, inside the project.
struct Buffers<'a> {
    docs: &'a HashMap<Url, Document>,
    project: &'a crate::fs::Project,
}

impl crate::resolve::Loader for Buffers<'_> {
    fn load(&self, path: &str) -> Result<String, String> {
        let open = self
            .docs
            .iter()
            .find(|(uri, _)| uri.to_file_path().is_ok_and(|p| p == Path::new(path)));
        match open {
            Some((_, doc)) => Ok(doc.text.clone()),
            None => crate::fs::read_source(Path::new(path)),
        }
    }

    fn permit(&self, path: &str) -> Result<(), crate::resolve::Refusal> {
        self.project.check(Path::new(path))?;
        crate::fs::nnl_source(Path::new(path))
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
