//! Examples of ziggy: `demo` (an instrumented app, an embedded ziggyd, the files read back) and
//! `catalogue` (the channels and instrumented functions registered at compile time).
