#!/usr/bin/env bash
# Tests the editor support: the VS Code TextMate grammar (vscode-tmgrammar-test on
# editors/vscode/tests/*.test.nnl), the VS Code extension's start of the language server
# (node --test), and the Vim files (editors/vim/test/run.sh, headless vim).
#
#   editors/test.sh             installs the npm packages (npm ci, from package-lock.json), then tests
#   editors/test.sh --offline   tests only; fails if the packages are not installed
#
# The tree-sitter grammar is tested by `cargo test --test tree_sitter`; `cargo test --test editors`
# runs this script with --offline.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
offline=0
if [ "${1:-}" = "--offline" ]; then
  offline=1
fi

cd "$here/vscode"
if [ "$offline" = 0 ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -x node_modules/.bin/vscode-tmgrammar-test ]; then
  echo "editors/test.sh: vscode-tmgrammar-test is not installed: run 'npm ci' in editors/vscode" >&2
  exit 2
fi
node_modules/.bin/vscode-tmgrammar-test -g syntaxes/nnl.tmLanguage.json 'tests/*.test.nnl'
# the extension starts `nnlc lsp` as configured (vscode and the language client faked)
node --test tests/extension.test.js

"$here/vim/test/run.sh"
