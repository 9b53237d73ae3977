//! Chat templates: renders a conversation into the prompt text a chat model expects, from the
//! Jinja template stored in the GGUF file (`tokenizer.chat_template`).
//!
//! Rendering uses minijinja configured like the Jinja2 environment of HF transformers and
//! llama-cpp-python: `trim_blocks` and `lstrip_blocks` on, loop controls, Python string/dict
//! methods (`minijinja_contrib::pycompat`), `raise_exception(msg)`, `strftime_now(fmt)` (UTC) and
//! a `tojson` that writes JSON as Python's `json.dumps(ensure_ascii=False)` does. The variables
//! are `messages`, `add_generation_prompt`, `bos_token` and `eos_token`.
//!
//! A file without a template gets a built-in one by `general.architecture` where llama.cpp has a
//! matching built-in format: `gemma`, `gemma2` and `gemma3` get llama.cpp's "gemma" format
//! (`llama_chat_apply_template`, written here as Jinja; see [`GEMMA_TEMPLATE`]). Other
//! architectures without a template get none, and chat requests are refused. (llama-server itself
//! falls back to ChatML for every template-less file; Gemma models were not trained on ChatML.)
//!
//! minijinja (without its `preserve_order` feature) iterates maps in key order, so `tojson` or
//! `items()` over a message sees keys sorted, where Python keeps insertion order.

use chrono::format::StrftimeItems;
use chrono::{DateTime, Utc};
use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error, ErrorKind};

use super::gguf::keys::tokenizer as keys;

/// `general.architecture` (not in `gguf::keys::tokenizer`).
const ARCHITECTURE: &str = "general.architecture";
use super::gguf::{GgufError, GgufFile};

/// Name under which the template is stored in its environment.
const TEMPLATE_NAME: &str = "chat_template";

/// llama.cpp's built-in "gemma" format (`LLM_CHAT_TEMPLATE_GEMMA` in `llama-chat.cpp`) as Jinja:
/// `<start_of_turn>{role}\n{content}<end_of_turn>\n` per message with `assistant` renamed
/// `model`, contents trimmed of C `isspace` characters, system messages concatenated and put,
/// followed by a blank line, at the start of the next turn that is not the model's.
pub const GEMMA_TEMPLATE: &str = concat!(
    r"{%- set ws = ' \t\n\r\u000b\u000c' -%}",
    r"{%- set ns = namespace(system='') -%}",
    r"{%- for message in messages -%}",
    r"{%- if message['role'] == 'system' -%}",
    r"{%- set ns.system = ns.system + message['content'].strip(ws) -%}",
    r"{%- else -%}",
    r"{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}",
    r"{{- '<start_of_turn>' + role + '\n' -}}",
    r"{%- if ns.system != '' and role != 'model' -%}",
    r"{{- ns.system + '\n\n' -}}",
    r"{%- set ns.system = '' -%}",
    r"{%- endif -%}",
    r"{{- message['content'].strip(ws) + '<end_of_turn>\n' -}}",
    r"{%- endif -%}",
    r"{%- endfor -%}",
    r"{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}",
);

/// The built-in template for a file without one, by `general.architecture`; `None` where Journey
/// has none (the model then has no chat template).
pub fn builtin_for_architecture(arch: &str) -> Option<&'static str> {
    match arch {
        "gemma" | "gemma2" | "gemma3" => Some(GEMMA_TEMPLATE),
        _ => None,
    }
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Errors of loading or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// A metadata key has the wrong type.
    #[error("chat template metadata: {0}")]
    Gguf(#[from] GgufError),
    /// The template source does not parse.
    #[error("chat template does not compile: {0}")]
    Compile(#[source] Error),
    /// Rendering failed (including `raise_exception` from the template).
    #[error("chat template rendering failed: {0}")]
    Render(#[source] Error),
}

/// Result with a [`ChatTemplateError`].
pub type Result<T, E = ChatTemplateError> = std::result::Result<T, E>;

/// A compiled chat template with the BOS/EOS texts it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    builtin: bool,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.source.len())
            .field("builtin", &self.builtin)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Reads `tokenizer.chat_template`, else the built-in template of the file's
    /// `general.architecture` ([`builtin_for_architecture`]); `None` when there is neither.
    /// `bos_token`/`eos_token` are the texts of the tokens named by
    /// `tokenizer.ggml.bos_token_id`/`eos_token_id` (empty when absent).
    pub fn from_gguf(file: &GgufFile) -> Result<Option<Self>> {
        let (source, builtin) = if file.get(keys::CHAT_TEMPLATE).is_some() {
            (file.get_str(keys::CHAT_TEMPLATE)?.to_owned(), false)
        } else {
            let arch = file.get(ARCHITECTURE).and_then(|v| v.as_str());
            match arch.and_then(builtin_for_architecture) {
                Some(src) => (src.to_owned(), true),
                None => return Ok(None),
            }
        };
        let token_text = |key: &str| -> String {
            let id = file.get(key).and_then(|v| v.as_u64());
            let tokens = file.get(keys::TOKENS).and_then(|v| v.as_array());
            match (id, tokens) {
                (Some(id), Some(arr)) => usize::try_from(id)
                    .ok()
                    .and_then(|i| arr.values.get(i))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned(),
                _ => String::new(),
            }
        };
        let bos = token_text(keys::BOS_ID);
        let eos = token_text(keys::EOS_ID);
        let mut t = Self::new(source, bos, eos)?;
        t.builtin = builtin;
        Ok(Some(t))
    }

    /// Compiles `source`; `bos`/`eos` become the template's `bos_token`/`eos_token`.
    pub fn new(source: String, bos: String, eos: String) -> Result<Self> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(ChatTemplateError::Compile)?,
        );
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(ChatTemplateError::Compile)?;
        Ok(Self {
            env,
            source,
            builtin: false,
            bos,
            eos,
        })
    }

    /// Whether the template is Journey's built-in one for a file that has none.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `bos_token` text given to the template.
    pub fn bos_token(&self) -> &str {
        &self.bos
    }

    /// The `eos_token` text given to the template.
    pub fn eos_token(&self) -> &str {
        &self.eos
    }

    /// Renders `messages`; with `add_generation_prompt` the template appends the opening of the
    /// assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(ChatTemplateError::Render)?;
        let ctx = minijinja::context! {
            messages => Value::from(Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        };
        tmpl.render(ctx).map_err(ChatTemplateError::Render)
    }
}

