" Vim syntax file
" Language:    nnl (.nnl files)
" Description: grammar/nnl.pest is the syntax, docs/language.md the reference. Reserved words
"              are keywords everywhere; the other words (`data`, `on`, `with`, `split`, …) are
"              highlighted only in the position that gives them their meaning.

if exists('b:current_syntax')
  finish
endif
let s:cpo_save = &cpo
set cpo&vim

syn case match
syn iskeyword @,48-57,_

" ---------------------------------------------------------------- names (lowest priority first)

syn match nnlIdentifier "\<\h\w*\>"
" a name assigned at the start of a line: `p = …`, a data source `train = idx(…)`
syn match nnlAssigned "^\s*\zs\h\w*\ze\s*=\%(=\)\@!"
" upper-case one-letter names are dimension symbols by convention (`B`, `T`, `D`)
syn match nnlDim "\<\u\>"
syn match nnlFunctionCall "\<\h\w*\ze[ \t]*("
syn match nnlLayerCall "\<\u\w*\ze[ \t]*("
syn match nnlPipeTarget "\%(|>\s*\)\@<=\h\w*\>\%([ \t]*[(.]\)\@!"
" `lr: 1e-3` in a call
syn match nnlNamedArg "\<\h\w*\ze\s*:\%(:\)\@!\%(\s*\"\)\@!"
" `units: int` in a definition, `x: f32[784]` in a data block: a name and its type
syn match nnlParameter "\<\h\w*\ze\s*:\s*\%(\%(f32\|f64\|i32\|bool\|int\|str\|init\|params\)\>\|(\|\[\)"

" ---------------------------------------------------------------- literals

syn match nnlInteger "\<\d\+\>"
syn match nnlFloat "\<\d\+\%(\.\d\+\%([eE][+-]\=\d\+\)\=\|[eE][+-]\=\d\+\)\>"
syn region nnlString start=+"+ skip=+\\.+ end=+"+ end=+$+ contains=nnlEscape,nnlPlaceholder
syn match nnlEscape +\\.+ contained
syn match nnlPlaceholder "{\h\w*}" contained
syn keyword nnlBoolean true false
syn keyword nnlTraining training
" `val.loss`, `t.0`
syn match nnlMember "\%([A-Za-z0-9_)\]]\.\)\@<=\%(\h\w*\|\d\+\)"

" ---------------------------------------------------------------- operators and punctuation

syn match nnlOperator "[-+*/%^=<>@]"
syn match nnlOperator "//\|==\|!=\|<=\|>="
syn match nnlOperator "\.\."
syn match nnlArrow "->"
syn match nnlPipe "|>"
syn keyword nnlLogical and or not
syn match nnlPack "\%(\%([[,]\)\s*\)\@<=\.\.\ze\h" nextgroup=nnlShapeDim
syn match nnlDelimiter "[,;:]"

" ---------------------------------------------------------------- types and shapes

syn keyword nnlDtype f32 f64 i32 bool
syn match nnlType "\%(:\s*\)\@<=\<\%(int\|str\|init\|params\)\>"
" the shape of a tensor type, `f32[B, 784]`, and a bare shape after `param w:` / `state s:`
syn region nnlShape matchgroup=nnlShapeBracket start="\%(\<\%(f32\|f64\|i32\|bool\)[ \t]*\)\@<=\[" end="\]" contains=nnlShapeDim,nnlPack,nnlInteger,nnlOperator,nnlDelimiter,nnlComment,nnlShapeParen
syn region nnlShape matchgroup=nnlShapeBracket start="\%(\<\%(param\|state\)\>[^:=]*:\s*\)\@<=\[" end="\]" contains=nnlShapeDim,nnlPack,nnlInteger,nnlOperator,nnlDelimiter,nnlComment,nnlShapeParen
syn region nnlShapeParen matchgroup=nnlShapeBracket start="(" end=")" contained contains=nnlShapeDim,nnlInteger,nnlOperator,nnlShapeParen
syn match nnlShapeDim "\<\h\w*\>" contained

" ---------------------------------------------------------------- keywords

