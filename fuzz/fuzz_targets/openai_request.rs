//! Any bytes as an OpenAI request body, through both endpoints' validation and fan-out into
//! engine calls: refused with an error or accepted; nothing panics.
#![no_main]

use api_gateway::engines::fan_out;
use api_gateway::openai::chat::ChatCompletionRequest;
use api_gateway::openai::common::{ModelMeta, check_prompt_sizes};
use api_gateway::openai::completions::CompletionRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let model = ModelMeta {
        name: "m".into(),
        context_length: 512,
        architecture: "llama".into(),
        max_token_bytes: 16,
    };
    if let Ok(req) = serde_json::from_slice::<ChatCompletionRequest>(data)
        && let Ok(job) = req.validate()
        && job.common.admit(&model).is_ok()
    {
        let prompts = vec![job.prompt];
        let _ = check_prompt_sizes(&prompts, &model);
        let _ = fan_out("chatcmpl-x", prompts, &job.common, false);
    }
    if let Ok(req) = serde_json::from_slice::<CompletionRequest>(data)
        && let Ok(job) = req.validate()
        && job.common.admit(&model).is_ok()
    {
        let _ = check_prompt_sizes(&job.prompts, &model);
        let _ = fan_out("cmpl-x", job.prompts, &job.common, true);
    }
});
