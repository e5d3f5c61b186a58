//! The six isolation layers of DESIGN.md, and the test-only switches that turn one off.
//!
//! Each layer stops cross-tenant access on its own:
//!
//! 1. [`Layer::Gateway`] — the HTTP edge verifies the token and refuses a path naming
//!    another tenant, path tricks and tenant ids in bodies (`api::gateway`).
//! 2. [`Layer::Scope`] — the handler mints a [`crate::auth::TenantScope`] from its own
//!    verification of the token; every store query names the scope's tenant, and every
//!    row and sealed object read is checked to be the scope's (`store`).
//! 3. [`Layer::RowSecurity`] — tenant connections to SQLite carry the tenant
//!    (`current_tenant()`), see the shared tables only through views filtered by it, and an
//!    authorizer denies the base tables (`store::rows`).
//! 4. [`Layer::Crypto`] — per-tenant data keys, associated data binding tenant, kind and
//!    object id (`crypto`).
//! 5. [`Layer::Prompt`] — the prompt names the scope's tenant, holds only excerpts of that
//!    tenant, and quotes them as data (`answer::build_prompt`).
//! 6. [`Layer::Output`] — every document and chunk in a response is checked against
//!    storage to be the tenant's and, for answers, in the retrieved set; unsupported
//!    answers are withheld (`output`).
//!
//! In a normal build [`enabled`] is the constant `true` and the checks cannot be switched
//! off. Only a build with the `ablation` cargo feature — used by the isolation test suite,
//! never shipped (`bulkhead --version` says so, and it serves on loopback only) — can turn
//! a layer off, from the `BULKHEAD_ABLATE` environment variable or [`ablation::set_off`].

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Gateway,
    Scope,
    RowSecurity,
    Crypto,
    Prompt,
    Output,
}

impl Layer {
    pub const ALL: [Layer; 6] = [
        Layer::Gateway,
        Layer::Scope,
        Layer::RowSecurity,
        Layer::Crypto,
        Layer::Prompt,
        Layer::Output,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Gateway => "gateway",
            Layer::Scope => "scope",
            Layer::RowSecurity => "row-security",
            Layer::Crypto => "crypto",
            Layer::Prompt => "prompt",
            Layer::Output => "output",
        }
    }

    pub fn parse(name: &str) -> Option<Layer> {
        Layer::ALL
            .into_iter()
            .find(|layer| layer.name() == name.trim())
    }
}

/// Whether `layer` is on: always, unless this is an `ablation` test build.
#[inline(always)]
pub fn enabled(layer: Layer) -> bool {
    #[cfg(feature = "ablation")]
    {
        ablation::is_on(layer)
    }
    #[cfg(not(feature = "ablation"))]
    {
        let _ = layer;
        true
    }
}

/// True in a build that can switch layers off (tests only).
pub const ABLATION_BUILD: bool = cfg!(feature = "ablation");

#[cfg(feature = "ablation")]
pub mod ablation {
    //! Test-only: which layers are off in this process.

    use std::sync::atomic::{AtomicU8, Ordering};

    use super::Layer;

    /// Comma-separated layer names to switch off, read once at start-up.
    pub const ENV: &str = "BULKHEAD_ABLATE";

    static OFF: AtomicU8 = AtomicU8::new(0);

    fn bit(layer: Layer) -> u8 {
        1 << Layer::ALL.iter().position(|l| *l == layer).unwrap_or(0)
    }

    pub(super) fn is_on(layer: Layer) -> bool {
        OFF.load(Ordering::Relaxed) & bit(layer) == 0
    }

    /// Switches exactly these layers off (and every other on).
    pub fn set_off(layers: &[Layer]) {
        let mask = layers.iter().fold(0, |mask, layer| mask | bit(*layer));
        OFF.store(mask, Ordering::SeqCst);
    }

    /// The layers switched off now.
    pub fn off() -> Vec<Layer> {
        Layer::ALL
            .into_iter()
            .filter(|layer| !is_on(*layer))
            .collect()
    }

    /// Applies `BULKHEAD_ABLATE`; an unknown layer name is an error, not ignored.
    pub fn from_env() -> Result<(), String> {
        let Ok(list) = std::env::var(ENV) else {
            return Ok(());
        };
        let mut layers = Vec::new();
        for name in list.split(',').filter(|name| !name.trim().is_empty()) {
            layers.push(Layer::parse(name).ok_or_else(|| format!("{ENV}: unknown layer {name}"))?);
        }
        set_off(&layers);
        Ok(())
    }
}
