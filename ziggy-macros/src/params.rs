//! The names a fn's parameters bind, which `args` records and `skip` may name.

use syn::{FnArg, Ident, Pat, Signature};

/// Every name bound by the fn's parameters other than `self`, in order: a plain parameter
/// (`x: u8`, `mut x: u8`) binds its name, a destructuring one (`(a, b): (u8, u8)`,
/// `Point { x, y }: Point`) each name inside it; `_` and literals bind none.
pub fn bound_names(sig: &Signature) -> Vec<Ident> {
    let mut names = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input {
            collect(&typed.pat, &mut names);
        }
    }
    names
}

fn collect(pat: &Pat, names: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(p) => {
            names.push(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                collect(sub, names);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| collect(p, names)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| collect(p, names)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| collect(&f.pat, names)),
        Pat::Slice(s) => s.elems.iter().for_each(|p| collect(p, names)),
        Pat::Reference(r) => collect(&r.pat, names),
        Pat::Paren(p) => collect(&p.pat, names),
        Pat::Type(t) => collect(&t.pat, names),
        Pat::Or(o) => {
            // Every alternative binds the same names: the first lists them.
            if let Some(first) = o.cases.first() {
                collect(first, names);
            }
        }
        _ => {}
    }
}
