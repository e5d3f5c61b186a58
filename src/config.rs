//! Run-time configuration: where data and models live, and the limits the appliance
//! enforces. Resolved once at start-up from flags and environment; passed down as typed
//! values, never re-read deeper in the stack.

use std::path::{Path, PathBuf};

use crate::ingest::extract::{Confinement, ExtractLimits};

pub const DATA_DIR_ENV: &str = "BULKHEAD_DATA_DIR";
pub const MODELS_DIR_ENV: &str = "BULKHEAD_MODELS_DIR";
/// Path of a GGUF file to answer with instead of the default SmolLM2 model.
pub const LLM_MODEL_ENV: &str = "BULKHEAD_LLM_MODEL";
pub const DEFAULT_LLM_FILE: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_EMBEDDING_DIR: &str = "minilm";

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub llm_model: PathBuf,
    pub embedding_model_dir: PathBuf,
    pub extract_limits: ExtractLimits,
    /// What an import of a portable archive may hold in memory.
    pub import_limits: crate::portability::ImportLimits,
    /// Tenants whose indexes stay in memory; the least recently used beyond this are evicted.
    pub max_open_tenants: usize,
    /// Chunks retrieved for an answer by default.
    pub answer_top_k: usize,
    /// Tokens the model may generate for one answer.
    pub max_answer_tokens: usize,
    /// Whether a question about a known clause type that no rule answers (no typed value,
    /// no yes/no) goes to the model; when false (the default) it is answered with the
    /// clause's best sentence, quoted. Measured with `cargo bench --bench eval`
    /// (`EVAL_CLAUSE_MODEL`): the same clauses cited, without the model's seconds.
    pub model_for_clauses: bool,
}

impl Config {
    pub fn new(data_dir: PathBuf, models_dir: PathBuf) -> Config {
        let llm_model = std::env::var_os(LLM_MODEL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| models_dir.join(DEFAULT_LLM_FILE));
        Config {
            embedding_model_dir: models_dir.join(DEFAULT_EMBEDDING_DIR),
            llm_model,
            data_dir,
            models_dir,
            extract_limits: ExtractLimits {
                confinement: Confinement::from_env(),
                ..ExtractLimits::default()
            },
            import_limits: crate::portability::ImportLimits::default(),
            max_open_tenants: 64,
            answer_top_k: 3,
            max_answer_tokens: 48,
            model_for_clauses: false,
        }
    }

    /// Directories from the flags, else the environment, else the defaults of API.md.
    /// Documents are parsed by this very binary in a confined child process (unless
    /// `BULKHEAD_EXTRACTOR` names another).
    pub fn resolve(data_dir: Option<PathBuf>, models_dir: Option<PathBuf>) -> Config {
        let data_dir = data_dir
            .or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./bulkhead-data"));
        let models_dir = models_dir
            .or_else(|| std::env::var_os(MODELS_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./models"));
        let mut config = Config::new(data_dir, models_dir);
        if config.extract_limits.confinement == Confinement::Thread {
            config.extract_limits.confinement = Confinement::this_executable();
        }
        config
    }
}

/// The repository's `models/` (tests and benches), overridable by environment.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os(MODELS_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"))
}

/// The repository's bundled sample data (`data/`).
pub fn sample_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}
