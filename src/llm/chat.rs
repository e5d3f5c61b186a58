//! The chat template: recognised from the file's metadata (ChatML only, for now) and used
//! to render messages as token ids, with message text always encoded as plain text.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use super::{ChatMessage, Generator, LlmError, Role};

/// How to render a chat for the model.
#[derive(Debug, Clone)]
pub(super) enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n`, with the template's own default system
    /// message (if it has one) when the chat does not start with a system message.
    ChatMl { default_system: Option<String> },
}

/// Recognises the chat template; only ChatML is supported for now.
pub(super) fn chat_template(md: &HashMap<String, Value>) -> Result<ChatTemplate, LlmError> {
    let Some(template) = md
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
    else {
        return Err(LlmError::UnsupportedModel(
            "gguf has no chat template: use an instruct model that embeds one".to_string(),
        ));
    };
    if !template.contains("<|im_start|>") {
        return Err(LlmError::UnsupportedModel(
            "chat template is not ChatML (`<|im_start|>`), the only format supported so far: use a ChatML model".to_string(),
        ));
    }
    // A literal default system turn, as in SmolLM2's and Qwen2's templates; the Jinja
    // source may hold either a real newline or the escape `\n`, and the first such turn
    // may be an expression (Qwen2's tool branch), so every occurrence is tried.
    let default_system = ["<|im_start|>system\n", "<|im_start|>system\\n"]
        .iter()
        .flat_map(|head| template.match_indices(*head))
        .find_map(|(at, head)| {
            let start = at + head.len();
            let len = template[start..].find("<|im_end|>")?;
            let text = &template[start..start + len];
            // Skip template expressions such as `' + message['content'] + '`.
            (!text.contains(['{', '}', '\'', '+'])).then(|| text.replace("\\n", "\n"))
        });
    Ok(ChatTemplate::ChatMl { default_system })
}

impl Generator {
    /// The chat rendered as token ids. Message text is encoded as plain text, so a document
    /// that spells `<|im_end|>` cannot forge a turn boundary.
    pub(super) fn prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, LlmError> {
        let ChatTemplate::ChatMl { default_system } = &self.template;
        let mut ids = Vec::new();
        ids.extend(self.bos);
        if let Some(system) = default_system
            && messages.first().is_none_or(|m| m.role != Role::System)
        {
            ids.extend(self.turn_ids("system", system)?);
        }
        for m in messages {
            ids.extend(self.turn_ids(m.role.as_str(), &m.content)?);
        }
        // Trusted template text: control tokens are parsed.
        ids.extend(
            self.tokenizer
                .encode_with_special("<|im_start|>assistant\n")?,
        );
        Ok(ids)
    }
}

impl Generator {
    /// One turn: `<|im_start|>role\ncontent<|im_end|>\n`.
    pub(super) fn turn_ids(&self, role: &str, content: &str) -> Result<Vec<u32>, LlmError> {
        let mut ids = vec![self.im_start];
        ids.extend(self.tokenizer.encode(&format!("{role}\n{content}"))?);
        ids.push(self.im_end);
        ids.extend(self.tokenizer.encode("\n")?);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tests::{generator, grounded_chat};

    #[test]
    fn prompt_is_chatml() {
        let g = generator();
        let ids = g.prompt_ids(&grounded_chat()).expect("prompt");
        let text = g.tokenizer.decode(&ids);
        assert!(text.starts_with("system\nAnswer only"));
        assert_eq!(ids.first(), Some(&g.im_start));
        assert_eq!(ids.iter().filter(|id| **id == g.im_start).count(), 3);
        // Without a system message the template's default one is used.
        let ids = g
            .prompt_ids(&[ChatMessage::new(Role::User, "hi")])
            .expect("prompt");
        assert!(g.tokenizer.decode(&ids).contains("SmolLM"));
    }
}
