" Headless test of syntax/nnl.vim, ftdetect, ftplugin and indent: run by run.sh as
"   vim -Nu NONE -es -S test.vim
" Each check finds a line of sample.nnl by a piece of its text, a token on it, and asserts the
" syntax group under every character of that token.

let s:here = expand('<sfile>:p:h')
let s:failures = []
let s:checks = 0

execute 'set runtimepath^=' . fnameescape(fnamemodify(s:here, ':h'))
filetype plugin indent on
syntax on

execute 'edit ' . fnameescape(s:here . '/sample.nnl')

" Check(line text, token, group[, occurrence of the token on the line])
function! s:Check(linetext, token, group, ...) abort
  let s:checks += 1
  let nth = a:0 ? a:1 : 1
  let lnum = search('\V' . escape(a:linetext, '\'), 'cnw')
  if lnum == 0
    call add(s:failures, printf('line not found: %s', a:linetext))
    return
  endif
  let line = getline(lnum)
  let col = -1
  for i in range(nth)
    let col = stridx(line, a:token, col + 1)
    if col < 0
      call add(s:failures, printf('%d: token %s (#%d) not found in: %s', lnum, a:token, nth, line))
      return
    endif
  endfor
  for c in range(col + 1, col + len(a:token))
    let name = synIDattr(synID(lnum, c, 1), 'name')
    if name !=# a:group
      call add(s:failures, printf('%d:%d %s in "%s": expected %s, got %s', lnum, c, a:token,
            \ line, a:group, name ==# '' ? '(none)' : name))
      return
    endif
  endfor
endfunction

function! s:Equal(what, actual, expected) abort
  let s:checks += 1
  if a:actual !=# a:expected
    call add(s:failures, printf('%s: expected %s, got %s', a:what, string(a:expected), string(a:actual)))
  endif
endfunction

" ---------------------------------------------------------------- filetype and ftplugin
call s:Equal('filetype', &filetype, 'nnl')
call s:Equal('syntax', get(b:, 'current_syntax', ''), 'nnl')
call s:Equal('commentstring', &commentstring, '# %s')
call s:Equal('comments', &comments, ':#')
call s:Equal('shiftwidth', &shiftwidth, 2)
call s:Equal('expandtab', &expandtab, 1)
call s:Equal('indentexpr', &indentexpr, 'GetNnlIndent(v:lnum)')

" ---------------------------------------------------------------- syntax groups
" comments
call s:Check('# a comment', '# a comment: runs to the end of the line', 'nnlComment')
call s:Check('train = idx(', '# a source', 'nnlComment')
" use
call s:Check('use std.nn.{Dense', 'use', 'nnlImport')
" data block
call s:Check('data mnist {', 'data', 'nnlDefine')
call s:Check('train = idx(', 'train', 'nnlAssigned')
call s:Check('train = idx(', 'idx', 'nnlFunctionCall')
call s:Check('train = idx(', '"data/train.gz"', 'nnlString')
call s:Check('x: f32[784]', 'x', 'nnlParameter')
call s:Check('x: f32[784]', 'f32', 'nnlDtype')
call s:Check('x: f32[784]', '[', 'nnlShapeBracket')
call s:Check('x: f32[784]', '784', 'nnlInteger')
call s:Check('x: f32[784]', '|>', 'nnlPipe')
call s:Check('x: f32[784]', 'flatten', 'nnlPipeTarget')
call s:Check('x: f32[784]', 'scale', 'nnlFunctionCall')
call s:Check('x: f32[784]', '/', 'nnlOperator')
call s:Check('y: i32 = label', 'i32', 'nnlDtype')
call s:Check('split val', 'split', 'nnlSplit')
call s:Check('split val', 'val', 'nnlSplitName')
call s:Check('split val', '0.1', 'nnlFloat')
call s:Check('split val', 'of', 'nnlTrainKeyword')
call s:Check('split val', 'seed', 'nnlNamedArg')
call s:Check('seed 7', 'seed', 'nnlSetting')
" definitions, types and shapes
call s:Check('layer Dense(', 'layer', 'nnlDefine')
call s:Check('layer Dense(', 'Dense', 'nnlLayerName')
call s:Check('layer Dense(', 'units', 'nnlParameter')
call s:Check('layer Dense(', 'int', 'nnlType')
call s:Check('layer Dense(', 'init', 'nnlType', 2)
call s:Check('layer Dense(', 'bool', 'nnlDtype')
call s:Check('layer Dense(', 'true', 'nnlBoolean')
call s:Check('layer Dense(', '..', 'nnlPack')
call s:Check('layer Dense(', 'S', 'nnlShapeDim')
call s:Check('layer Dense(', 'N', 'nnlShapeDim')
call s:Check('layer Dense(', '->', 'nnlArrow')
call s:Check('layer Dense(', 'units', 'nnlShapeDim', 2)
call s:Check('where units > 0', 'where', 'nnlWhere')
call s:Check('where units > 0', '>', 'nnlOperator')
call s:Check('where units > 0', '{units}', 'nnlPlaceholder')
call s:Check('where units > 0', '\"', 'nnlEscape')
call s:Check('param w: [N, units]', 'param', 'nnlStorage')
call s:Check('param w: [N, units]', 'w', 'nnlDeclName')
call s:Check('param w: [N, units]', 'N', 'nnlShapeDim')
call s:Check('param w: [N, units]', 'units', 'nnlShapeDim')
call s:Check('state count', 'state', 'nnlStorage')
call s:Check('state count', 'count', 'nnlDeclName')
call s:Check('let (a, b), c', 'let', 'nnlLet')
call s:Check('let (a, b), c', 'a', 'nnlDeclName')
call s:Check('let (a, b), c', 'c', 'nnlDeclName')
call s:Check('let (a, b), c', '1e-3', 'nnlFloat')
call s:Check('if bias and not training', 'if', 'nnlConditional')
call s:Check('if bias and not training', 'and', 'nnlLogical')
call s:Check('if bias and not training', 'not', 'nnlLogical')
call s:Check('if bias and not training', 'training', 'nnlTraining')
call s:Check('    x @ w + b', '@', 'nnlOperator')
call s:Check('} else {', 'else', 'nnlConditional')
call s:Check('init: init = glorot_uniform)(x', 'init', 'nnlParameter')
call s:Check('init: init = glorot_uniform)(x', 'init', 'nnlType', 2)
call s:Check('init: init = glorot_uniform)(x', 'filters', 'nnlShapeDim')
call s:Check('model Mlp(', 'model', 'nnlDefine')
call s:Check('model Mlp(', 'Mlp', 'nnlLayerName')
call s:Check('model Mlp(', 'B', 'nnlShapeDim')
call s:Check('x |> Dense(hidden)', 'Dense', 'nnlLayerCall')
call s:Check('x |> Dense(hidden)', 'relu', 'nnlPipeTarget')
call s:Check('x |> Dense(hidden)', 'p', 'nnlNamedArg', 2)
call s:Check('fn rms(', 'fn', 'nnlDefine')
call s:Check('fn rms(', 'rms', 'nnlFunctionName')
call s:Check('sqrt(mean(', 'axis', 'nnlNamedArg')
call s:Check('sqrt(mean(', '//', 'nnlOperator')
call s:Check('sqrt(mean(', '^', 'nnlOperator')
call s:Check('sqrt(mean(', '2.5E+2', 'nnlFloat')
call s:Check('let r = 0..4', '..', 'nnlOperator')
call s:Check('(a == b or', '==', 'nnlOperator')
call s:Check('(a == b or', 'or', 'nnlLogical')
call s:Check('(a == b or', '!=', 'nnlOperator')
call s:Check('scan(xs, axis', 'scan', 'nnlRepeat')
call s:Check('scan(xs, axis', 'xt', 'nnlClosureParam')
call s:Check('scan(xs, axis', 'B', 'nnlDim')
call s:Check('yield h2, h2', 'yield', 'nnlYield')
call s:Check('yield h2, h2', ';', 'nnlDelimiter')
call s:Check('optimizer signsgd', 'optimizer', 'nnlDefine')
call s:Check('optimizer signsgd', 'signsgd', 'nnlFunctionName')
call s:Check('schedule halve', 'schedule', 'nnlDefine')
call s:Check('constraint clamp', 'constraint', 'nnlDefine')
call s:Check('constraint clamp', 'clamp', 'nnlFunctionName')
call s:Check('let f = |u| u.0', 'u', 'nnlClosureParam')
call s:Check('let f = |u| u.0', '0', 'nnlMember')
" train
call s:Check('train Mlp on mnist', 'train', 'nnlDefine')
call s:Check('train Mlp on mnist', 'on', 'nnlTrainKeyword')
call s:Check('loss      = sparse', 'loss', 'nnlSetting')
call s:Check('loss      = sparse', 'logits', 'nnlNamedArg')
call s:Check('optimizer = adam', 'optimizer', 'nnlSetting')
call s:Check('optimizer = adam', '1e-3', 'nnlFloat')
call s:Check('batch 64', 'batch', 'nnlSetting')
call s:Check('epochs 5', 'epochs', 'nnlSetting')
call s:Check('metrics accuracy', 'metrics', 'nnlSetting')
call s:Check('early_stop(monitor', 'early_stop', 'nnlSetting')
call s:Check('early_stop(monitor', 'loss', 'nnlMember')
call s:Check('checkpoint "runs', 'checkpoint', 'nnlSetting')
call s:Check('clip_grad_norm 1.0', 'clip_grad_norm', 'nnlSetting')
call s:Check('constrain Mlp with', 'constrain', 'nnlTrainKeyword')
call s:Check('constrain Mlp with', 'with', 'nnlTrainKeyword')
call s:Check('phase critic {', 'phase', 'nnlPhase')
call s:Check('phase critic {', 'critic', 'nnlPhaseName')
call s:Check('update Critic with', 'update', 'nnlTrainKeyword')
call s:Check('update Critic with', 'with', 'nnlTrainKeyword')
" search
call s:Check('search random(', 'search', 'nnlDefine')
call s:Check('search random(', 'over', 'nnlTrainKeyword')
call s:Check('search random(', 'on', 'nnlTrainKeyword')
call s:Check('hidden in [8', 'in', 'nnlTrainKeyword')
call s:Check('} maximize', 'maximize', 'nnlTrainKeyword')

" ---------------------------------------------------------------- indent
" indent.nnl is laid out by hand; every line flushed left and re-indented must come back as it was
execute 'edit! ' . fnameescape(s:here . '/indent.nnl')
let s:expected = getline(1, '$')
silent %s/^\s\+//e
silent normal! gg=G
let s:actual = getline(1, '$')
for s:i in range(len(s:expected))
  call s:Equal('indent of line ' . (s:i + 1), s:actual[s:i], s:expected[s:i])
endfor
bwipeout!

" ---------------------------------------------------------------- result
let s:out = s:failures + [printf('vim syntax test: %d passed, %d failed', s:checks - len(s:failures), len(s:failures))]
call writefile(s:out, $NNL_VIM_TEST_OUT)
if empty(s:failures)
  qall!
endif
cquit!