syn keyword nnlConditional if else
syn keyword nnlRepeat scan
syn keyword nnlYield yield
syn keyword nnlWhere where
syn keyword nnlLet let nextgroup=nnlLetNames skipwhite
syn match nnlLetNames "\%(\%(\h\w*\|[(),]\)\s*\)\+\ze=" contained contains=nnlDeclName,nnlDelimiter
syn keyword nnlStorage param state nextgroup=nnlStorageNames skipwhite
syn match nnlStorageNames "\h\w*\%(\s*,\s*\h\w*\)*" contained contains=nnlDeclName,nnlDelimiter
syn match nnlDeclName "\<\h\w*\>" contained
syn keyword nnlPhase phase nextgroup=nnlPhaseName skipwhite
syn match nnlPhaseName "\h\w*" contained
syn keyword nnlTrainKeyword update constrain
syn match nnlTrainKeyword "\%(\<\%(update\|constrain\)\>.*\)\@<=\<with\>"
syn match nnlTrainKeyword "\<on\>\ze\s\+\h\w*\s*{"
syn match nnlTrainKeyword "\%(^\s*split\s.*\)\@<=\<of\>"
syn match nnlTrainKeyword "\%(^\s*search\>.*\)\@<=\<over\>"
syn match nnlTrainKeyword "\%(^\s*\h\w*\s\+\)\@<=in\>"
syn match nnlTrainKeyword "}\s*\zs\<\%(maximize\|minimize\)\>"
syn match nnlSplit "^\s*\zssplit\ze\s\+\h\w*\s*=" nextgroup=nnlSplitName skipwhite
syn match nnlSplitName "\h\w*" contained

" the settings of a train or data block, at the start of a line
syn match nnlSetting "^\s*\zs\<\%(loss\|optimizer\|batch\|epochs\|metrics\|early_stop\|checkpoint\|clip_grad_norm\|seed\|shuffle\)\>\ze\%(\s*=\%(=\)\@!\|[ \t]*(\|[ \t]\+[^=: \t]\)"

" items
syn match nnlImport "^\s*\zsuse\ze\s"
syn match nnlDefine "^\s*\zs\<\%(data\|train\|search\)\>\ze\s\+\h"
syn match nnlDefine "^\s*\zs\<\%(model\|layer\)\>\ze\s\+\h" nextgroup=nnlLayerName skipwhite
syn match nnlDefine "^\s*\zs\<\%(optimizer\|schedule\|constraint\)\>\ze\s\+\h" nextgroup=nnlFunctionName skipwhite
syn keyword nnlDefine fn nextgroup=nnlFunctionName skipwhite
syn match nnlLayerName "\h\w*" contained
syn match nnlFunctionName "\h\w*" contained

" closure parameters: `|x, (h, c)|`
syn match nnlClosureParams "|\%(>\)\@!\zs\%(\s*\%(\h\w*\|[(),]\)\)*\s*\ze|\%(>\)\@!" contains=nnlClosureParam,nnlDelimiter
syn match nnlClosureParam "\<\h\w*\>" contained

" ---------------------------------------------------------------- comments

syn keyword nnlTodo TODO FIXME XXX NOTE contained
syn match nnlComment "#.*$" contains=nnlTodo,@Spell

" ---------------------------------------------------------------- colours

hi def link nnlComment       Comment
hi def link nnlTodo          Todo
hi def link nnlString        String
hi def link nnlEscape        SpecialChar
hi def link nnlPlaceholder   SpecialChar
hi def link nnlInteger       Number
hi def link nnlFloat         Float
hi def link nnlBoolean       Boolean
hi def link nnlTraining      Constant
hi def link nnlOperator      Operator
hi def link nnlArrow         Operator
hi def link nnlPipe          Operator
hi def link nnlLogical       Operator
hi def link nnlPack          Operator
hi def link nnlDelimiter     Delimiter
hi def link nnlDtype         Type
hi def link nnlType          Type
hi def link nnlShapeBracket  Delimiter
hi def link nnlShapeDim      Special
hi def link nnlDim           Special
hi def link nnlConditional   Conditional
hi def link nnlRepeat        Repeat
hi def link nnlYield         Statement
hi def link nnlWhere         Statement
hi def link nnlLet           Keyword
hi def link nnlStorage       StorageClass
hi def link nnlDeclName      Identifier
hi def link nnlPhase         Keyword
hi def link nnlPhaseName     Label
hi def link nnlTrainKeyword  Keyword
hi def link nnlSplit         Keyword
hi def link nnlSplitName     Identifier
hi def link nnlSetting       Keyword
hi def link nnlImport        Include
hi def link nnlDefine        Keyword
hi def link nnlLayerName     Structure
hi def link nnlFunctionName  Function
hi def link nnlFunctionCall  Function
hi def link nnlLayerCall     Structure
hi def link nnlPipeTarget    Function
hi def link nnlMember        Identifier
hi def link nnlNamedArg      Identifier
hi def link nnlParameter     Identifier
hi def link nnlAssigned      Identifier
hi def link nnlClosureParam  Identifier

let b:current_syntax = 'nnl'

let &cpo = s:cpo_save
unlet s:cpo_save
