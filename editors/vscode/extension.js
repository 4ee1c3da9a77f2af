// The nnl extension: the grammar and language configuration are declared in package.json; this
// file starts the language server, `nnlc lsp` (settings nnl.server.path and nnl.server.args),
// over stdio for every .nnl file.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration('nnl');
  const command = config.get('server.path', 'nnlc');
  const args = config.get('server.args', ['lsp']);
  return { command, args, transport: TransportKind.stdio };
}

async function start(context) {
  if (!vscode.workspace.getConfiguration('nnl').get('server.enabled', true)) {
    return;
  }
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'nnl' },
      { scheme: 'untitled', language: 'nnl' },
    ],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.nnl'),
    },
  };
  client = new LanguageClient('nnl', 'nnl', serverOptions(), clientOptions);
  try {
    await client.start();
  } catch (err) {
    const path = serverOptions().command;
    vscode.window.showWarningMessage(
      `nnl: could not start the language server (${path} lsp): ${err.message}. ` +
        'Install nnlc or set nnl.server.path; highlighting works without it.',
    );
    client = undefined;
  }
  context.subscriptions.push({ dispose: () => stop() });
}

async function stop() {
  if (client) {
    const c = client;
    client = undefined;
    await c.stop();
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('nnl.restartServer', async () => {
      await stop();
      await start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('nnl.server')) {
        await stop();
        await start(context);
      }
    }),
  );
  await start(context);
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