/// `raise_exception(message)`: aborts rendering with the template's message.
fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("template raised: {message}"),
    ))
}

/// `tojson` as Python's `json.dumps(x, ensure_ascii=False, indent=indent)`: `", "`/`": "`
/// separators without indent, `","` and newlines with it; non-ASCII written as is.
/// minijinja's own `tojson` escapes `<`, `>`, `&` and `'` for HTML (and its plain JSON writer is
/// private), and minijinja-contrib has none, so Python's output needs this one.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    if ensure_ascii == Some(true) || sort_keys == Some(true) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: ensure_ascii=true and sort_keys=true are not supported",
        ));
    }
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(usize::try_from(v)?),
    };
    let mut out = Vec::new();
    let res = match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
            serde::Serialize::serialize(
                value,
                &mut serde_json::Serializer::with_formatter(&mut out, fmt),
            )
        }
        None => serde::Serialize::serialize(
            value,
            &mut serde_json::Serializer::with_formatter(&mut out, PySpaced),
        ),
    };
    res.map_err(|e| {
        Error::new(ErrorKind::InvalidOperation, "tojson: cannot serialize").with_source(e)
    })?;
    let s = String::from_utf8(out)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, "tojson: not UTF-8").with_source(e))?;
    Ok(Value::from_safe_string(s))
}

/// serde_json formatter with Python's default separators `", "` and `": "`.
struct PySpaced;

