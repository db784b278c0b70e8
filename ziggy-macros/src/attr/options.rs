//! The recording options of `#[ziggy::context]`, as tracing's `#[instrument]` has them:
//! `fields(key = value, ..)`, `args`, `skip(a, ..)`, `skip_all`, `err[(Display|Debug)]`,
//! `ret[(Debug|Display|Serialize)]`. Shapes only; what they may name is checked in `valid`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Expr, Ident, LitStr, Token};

/// Every option, as the unknown-option error lists them.
const OPTIONS: &str = "`sample = (\"target\", rate)`, `id = expr`, `fields(key = value, ..)`, `args`, \
                       `skip(arg, ..)`, `skip_all`, `err`, `err(Debug)`, `ret`, `ret(Display)`, `ret(Serialize)`";
const NAMES: [&str; 8] = [
    "sample", "id", "fields", "args", "skip", "skip_all", "err", "ret",
];

/// How a value is turned into a body value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// As it serialises (`serde::Serialize`): numbers stay numbers, structs become documents.
    Serialize,
    /// Its `{:?}` string.
    Debug,
    /// Its `{}` string.
    Display,
}

/// `err` or `ret`, with the format given in parentheses or the option's default.
pub struct Formatted {
    pub keyword: Ident,
    pub format: Format,
    /// The `Debug` in `err(Debug)`, when written.
    pub format_token: Option<Ident>,
}

impl Formatted {
    /// Where an unmet bound of the format is reported: the format's name, else the keyword.
    pub fn span(&self) -> Span {
        self.format_token.as_ref().unwrap_or(&self.keyword).span()
    }
}

/// What an option in parentheses accepts: its name, default and the formats it takes.
pub struct FormatChoice {
    name: &'static str,
    default: Format,
    accepted: &'static [(&'static str, Format)],
    usage: &'static str,
}

pub const ERR: FormatChoice = FormatChoice {
    name: "err",
    default: Format::Display,
    accepted: &[("Display", Format::Display), ("Debug", Format::Debug)],
    usage: "`err`, `err(Display)` or `err(Debug)`",
};

pub const RET: FormatChoice = FormatChoice {
    name: "ret",
    default: Format::Debug,
    accepted: &[
        ("Debug", Format::Debug),
        ("Display", Format::Display),
        ("Serialize", Format::Serialize),
    ],
    usage: "`ret`, `ret(Debug)`, `ret(Display)` or `ret(Serialize)`",
};

/// `skip(a, b)`.
pub struct Skip {
    pub keyword: Ident,
    pub names: Vec<Ident>,
}

/// `key = value` in `fields(..)`.
pub struct Field {
    /// The body key, dotted segments joined (`response.status`).
    pub key: String,
    /// The key as written, for errors spanning all of it.
    pub key_tokens: TokenStream,
    /// Where the generated key literal points.
    pub key_span: Span,
    pub value: FieldValue,
}

/// `expr` (serialised), `?expr` (`Debug`) or `%expr` (`Display`), as in tracing.
pub struct FieldValue {
    pub format: Format,
    pub expr: Expr,
}

/// The `=` after `sample` and `id`.
pub fn expect_eq(input: ParseStream, key: &Ident, usage: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new(
            next_span(input, key),
            format!("expected `=` after `{key}`: write `{usage}`"),
        ))
    }
}

/// The span of the next token, or of `after` at the end of the input.
fn next_span(input: ParseStream, after: &Ident) -> Span {
    if input.is_empty() {
        after.span()
    } else {
        input.span()
    }
}

/// An option that takes no value: `args`, `skip_all`.
pub fn bare(input: ParseStream, keyword: Ident) -> syn::Result<Ident> {
    if input.is_empty() || input.peek(Token![,]) {
        return Ok(keyword);
    }
    Err(syn::Error::new(
        input.span(),
        format!("`{keyword}` takes no value: write `{keyword}` alone"),
    ))
}

/// `err`, `err(Debug)`, `ret(Serialize)`, ...
pub fn parse_formatted(
    input: ParseStream,
    keyword: Ident,
    choice: FormatChoice,
) -> syn::Result<Formatted> {
    if input.is_empty() || input.peek(Token![,]) {
        return Ok(Formatted {
            keyword,
            format: choice.default,
            format_token: None,
        });
    }
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            input.span(),
            format!("`{}` takes no value: write {}", choice.name, choice.usage),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let wrong = |span: Span| {
        syn::Error::new(
            span,
            format!(
                "`{}` takes one of {}: write {}",
                choice.name,
                choice
                    .accepted
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                choice.usage
            ),
        )
    };
    let token = if content.peek(Ident::peek_any) {
        content.call(Ident::parse_any)?
    } else {
        return Err(wrong(if content.is_empty() {
            keyword.span()
        } else {
            content.span()
        }));
    };
    let Some(&(_, format)) = choice.accepted.iter().find(|(n, _)| token == n) else {
        return Err(wrong(token.span()));
    };
    if !content.is_empty() {
        return Err(wrong(content.span()));
    }
    Ok(Formatted {
        keyword,
        format,
        format_token: Some(token),
    })
}

