" Vim filetype plugin for nnl (.nnl files)
if exists('b:did_ftplugin')
  finish
endif
let b:did_ftplugin = 1

" `#` comments, to the end of the line
setlocal commentstring=#\ %s
setlocal comments=:#
setlocal formatoptions-=t formatoptions+=croql

" the style of the examples and the standard library: two spaces
setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=8

setlocal iskeyword=@,48-57,_
setlocal suffixesadd=.nnl
setlocal matchpairs=(:),{:},[:]

let b:undo_ftplugin = 'setlocal commentstring< comments< formatoptions< expandtab< shiftwidth<'
      \ . ' softtabstop< tabstop< iskeyword< suffixesadd< matchpairs<'