impl serde_json::ser::Formatter for PySpaced {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// `strftime_now(format)`: the current UTC time formatted with C `strftime` directives (chrono's
/// set, which covers C99 and the common glibc extensions). Unknown directives are copied through,
/// as glibc's `strftime` (behind Python's `datetime.strftime`) does.
fn strftime_now(format: String) -> std::result::Result<String, Error> {
    strftime(&format, Utc::now())
}

/// Formats `time` with [`strftime_now`]'s directives.
fn strftime(format: &str, time: DateTime<Utc>) -> std::result::Result<String, Error> {
    use std::fmt::Write as _;

    let mut out = String::with_capacity(format.len() + 16);
    // `write!` rather than `to_string()`: chrono reports a directive it cannot fill as a
    // formatting error, which `to_string()` would turn into a panic.
    write!(
        out,
        "{}",
        time.format_with_items(StrftimeItems::new_lenient(format))
    )
    .map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: cannot format {format:?}"),
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::{GgufWriter, MetadataValue, ValueType};

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_default_system() {
        let t = ChatTemplate::new(CHATML.into(), "<s>".into(), "</s>".into()).unwrap();
        let out = t.render(&[ChatMessage::new("user", "hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(
                &[
                    ChatMessage::new("system", "S"),
                    ChatMessage::new("user", "u"),
                ],
                false,
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_like_jinja2() {
        let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src.into(), String::new(), String::new()).unwrap();
        let out = t
            .render(
                &[ChatMessage::new("user", "a"), ChatMessage::new("user", "b")],
                false,
            )
            .unwrap();
        assert_eq!(out, "[a]\n[b]\n");
    }

    #[test]
    fn bos_eos_pycompat_and_raise() {
        let src = "{{ bos_token }}{% for m in messages %}{{ m.content.strip().upper() }}{% endfor %}{{ eos_token }}\
                   {% if messages|length > 1 %}{{ raise_exception('only one message') }}{% endif %}";
        let t = ChatTemplate::new(src.into(), "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            t.render(&[ChatMessage::new("user", "  hi ")], false)
                .unwrap(),
            "<s>HI</s>"
        );
        let err = t
            .render(
                &[ChatMessage::new("user", "a"), ChatMessage::new("user", "b")],
                false,
            )
            .unwrap_err();
        assert!(matches!(err, ChatTemplateError::Render(_)));
        assert!(err.to_string().contains("only one message"), "{err}");
    }

    #[test]
    fn compile_error_is_reported() {
        let err = ChatTemplate::new("{% for %}".into(), String::new(), String::new()).unwrap_err();
        assert!(matches!(err, ChatTemplateError::Compile(_)), "{err}");
    }

    #[test]
    fn tojson_matches_python() {
        let src =
            "{{ {'a': [1, 'é<'], 'b': none}|tojson }}|{{ [1, {'x': true}]|tojson(indent=2) }}";
        let t = ChatTemplate::new(src.into(), String::new(), String::new()).unwrap();
        assert_eq!(
            t.render(&[], false).unwrap(),
            "{\"a\": [1, \"é<\"], \"b\": null}|[\n  1,\n  {\n    \"x\": true\n  }\n]"
        );
    }

    /// [`strftime`] at `secs` since the Unix epoch.
    fn strftime_utc(format: &str, secs: i64) -> String {
        strftime(format, DateTime::from_timestamp(secs, 0).unwrap()).unwrap()
    }

    #[test]
    fn strftime_known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(
            strftime_utc("%d %b %Y %H:%M:%S %A %j %%", t),
            "29 Feb 2024 13:05:09 Thursday 060 %"
        );
        assert_eq!(strftime_utc("%F %T %p %I", 0), "1970-01-01 00:00:00 AM 12");
        // Unknown directives are copied through, as glibc does.
        assert_eq!(strftime_utc("%Q %Y %", 0), "%Q 1970 %");
        let t = ChatTemplate::new(
            "{{ strftime_now('%Y') }}".into(),
            String::new(),
            String::new(),
        )
        .unwrap();
        assert_eq!(t.render(&[], false).unwrap().len(), 4);
    }

    #[test]
    fn from_gguf_reads_template_and_token_texts() {
        let tokens = ["<a>", "<s>", "</s>"]
            .iter()
            .map(|s| MetadataValue::String(s.to_string()))
            .collect();
        let mut w = GgufWriter::new();
        w.meta_array(keys::TOKENS, ValueType::String, tokens)
            .meta_u32(keys::BOS_ID, 1)
            .meta_u32(keys::EOS_ID, 2)
            .meta_str(keys::CHAT_TEMPLATE, "{{ bos_token }}|{{ eos_token }}");
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        let t = ChatTemplate::from_gguf(&file).unwrap().unwrap();
        assert_eq!(t.render(&[], true).unwrap(), "<s>|</s>");

        let file = GgufFile::from_bytes(GgufWriter::new().to_bytes()).unwrap();
        assert!(ChatTemplate::from_gguf(&file).unwrap().is_none());

        // No template: Gemma architectures get the built-in one, others none.
        for (arch, builtin) in [("gemma3", true), ("gemma", true), ("llama", false)] {
            let mut w = GgufWriter::new();
            w.meta_str(ARCHITECTURE, arch);
            let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
            let t = ChatTemplate::from_gguf(&file).unwrap();
            assert_eq!(
                t.as_ref().map(ChatTemplate::is_builtin),
                builtin.then_some(true),
                "{arch}"
            );
        }

        let mut w = GgufWriter::new();
        w.meta_u32(keys::CHAT_TEMPLATE, 3);
        let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
        assert!(matches!(
            ChatTemplate::from_gguf(&file),
            Err(ChatTemplateError::Gguf(_))
        ));
    }

    #[test]
    fn gemma_builtin_trims_c_whitespace_and_merges_system() {
        let t = ChatTemplate::new(GEMMA_TEMPLATE.into(), "<bos>".into(), "<eos>".into()).unwrap();
        let out = t
            .render(
                &[
                    ChatMessage::new("system", " A\x0b"),
                    ChatMessage::new("system", "B\x0c\r"),
                    ChatMessage::new("assistant", "\tm "),
                    ChatMessage::new("user", "u\u{a0}\n"),
                ],
                true,
            )
            .unwrap();
        // NBSP is not C whitespace and stays; the system text waits for the user turn.
        assert_eq!(
            out,
            "<start_of_turn>model\nm<end_of_turn>\n<start_of_turn>user\nAB\n\nu\u{a0}<end_of_turn>\n<start_of_turn>model\n"
        );
    }
}
