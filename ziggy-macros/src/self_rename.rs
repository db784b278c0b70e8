//! Renames `self` to `__ziggy_self` in a method body, for the expansion that hands the receiver
//! to the body as an argument (see `expand.rs`). Nested items keep their own `self`; `self::`
//! module paths are left alone; macro arguments are renamed token by token.

use proc_macro2::{Group, Ident, TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};

const RENAMED: &str = "__ziggy_self";

/// Renames every use of the receiver `self` in `block`.
pub fn rename_self(block: &mut syn::Block) {
    SelfRenamer.visit_block_mut(block);
}

struct SelfRenamer;

impl VisitMut for SelfRenamer {
    fn visit_expr_path_mut(&mut self, expr: &mut syn::ExprPath) {
        let path = &mut expr.path;
        if expr.qself.is_none() && path.leading_colon.is_none() && path.segments.len() == 1 {
            let ident = &mut path.segments[0].ident;
            if ident == "self" {
                *ident = Ident::new(RENAMED, ident.span());
            }
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {
        // A nested fn, impl or trait has its own `self`.
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = rename_tokens(std::mem::take(&mut mac.tokens));
        visit_mut::visit_macro_mut(self, mac);
    }
}

/// `self` not followed by `::` becomes the renamed ident, in every group.
fn rename_tokens(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        out.push(match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let module_path =
                    matches!(iter.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                if module_path {
                    TokenTree::Ident(ident)
                } else {
                    TokenTree::Ident(Ident::new(RENAMED, ident.span()))
                }
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_tokens(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other,
        });
    }
    out.into_iter().collect()
}