/// `skip(a, b)`: parameter names, `self` included.
pub fn parse_skip(input: ParseStream, keyword: Ident) -> syn::Result<Skip> {
    let usage = "write `skip(arg, ..)` with the names of the fn's parameters";
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            next_span(input, &keyword),
            format!("expected `(` after `skip`: {usage}"),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let mut names = Vec::new();
    while !content.is_empty() {
        if content.peek(Token![,]) {
            return Err(content.error("empty entry in `skip(..)`: remove the extra `,`"));
        }
        if !content.peek(Ident::peek_any) {
            return Err(content.error(format!("expected a parameter name: {usage}")));
        }
        names.push(content.call(Ident::parse_any)?);
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    if names.is_empty() {
        return Err(syn::Error::new(
            keyword.span(),
            format!("`skip()` names no parameter: {usage}, or remove it"),
        ));
    }
    Ok(Skip { keyword, names })
}

/// `fields(key = value, ..)`.
pub fn parse_fields(input: ParseStream, keyword: &Ident) -> syn::Result<Vec<Field>> {
    let usage = "write `fields(key = value, ..)`";
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            next_span(input, keyword),
            format!("expected `(` after `fields`: {usage}"),
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    let mut fields = Vec::new();
    while !content.is_empty() {
        if content.peek(Token![,]) {
            return Err(content.error("empty entry in `fields(..)`: remove the extra `,`"));
        }
        fields.push(parse_field(&content)?);
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    if fields.is_empty() {
        return Err(syn::Error::new(
            keyword.span(),
            format!("`fields()` sets nothing: {usage}, or remove it"),
        ));
    }
    Ok(fields)
}

/// `key = value`, `a.b = value`, `"key" = value`, with `?value` or `%value` as in tracing.
fn parse_field(input: ParseStream) -> syn::Result<Field> {
    let mut key_tokens = TokenStream::new();
    let (key, key_span) = if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        lit.to_tokens(&mut key_tokens);
        (lit.value(), lit.span())
    } else if input.peek(Ident::peek_any) {
        let first = input.call(Ident::parse_any)?;
        first.to_tokens(&mut key_tokens);
        let mut key = unraw(&first);
        while input.peek(Token![.]) {
            let dot: Token![.] = input.parse()?;
            dot.to_tokens(&mut key_tokens);
            if !input.peek(Ident::peek_any) {
                return Err(input.error(
                    "expected an identifier after `.` in a dotted key; for other keys use a string, \
                     e.g. `\"codes.200\" = 1`",
                ));
            }
            let segment = input.call(Ident::parse_any)?;
            segment.to_tokens(&mut key_tokens);
            key.push('.');
            key.push_str(&unraw(&segment));
        }
        (key, first.span())
    } else {
        return Err(input.error(
            "expected a key: an identifier, a dotted identifier (`response.status`) or a string literal",
        ));
    };
    if !input.peek(Token![=]) {
        let span = if input.is_empty() || input.peek(Token![,]) {
            key_span
        } else {
            input.span()
        };
        return Err(syn::Error::new(
            span,
            format!("expected `= value` after the key {key:?}: write e.g. `{key} = 1`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let format = if input.peek(Token![?]) {
        input.parse::<Token![?]>()?;
        Format::Debug
    } else if input.peek(Token![%]) {
        input.parse::<Token![%]>()?;
        Format::Display
    } else {
        Format::Serialize
    };
    let expr: Expr = input.parse()?;
    Ok(Field {
        key,
        key_tokens,
        key_span,
        value: FieldValue { format, expr },
    })
}

/// An identifier as a key: `r#type` is `type`.
pub fn unraw(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// Unknown option: the valid ones, and the closest if the name looks misspelt.
pub fn unknown_option(key: &Ident) -> syn::Error {
    let name = key.to_string();
    let hint = NAMES
        .iter()
        .map(|n| (edit_distance(&name, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3) && *d < name.len())
        .min()
        .map(|(_, n)| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default();
    syn::Error::new_spanned(
        key,
        format!("unknown option `{name}`{hint}: #[ziggy::context] takes {OPTIONS}"),
    )
}

/// Levenshtein distance, for the misspelt-option hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
