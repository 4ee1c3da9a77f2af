#!/usr/bin/env bash
# Headless test of the Vim support (syntax, ftdetect, ftplugin, indent): exits non-zero on any
# failure. Needs vim.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v vim >/dev/null 2>&1; then
  echo "editors/vim/test/run.sh: vim is not installed (apt-get install vim)" >&2
  exit 2
fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
status=0
NNL_VIM_TEST_OUT="$out" vim -Nu NONE -i NONE -es -S "$here/test.vim" </dev/null || status=$?
if [ ! -s "$out" ]; then
  echo "editors/vim/test/run.sh: vim wrote no result (status $status)" >&2
  exit 1
fi
cat "$out"
exit "$status"
