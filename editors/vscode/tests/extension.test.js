// node --test tests/extension.test.js: extension.js starts `nnlc lsp` (or the configured command)
// over stdio for nnl documents, with `vscode` and the language client replaced by fakes.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const Module = require('node:module');
const path = require('node:path');

function load(settings) {
  const started = [];
  const stopped = [];
  const commands = {};
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions });
    }
    async start() {
      started.push(this);
    }
    async stop() {
      stopped.push(this);
    }
  }
  const vscode = {
    workspace: {
      getConfiguration: (section) => ({
        get: (key, fallback) => {
          const v = settings[`${section}.${key}`];
          return v === undefined ? fallback : v;
        },
      }),
      createFileSystemWatcher: (glob) => ({ glob }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    commands: {
      registerCommand: (name, fn) => {
        commands[name] = fn;
        return { dispose() {} };
      },
    },
    window: { showWarningMessage: () => {} },
  };
  const fakes = {
    vscode,
    'vscode-languageclient/node': { LanguageClient, TransportKind: { stdio: 0 } },
  };
  const original = Module._load;
  Module._load = function (request, ...rest) {
    return request in fakes ? fakes[request] : original.call(this, request, ...rest);
  };
  const file = path.join(__dirname, '..', 'extension.js');
  delete require.cache[file];
  try {
    return { extension: require(file), started, stopped, commands };
  } finally {
    Module._load = original;
  }
}

test('starts nnlc lsp over stdio for nnl files by default', async () => {
  const { extension, started } = load({});
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(started.length, 1);
  const c = started[0];
  assert.deepStrictEqual(c.serverOptions, { command: 'nnlc', args: ['lsp'], transport: 0 });
  assert.deepStrictEqual(
    c.clientOptions.documentSelector.map((d) => d.language),
    ['nnl', 'nnl'],
  );
  assert.strictEqual(c.clientOptions.synchronize.fileEvents.glob, '**/*.nnl');
});

test('uses nnl.server.path and nnl.server.args, restarts on command', async () => {
  const { extension, started, stopped, commands } = load({
    'nnl.server.path': '/opt/nnl/bin/nnlc',
    'nnl.server.args': ['lsp', '--log'],
  });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(started[0].serverOptions.command, '/opt/nnl/bin/nnlc');
  assert.deepStrictEqual(started[0].serverOptions.args, ['lsp', '--log']);
  await commands['nnl.restartServer']();
  assert.strictEqual(stopped.length, 1);
  assert.strictEqual(started.length, 2);
  await extension.deactivate();
  assert.strictEqual(stopped.length, 2);
});

test('does not start when nnl.server.enabled is false', async () => {
  const { extension, started } = load({ 'nnl.server.enabled': false });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(started.length, 0);
});
