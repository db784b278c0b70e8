//! Parsing attribute arguments into typed models: `#[ziggy::context(..)]` here, its recording
//! options (`fields`, `args`, `skip`, `skip_all`, `err`, `ret`) in `options`.

mod options;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

pub use options::{Field, Format, Formatted, Skip, unraw};

/// `#[ziggy::context("channel", sample = ("target", rate), id = expr, <recording options>)]`.
pub struct ContextArgs {
    pub channel: LitStr,
    pub sample: Option<SampleSpec>,
    pub id: Option<Expr>,
    /// `fields(key = value, ..)`: set right after the context opens.
    pub fields: Vec<Field>,
    /// `args`: record the fn's arguments (the keyword, for spans).
    pub args: Option<Ident>,
    /// `skip(a, b)`: arguments `args` leaves out.
    pub skip: Option<Skip>,
    /// `skip_all`: record no argument (the default, spelled out).
    pub skip_all: Option<Ident>,
    /// `err`, `err(Display)`, `err(Debug)`.
    pub err: Option<Formatted>,
    /// `ret`, `ret(Debug)`, `ret(Display)`, `ret(Serialize)`.
    pub ret: Option<Formatted>,
}

/// `sample = ("target", rate)`.
pub struct SampleSpec {
    pub target: LitStr,
    pub rate: Expr,
}

impl Parse for ContextArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing channel name: write `#[ziggy::context(\"request\")]`",
            ));
        }
        let channel: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the channel name as a string literal first, e.g. `#[ziggy::context(\"request.sql\")]`",
            )
        })?;
        let mut args = ContextArgs {
            channel,
            sample: None,
            id: None,
            fields: Vec::new(),
            args: None,
            skip: None,
            skip_all: None,
            err: None,
            ret: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key = input.call(Ident::parse_any)?;
            let name = key.to_string();
            if seen.contains(&name) {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("duplicate option `{name}`: give it once"),
                ));
            }
            match name.as_str() {
                "sample" => {
                    options::expect_eq(input, &key, "sample = (\"target\", rate)")?;
                    let content;
                    syn::parenthesized!(content in input);
                    let target: LitStr = content.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "expected `sample = (\"target\", rate)`, the target channel as a string literal",
                        )
                    })?;
                    content.parse::<Token![,]>()?;
                    let rate: Expr = content.parse()?;
                    if !content.is_empty() {
                        return Err(content
                            .error("expected `sample = (\"target\", rate)` with two elements"));
                    }
                    args.sample = Some(SampleSpec { target, rate });
                }
                "id" => {
                    options::expect_eq(input, &key, "id = expr")?;
                    args.id = Some(input.parse()?);
                }
                "fields" => args.fields = options::parse_fields(input, &key)?,
                "args" => args.args = Some(options::bare(input, key)?),
                "skip" => args.skip = Some(options::parse_skip(input, key)?),
                "skip_all" => args.skip_all = Some(options::bare(input, key)?),
                "err" => args.err = Some(options::parse_formatted(input, key, options::ERR)?),
                "ret" => args.ret = Some(options::parse_formatted(input, key, options::RET)?),
                _ => return Err(options::unknown_option(&key)),
            }
            seen.push(name);
        }
        Ok(args)
    }
}

/// `#[ziggy::timeit]` or `#[ziggy::timeit("key")]`.
pub struct TimeitArgs {
    pub key: Option<LitStr>,
}

impl Parse for TimeitArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(TimeitArgs { key: None });
        }
        let key: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the timer key as a string literal, e.g. `#[ziggy::timeit(\"query_time\")]`",
            )
        })?;
        if !input.is_empty() {
            return Err(input.error("#[ziggy::timeit] takes at most one argument, the key"));
        }
        Ok(TimeitArgs { key: Some(key) })
    }
}
