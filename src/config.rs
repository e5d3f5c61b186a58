//! Run-time configuration: where data and models live, and the limits the appliance
//! enforces. Resolved once at start-up from flags and environment; passed down as typed
//! values, never re-read deeper in the stack.

use std::path::{Path, PathBuf};

use crate::ingest::extract::{Confinement, ExtractLimits};

pub const DATA_DIR_ENV: &str = "BULKHEAD_DATA_DIR";
pub const MODELS_DIR_ENV: &str = "BULKHEAD_MODELS_DIR";
/// Path of a GGUF file to answer with instead of the default SmolLM2 model.
pub const LLM_MODEL_ENV: &str = "BULKHEAD_LLM_MODEL";
/// A known language model by name (`--llm` says the same): see [`LlmChoice`].
pub const LLM_ENV: &str = "BULKHEAD_LLM";
pub const DEFAULT_LLM_FILE: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_EMBEDDING_DIR: &str = "minilm";

/// The language models this project knows by name, each a file under the models
/// directory: the default, fetched by `models/fetch.sh` (`models/manifest.tsv`), and the
/// optional ones it fetches only when asked, `models/fetch.sh --optional NAME`
/// (`models/optional.tsv`). Chosen by measurement (README, "Models").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlmChoice {
    /// SmolLM2-135M-Instruct, Q4_1 (llama): the default.
    #[default]
    SmolLm2,
    /// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2): optional, 491 MB.
    QwenCoder05b,
}

impl LlmChoice {
    pub const ALL: [LlmChoice; 2] = [LlmChoice::SmolLm2, LlmChoice::QwenCoder05b];

    /// The name `--llm`, `BULKHEAD_LLM` and `models/fetch.sh --optional` use.
    pub fn name(self) -> &'static str {
        match self {
            LlmChoice::SmolLm2 => "smollm2",
            LlmChoice::QwenCoder05b => "qwen2.5-coder-0.5b",
        }
    }

    /// The model file, relative to the models directory.
    pub fn file(self) -> &'static str {
        match self {
            LlmChoice::SmolLm2 => DEFAULT_LLM_FILE,
            LlmChoice::QwenCoder05b => "qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        }
    }
}

impl std::str::FromStr for LlmChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        LlmChoice::ALL
            .into_iter()
            .find(|choice| choice.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = LlmChoice::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown language model `{name}`: use one of {}",
                    known.join(", ")
                )
            })
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub llm_model: PathBuf,
    pub embedding_model_dir: PathBuf,
    pub extract_limits: ExtractLimits,
    /// What an import of a portable archive may hold in memory.
    pub import_limits: crate::portability::ImportLimits,
    /// Bytes the open tenants' indexes (and cached catalogues) may take in memory; beyond
    /// it the least recently used unpinned ones are evicted (issue 12). Default: a quarter
    /// of the machine's memory ([`default_open_index_budget`]).
    pub open_index_budget_bytes: u64,
    /// A tenant unused this long leaves memory (unless pinned).
    pub open_index_idle: std::time::Duration,
    /// Chunks retrieved for an answer by default.
    pub answer_top_k: usize,
    /// Tokens the model may generate for one answer.
    pub max_answer_tokens: usize,
    /// Whether a question about a known clause type that no rule answers (no typed value,
    /// no yes/no) goes to the model; when false (the default) it is answered with the
    /// clause's best sentence, quoted. Measured with `cargo bench --bench eval`
    /// (`EVAL_CLAUSE_MODEL`): the same clauses cited, without the model's seconds.
    pub model_for_clauses: bool,
    /// Most tokens the model drafts from the excerpts and checks in one pass while
    /// answering (prompt-lookup decoding, `llm::draft`); 0 decodes one token a pass.
    pub draft_tokens: usize,
    /// Which tenants this process may open (issue 12, enterprise processes).
    pub process_role: ProcessRole,
}

/// Which tenants a process serves (issue 12): every one (the CLI, library users), every
/// one but the enterprise tenants (`bulkhead serve`, whose enterprise tenants each have a
/// process of their own), or one enterprise tenant only (that process).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProcessRole {
    #[default]
    InProcess,
    /// The appliance's main server: never opens an enterprise tenant's indexes.
    Supervisor,
    /// An enterprise tenant's own process: opens that tenant only.
    Tenant(crate::ids::TenantId),
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
            open_index_budget_bytes: default_open_index_budget(),
            open_index_idle: DEFAULT_OPEN_INDEX_IDLE,
            answer_top_k: 3,
            max_answer_tokens: 48,
            model_for_clauses: false,
            draft_tokens: crate::llm::DEFAULT_DRAFT_TOKENS,
            process_role: ProcessRole::InProcess,
        }
    }

    /// Answers with the named model's file under the models directory.
    pub fn use_llm(&mut self, choice: LlmChoice) {
        self.llm_model = self.models_dir.join(choice.file());
    }

    /// Directories from the flags, else the environment, else the defaults of API.md; the
    /// language model named by `--llm` (or `BULKHEAD_LLM`, which clap reads), else the file
    /// `BULKHEAD_LLM_MODEL` names, else the default. Documents are parsed by this very
    /// binary in a confined child process (unless `BULKHEAD_EXTRACTOR` names another).
    pub fn resolve(
        data_dir: Option<PathBuf>,
        models_dir: Option<PathBuf>,
        llm: Option<LlmChoice>,
    ) -> Config {
        let data_dir = data_dir
            .or_else(|| std::env::var_os(DATA_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./bulkhead-data"));
        let models_dir = models_dir
            .or_else(|| std::env::var_os(MODELS_DIR_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("./models"));
        let mut config = Config::new(data_dir, models_dir);
        if let Some(choice) = llm {
            config.use_llm(choice);
        }
        if config.extract_limits.confinement == Confinement::Thread {
            config.extract_limits.confinement = Confinement::this_executable();
        }
        config
    }
}

/// How long an unused tenant's index stays in memory by default.
pub const DEFAULT_OPEN_INDEX_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The default byte budget of the open tenants: a quarter of the machine's memory
/// (`MemTotal` of `/proc/meminfo`), leaving the rest to the models, the page cache and
/// requests; 2 GiB where the total cannot be read.
pub fn default_open_index_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| mem_total_bytes(&meminfo))
        .map_or(2 << 30, |total| total / 4)
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_a_quarter_of_total_memory() {
        let meminfo = "MemTotal:       25165824 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24 << 30));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert!(default_open_index_budget() >= 64 << 20);
    }
}
