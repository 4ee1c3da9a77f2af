" nnl (.nnl files)
autocmd BufRead,BufNewFile *.nnl setfiletype nnl
