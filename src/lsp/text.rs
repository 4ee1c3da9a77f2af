//! Byte offsets (the compiler's spans) and LSP positions (lines and UTF-16 columns).

use lsp_types::{Position, Range};

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

pub fn position(text: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(text, offset);
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() as u32,
        character: before[line_start..].encode_utf16().count() as u32,
    }
}

pub fn range(text: &str, start: usize, end: usize) -> Range {
    Range {
        start: position(text, start),
        end: position(text, end),
    }
}

/// The byte offset of a position; positions past the end of a line or of the text are clamped.
pub fn offset(text: &str, pos: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let mut units = 0;
    for (i, c) in text[line_start..line_end].char_indices() {
        if units >= pos.character as usize {
            return line_start + i;
        }
        units += c.len_utf16();
    }
    line_end
}

/// The identifier at or just before `offset`: its byte range.
pub fn ident_at(text: &str, offset: usize) -> Option<(usize, usize)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let offset = floor_char_boundary(text, offset);
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident(c))
        .last()
        .map_or(offset, |(i, _)| i);
    let end = text[offset..]
        .char_indices()
        .find(|&(_, c)| !is_ident(c))
        .map_or(text.len(), |(i, _)| offset + i);
    let first = text[start..end].chars().next()?;
    (first.is_ascii_alphabetic() || first == '_').then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        let text = "a\n# é𝄞x\nb";
        let x = text.find('x').expect("x");
        assert_eq!(position(text, x), Position::new(1, 5));
        assert_eq!(offset(text, Position::new(1, 5)), x);
        assert_eq!(offset(text, Position::new(9, 0)), text.len());
        assert_eq!(offset(text, Position::new(0, 99)), 1);
    }

    #[test]
    fn identifiers_under_the_cursor() {
        let text = "x |> Dense(8)";
        assert_eq!(ident_at(text, 7), Some((5, 10)));
        assert_eq!(ident_at(text, 10), Some((5, 10)));
        assert_eq!(ident_at(text, 11), None);
    }
}
