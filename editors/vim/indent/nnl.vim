" Vim indent file for nnl (.nnl files): one level per open `{`, `(` or `[`, and one for a line
" that continues a pipeline (`|> …`).
if exists('b:did_indent')
  finish
endif
let b:did_indent = 1

setlocal autoindent
setlocal indentexpr=GetNnlIndent(v:lnum)
setlocal indentkeys=0},0),0],!^F,o,O,e,0=\|>

let b:undo_indent = 'setlocal autoindent< indentexpr< indentkeys<'

if exists('*GetNnlIndent')
  finish
endif

" The line without its comment and strings, so brackets in them are not counted.
function! s:Code(lnum) abort
  let line = getline(a:lnum)
  let line = substitute(line, '"\%(\\.\|[^"\\]\)*"', '""', 'g')
  return substitute(line, '#.*$', '', '')
endfunction

" Open brackets minus closed ones on a line, closers at its start not counted.
function! s:Balance(code) abort
  let code = substitute(a:code, '^\s*[})\]]\+', '', '')
  let opens = len(substitute(code, '[^({[]', '', 'g'))
  let closes = len(substitute(code, '[^)}\]]', '', 'g'))
  return opens - closes
endfunction

function! GetNnlIndent(lnum) abort
  let prev = prevnonblank(a:lnum - 1)
  " skip comment-only lines above
  while prev > 0 && getline(prev) =~# '^\s*#'
    let prev = prevnonblank(prev - 1)
  endwhile
  if prev == 0
    return 0
  endif
  let sw = shiftwidth()
  let ind = indent(prev)
  let pcode = s:Code(prev)
  let code = s:Code(a:lnum)
  " a pipeline continued on this line is indented under the line it continues
  let pcont = pcode =~# '^\s*|>'
  let cont = code =~# '^\s*|>'
  if pcont && !cont
    let ind -= sw
  endif
  if cont && !pcont && s:Balance(pcode) <= 0
    let ind += sw
  endif
  let bal = s:Balance(pcode)
  if bal > 0
    let ind += sw
  endif
  " a line that starts by closing brackets goes back one level
  if code =~# '^\s*[})\]]'
    let ind -= sw
  endif
  return ind < 0 ? 0 : ind
endfunction
