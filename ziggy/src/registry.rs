//! The catalogue of declared channels and instrumented functions, gathered with `inventory` from
//! every crate linked into the program.
//!
//! Entries are built only by the macros' expansions (through a `#[doc(hidden)]` constructor);
//! their fields are private so a program reads the catalogue but cannot forge it by accident.

/// A channel declared by `ziggy::channels!`.
#[derive(Debug)]
pub struct DeclaredChannel {
    name: &'static str,
    declared_in: &'static str,
}

impl DeclaredChannel {
    /// Used by `ziggy::channels!`'s expansion; not a public API.
    #[doc(hidden)]
    pub const fn __new(name: &'static str, declared_in: &'static str) -> Self {
        DeclaredChannel { name, declared_in }
    }

    /// The full dotted name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `module_path!()` of the declaring crate root.
    pub fn declared_in(&self) -> &'static str {
        self.declared_in
    }
}

/// A function annotated with `#[ziggy::context]`.
#[derive(Debug)]
pub struct InstrumentedFn {
    channel: &'static str,
    function: &'static str,
    file: &'static str,
    line: u32,
    sample: Option<(&'static str, f64)>,
}

impl InstrumentedFn {
    /// Used by `#[ziggy::context]`'s expansion; not a public API.
    #[doc(hidden)]
    pub const fn __new(
        channel: &'static str,
        function: &'static str,
        file: &'static str,
        line: u32,
        sample: Option<(&'static str, f64)>,
    ) -> Self {
        InstrumentedFn {
            channel,
            function,
            file,
            line,
            sample,
        }
    }

    /// The channel its context opens.
    pub fn channel(&self) -> &'static str {
        self.channel
    }

    /// `module::path::fn_name`.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Source file.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// Source line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// `(target, rate)` when the context is sampled with a literal rate.
    pub fn sample(&self) -> Option<(&'static str, f64)> {
        self.sample
    }
}

inventory::collect!(DeclaredChannel);
inventory::collect!(InstrumentedFn);

/// One channel of the catalogue, with the functions that open it.
#[derive(Debug)]
pub struct ChannelEntry {
    /// The full dotted name.
    pub name: &'static str,
    /// Crates (module paths) that declared it.
    pub declared_in: Vec<&'static str>,
    /// Functions annotated with this channel, by path.
    pub functions: Vec<&'static InstrumentedFn>,
}

impl ChannelEntry {
    fn new(name: &'static str) -> Self {
        ChannelEntry {
            name,
            declared_in: Vec::new(),
            functions: Vec::new(),
        }
    }
}

/// Every declared channel and every instrumented function of the program, sorted by channel name.
///
/// This is the catalogue, a function called at run time; `ziggy::channels! { .. }` (same name, the
/// macro namespace) is how a crate declares its channels at compile time.
///
/// ```
/// for channel in ziggy::channels() {
///     println!("{} ({} functions)", channel.name, channel.functions.len());
/// }
/// ```
pub fn channels() -> Vec<ChannelEntry> {
    let mut entries: std::collections::BTreeMap<&'static str, ChannelEntry> = Default::default();
    for declared in inventory::iter::<DeclaredChannel> {
        entries
            .entry(declared.name)
            .or_insert_with(|| ChannelEntry::new(declared.name))
            .declared_in
            .push(declared.declared_in);
    }
    for f in inventory::iter::<InstrumentedFn> {
        entries
            .entry(f.channel)
            .or_insert_with(|| ChannelEntry::new(f.channel))
            .functions
            .push(f);
    }
    let mut out: Vec<ChannelEntry> = entries.into_values().collect();
    for e in &mut out {
        e.declared_in.sort_unstable();
        e.declared_in.dedup();
        e.functions.sort_by_key(|f| (f.function, f.line));
    }
    out
}
