//! `channels! { request { sql, memcache } }`: the crate's channel tree, declared once.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::channel_rule::validate_channel_name;
use crate::mangle;
use crate::valid::Errors;

/// One node of the tree: a segment and its children.
struct Node {
    segment: String,
    span: Span,
    children: Vec<Node>,
}

struct Tree(Vec<Node>);

impl Parse for Tree {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut nodes = Vec::new();
        while !input.is_empty() {
            let (segment, span) = if input.peek(LitStr) {
                let lit: LitStr = input.parse()?;
                (lit.value(), lit.span())
            } else if input.peek(Ident::peek_any) {
                let ident = input.call(Ident::parse_any)?;
                (ident.unraw().to_string(), ident.span())
            } else {
                return Err(input.error(
                    "expected a channel segment (an identifier such as `request`, or a string such as \"2xx\")",
                ));
            };
            let children = if input.peek(syn::token::Brace) {
                let content;
                syn::braced!(content in input);
                content.parse::<Tree>()?.0
            } else {
                Vec::new()
            };
            nodes.push(Node {
                segment,
                span,
                children,
            });
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Tree(nodes))
    }
}

fn flatten(nodes: &[Node], prefix: &str, out: &mut Vec<(String, Span)>, errors: &mut Errors) {
    for node in nodes {
        if node.segment.contains('.') || validate_channel_name(&node.segment).is_err() {
            let why = validate_channel_name(&node.segment).err().map_or(
                "a segment holds no `.`: nest it in braces instead".to_owned(),
                |e| e.to_string(),
            );
            errors.push(syn::Error::new(
                node.span,
                format!("invalid channel segment {:?}: {why}", node.segment),
            ));
            continue;
        }
        let name = if prefix.is_empty() {
            node.segment.clone()
        } else {
            format!("{prefix}.{}", node.segment)
        };
        if let Err(e) = validate_channel_name(&name) {
            errors.push(syn::Error::new(
                node.span,
                format!("invalid channel {name:?}: {e}"),
            ));
            continue;
        }
        out.push((name.clone(), node.span));
        flatten(&node.children, &name, out, errors);
    }
}

pub fn expand(input: TokenStream) -> TokenStream {
    match try_expand(input) {
        Ok(out) => out,
        Err(e) => e.into_compile_error(),
    }
}

fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let tree: Tree = syn::parse2(input)?;
    if tree.0.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "declare at least one channel: `ziggy::channels! { request { sql } }`",
        ));
    }
    let mut errors = Errors::default();
    let mut channels = Vec::new();
    flatten(&tree.0, "", &mut channels, &mut errors);
    let mut by_ident: BTreeMap<String, String> = BTreeMap::new();
    for (name, span) in &channels {
        if let Some(previous) = by_ident.insert(mangle::flat_name(name), name.clone()) {
            let message = if previous == *name {
                format!("channel {name:?} is declared twice")
            } else {
                format!("channels {previous:?} and {name:?} map to the same identifier; rename one")
            };
            errors.push(syn::Error::new(*span, message));
        }
    }
    errors.finish()?;
    let module = format_ident!("{}", mangle::MODULE);
    let consts = channels.iter().map(|(name, span)| {
        let ident = mangle::const_ident(name, *span);
        let doc = format!("The channel `{name}`.");
        quote! { #[doc = #doc] pub(crate) const #ident: () = (); }
    });
    let submits = channels.iter().map(|(name, _)| {
        quote! {
            ::ziggy::__private::inventory::submit! {
                ::ziggy::__private::DeclaredChannel::__new(#name, ::core::module_path!())
            }
        }
    });
    Ok(quote! {
        /// Channels declared with `ziggy::channels!`; `#[ziggy::context]` checks its names against
        /// these constants at compile time.
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) mod #module {
            #(#consts)*
        }
        #(#submits)*
    })
}
