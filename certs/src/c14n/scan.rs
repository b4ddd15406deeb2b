//! The tokenizer canonicalization runs on (issue 21). quick-xml's reader costs
//! about 21 instructions a byte before any c14n work; c14n needs less of it: a
//! start tag's name and raw attribute text (parsed only when there is some), end
//! tags matched against the open names, text runs between `<` and `&` found with
//! memchr, references, CDATA, comments and processing instructions. What it does
//! not accept is an error, never a guess: unclosed constructs, a DOCTYPE, an end
//! tag naming another element, a tag that does not close.

/// One piece of the document; byte slices borrow from it.
pub(crate) enum Token<'a> {
    /// `<name …>` or `<name …/>`: the text between `<` and `>` (without the `/`
    /// of an empty element, so the name is its first `name_len` bytes).
    Start {
        tag: &'a [u8],
        name_len: usize,
        empty: bool,
    },
    /// `</name>`.
    End {
        name: &'a [u8],
    },
    /// Character data containing neither `<` nor `&`.
    Text(&'a [u8]),
    /// The name between `&` and `;`.
    Ref(&'a [u8]),
    CData(&'a [u8]),
    Comment(&'a [u8]),
    /// Between `<?` and `?>`.
    Pi(&'a [u8]),
    DocType,
}

pub(crate) struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
}

/// Where and what: the caller turns it into its error.
pub(crate) type ScanError = (usize, &'static str);

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(doc: &'a [u8], pos: usize) -> Self {
        Self { doc, pos: pos.min(doc.len()) }
    }

    /// Where the next token starts.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The next token and the byte it starts at; `None` at the end.
    #[inline]
    pub(crate) fn next_token(&mut self) -> Result<Option<(usize, Token<'a>)>, ScanError> {
        let doc = self.doc;
        let at = self.pos;
        let Some(&first) = doc.get(at) else { return Ok(None) };
        match first {
            b'<' => self.markup(at).map(|t| Some((at, t))),
            b'&' => {
                let window = &doc[at + 1..doc.len().min(at + 1 + 64)];
                let semi = memchr::memchr(b';', window).ok_or((at, "a reference without ';'"))?;
                self.pos = at + 2 + semi;
                Ok(Some((at, Token::Ref(&window[..semi]))))
            }
            _ => {
                let end = memchr::memchr2(b'<', b'&', &doc[at..]).map_or(doc.len(), |i| at + i);
                self.pos = end;
                Ok(Some((at, Token::Text(&doc[at..end]))))
            }
        }
    }

    fn until(&mut self, from: usize, close: &[u8], what: &'static str) -> Result<&'a [u8], ScanError> {
        let doc = self.doc;
        let rest = doc.get(from..).ok_or((from, what))?;
        let i = memchr::memmem::find(rest, close).ok_or((from, what))?;
        self.pos = from + i + close.len();
        Ok(&rest[..i])
    }

    fn markup(&mut self, at: usize) -> Result<Token<'a>, ScanError> {
        let doc = self.doc;
        match doc.get(at + 1).copied() {
            Some(b'/') => {
                let gt = memchr::memchr(b'>', &doc[at..]).ok_or((at, "an end tag does not close"))? + at;
                let inner = &doc[at + 2..gt];
                let name_len = inner.iter().position(|&b| is_space(b)).unwrap_or(inner.len());
                if name_len == 0 || !inner[name_len..].iter().all(|&b| is_space(b)) {
                    return Err((at, "a malformed end tag"));
                }
                self.pos = gt + 1;
                Ok(Token::End { name: &inner[..name_len] })
            }
            Some(b'?') => self.until(at + 2, b"?>", "a processing instruction does not close").map(Token::Pi),
            Some(b'!') => {
                let rest = &doc[at..];
                if rest.starts_with(b"<!--") {
                    self.until(at + 4, b"-->", "a comment does not close").map(Token::Comment)
                } else if rest.starts_with(b"<![CDATA[") {
                    self.until(at + 9, b"]]>", "a CDATA section does not close").map(Token::CData)
                } else if rest.starts_with(b"<!DOCTYPE") {
                    Ok(Token::DocType)
                } else {
                    Err((at, "unknown markup after '<!'"))
                }
            }
            Some(_) => self.start_tag(at),
            None => Err((at, "the document ends inside a tag")),
        }
    }

    fn start_tag(&mut self, at: usize) -> Result<Token<'a>, ScanError> {
        let doc = self.doc;
        let from = at + 1;
        let mut i = from;
        while i < doc.len() && !matches!(doc[i], b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>') {
            i += 1;
        }
        let name_len = i - from;
        if name_len == 0 {
            return Err((at, "a start tag without a name"));
        }
        // The closing '>', stepping over quoted attribute values (which may hold one).
        loop {
            match doc.get(i).copied() {
                Some(b'>') => break,
                Some(q @ (b'"' | b'\'')) => {
                    let close = memchr::memchr(q, &doc[i + 1..]).ok_or((at, "an attribute value does not close"))?;
                    i += close + 2;
                }
                Some(b'<') => return Err((at, "'<' inside a start tag")),
                Some(_) => i += 1,
                None => return Err((at, "a start tag does not close")),
            }
        }
        self.pos = i + 1;
        let inner = &doc[from..i];
        let (tag, empty) = match inner.strip_suffix(b"/") {
            Some(tag) if tag.len() >= name_len => (tag, true),
            _ => (inner, false),
        };
        Ok(Token::Start { tag, name_len, empty })
    }
}
